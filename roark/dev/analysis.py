"""What the viewer measures on a call's recording: peaks, speech, latency and alignment.

Everything is computed once, when a call ends (``store.py``), from the stitched stereo
recording (left = caller, right = agent) and the call-ended body, and kept beside the call.

- **Peaks**: the loudest sample of each 20 ms per channel, 0..255: what the waveform lanes
  draw, so the page never needs the audio itself to draw them.
- **Speech**: the stretches of each channel that are louder than its noise floor.
- **Latency** per agent turn that answers the caller: the silence the caller heard (the end
  of the caller's speech to the start of the agent's audio, both measured on the
  recording), beside LiveKit's stages for that turn (end of utterance, STT, LLM time to
  first token, TTS time to first byte) and the remainder no stage explains.
- **Alignment**: whether each transcript turn's channel has speech where its offsets say (a
  turn after the end of the recording cannot be checked: chunks were lost or refused).
- **Interruptions**: where the agent's audio of each interrupted turn really stopped, read
  from the recording (roark ends such a turn's transcript there; a call delivered by an older
  roark, or by another integration, may end it later, where LiveKit committed the message).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PEAKS_PER_SECOND = 50
WINDOW_S = 0.01  # speech is detected on 10 ms windows
SILENCE_DBFS = -50.0  # never speech below this, whatever the noise floor
LOUD_DBFS = -25.0  # always speech above this, however noisy the line
FLOOR_MARGIN_DB = 10.0  # speech is this much louder than the channel's noise floor
BRIDGE_S = 0.25  # pauses shorter than this do not end a stretch of speech
MIN_SPEECH_S = 0.05  # shorter bursts are clicks, not speech
ONSET_TOLERANCE_S = 0.5  # how far a turn's audio may start from its transcript offset
MIN_COVERAGE = 0.5  # share of a turn's span that must hold speech on its channel
METRIC_MATCH_MS = 50  # a per-turn metric sits at its turn's end offset (same clock)

# bump when what ``analyze`` returns changes: calls analysed before are analysed again
VERSION = 2
CHANNELS = ("caller", "agent")
Runs = list[tuple[float, float]]


# --------------------------------------------------------------------------- the scan


@dataclass
class Scan:
    """One pass over a recording: peaks per channel and speech runs per channel."""

    peaks: np.ndarray  # uint8 (buckets, 2)
    runs: tuple[Runs, Runs]  # (caller, agent) speech stretches in seconds
    duration_s: float


def scan(recording: np.ndarray, rate: int, *, block_s: float = 60.0) -> Scan:
    """Peaks and speech runs of a ``(frames, 2)`` int16 recording (a memmap is fine: it is
    read a block at a time)."""
    step = max(1, round(rate / PEAKS_PER_SECOND))
    window = max(1, round(rate * WINDOW_S))
    unit = math.lcm(step, window)
    block = unit * max(1, round(block_s * rate / unit))
    peaks, levels = [], []
    for start in range(0, len(recording), block):
        part = np.asarray(recording[start : start + block], dtype=np.float32) / 32768.0
        peaks.append(_bucket_max(np.abs(part), step))
        levels.append(_window_dbfs(part, window))
    if not peaks:
        return Scan(np.zeros((0, 2), np.uint8), ([], []), 0.0)
    peak = np.concatenate(peaks)
    level = np.concatenate(levels)
    runs = tuple(speech_runs(level[:, ch], window / rate) for ch in (0, 1))
    scaled = np.clip(np.rint(peak * 255.0), 0, 255).astype(np.uint8)
    return Scan(scaled, runs, len(recording) / rate)  # type: ignore[arg-type]


def _padded(values: np.ndarray, size: int) -> np.ndarray:
    short = -len(values) % size
    if short:
        values = np.concatenate([values, np.zeros((short, values.shape[1]), values.dtype)])
    return values.reshape(-1, size, values.shape[1])


def _bucket_max(magnitude: np.ndarray, size: int) -> np.ndarray:
    return _padded(magnitude, size).max(axis=1)


def _window_dbfs(samples: np.ndarray, size: int) -> np.ndarray:
    power = (_padded(samples, size) ** 2).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(power)


def speech_runs(dbfs: np.ndarray, window_s: float) -> Runs:
    """The stretches (start, end seconds) of a channel's windows that hold speech."""
    # the quietest tenth of the call is its noise floor (digital silence counts as -120 dB)
    floor = float(np.percentile(np.maximum(dbfs, -120.0), 10)) if len(dbfs) else -120.0
    active = dbfs > min(LOUD_DBFS, max(SILENCE_DBFS, floor + FLOOR_MARGIN_DB))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    runs: Runs = []
    for on, off in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        start, end = on * window_s, off * window_s
        if runs and start - runs[-1][1] < BRIDGE_S:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return [(round(a, 3), round(b, 3)) for a, b in runs if b - a >= MIN_SPEECH_S]


# --------------------------------------------------------------------------- alignment


@dataclass
class TurnAlignment:
    """Whether a transcript turn's channel has speech where its offsets say.

    ``ok`` is None for a turn that starts after the end of the recording: there is no audio
    to check it against (the call's later chunks never arrived).
    """

    turn: int
    channel: str
    coverage: float  # share of [start, end] (within the recording) holding speech
    onset_error_s: float | None  # nearest speech onset minus the turn's start
    ok: bool | None
    problem: str | None = None


def _channel(role: Any) -> int | None:
    return {"user": 0, "assistant": 1}.get(role)


def _span(entry: dict[str, Any]) -> tuple[float, float]:
    start = entry.get("audioOffsetMs")
    end = entry.get("endAudioOffsetMs")
    start = float(start) / 1000.0 if isinstance(start, (int, float)) else 0.0
    end = float(end) / 1000.0 if isinstance(end, (int, float)) else start
    return start, max(start, end)


def _covered(runs: Runs, start: float, end: float) -> float:
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in runs)


def _nearest_onset(runs: Runs, at: float) -> float | None:
    onsets = [a for a, _ in runs]
    return min(onsets, key=lambda a: abs(a - at)) if onsets else None


def interrupted_stop(transcript: Sequence[dict[str, Any]], i: int, scanned: Scan) -> float | None:
    """Where the audio of agent turn ``i`` (interrupted) stopped on the recording: the end of
    the last agent speech that begins within the turn, before the agent's next turn (None
    when no agent speech begins there)."""
    start, end = _span(transcript[i])
    later = [
        _span(e)[0]
        for e in transcript[i + 1 :]
        if e.get("role") == "assistant" and _span(e)[0] >= start
    ]
    # speech starting near the turn's end may be the next turn's: measured onsets are
    # quantised, and the transcript may end the cut turn where the next one begins
    limit = max(start, min([end, *later]) - ONSET_TOLERANCE_S)
    ends = [b for a, b in scanned.runs[1] if start - ONSET_TOLERANCE_S <= a <= limit]
    return max(ends) if ends else None


def alignment(transcript: Sequence[dict[str, Any]], scanned: Scan) -> list[TurnAlignment]:
    """Check every caller and agent turn against its channel of the recording."""
    checks = []
    for i, entry in enumerate(transcript):
        channel = _channel(entry.get("role"))
        if channel is None:
            continue
        checks.append(_check_turn(transcript, i, channel, scanned))
    return checks


def _check_turn(
    transcript: Sequence[dict[str, Any]], i: int, channel: int, scanned: Scan
) -> TurnAlignment:
    start, end = _span(transcript[i])
    runs, name = scanned.runs[channel], CHANNELS[channel]
    onset = _nearest_onset(runs, start)
    error = None if onset is None else round(onset - start, 3)
    recorded = scanned.duration_s
    if start >= recorded:
        problem = f"after the end of the recording ({recorded:.1f} s)"
        return TurnAlignment(i, name, 0.0, error, None, problem)
    if channel == 1 and transcript[i].get("interrupted"):
        # the turn was cut off: its speech is expected up to where the audio stopped
        end = min(end, interrupted_stop(transcript, i, scanned) or end)
    end = min(end, recorded)
    length = end - start
    covered = _covered(runs, start, end)
    coverage = round(covered / length, 3) if length > 0 else float(covered > 0)
    ok = bool(coverage >= MIN_COVERAGE) or (
        length < 2 * MIN_SPEECH_S and error is not None and abs(error) < ONSET_TOLERANCE_S
    )
    problem = None
    if not ok:
        where = f"{start:.2f}-{end:.2f} s"
        problem = (
            f"no speech on the {name} channel at {where}"
            if coverage == 0
            else f"only {coverage:.0%} of {where} has speech on the {name} channel"
        )
    return TurnAlignment(i, name, coverage, error, ok, problem)


def interruptions(transcript: Sequence[dict[str, Any]], scanned: Scan) -> list[dict[str, Any]]:
    """For each interrupted agent turn, where its audio stopped on the recording (None when
    no agent speech starts within the turn)."""
    found = []
    for i, entry in enumerate(transcript):
        if entry.get("role") == "assistant" and entry.get("interrupted"):
            stop = interrupted_stop(transcript, i, scanned)
            found.append({"turn": i, "stopped_s": None if stop is None else round(stop, 3)})
    return found


# --------------------------------------------------------------------------- latency


@dataclass
class TurnLatency:
    """The silence before one agent turn, and what LiveKit says it was made of (seconds)."""

    turn: int  # the agent turn's index in the transcript
    caller_turn: int
    caller_end_s: float  # end of the caller's speech on the left channel
    agent_start_s: float  # start of the agent's audio on the right channel
    heard_s: float  # what the caller heard: agent_start - caller_end
    eou_s: float | None = None  # end-of-utterance delay (the turn decision)
    stt_s: float | None = None  # transcription delay: runs inside the EOU delay
    llm_ttft_s: float | None = None
    tts_ttfb_s: float | None = None
    remainder_s: float | None = None  # heard minus EOU, LLM and TTS: what nothing explains


def latency(
    transcript: Sequence[dict[str, Any]], metrics: Sequence[dict[str, Any]], scanned: Scan
) -> list[TurnLatency]:
    """One row per agent turn that answers a caller turn, measured on the recording."""
    return _latency(transcript, metrics, scanned)[0]


def _latency(
    transcript: Sequence[dict[str, Any]], metrics: Sequence[dict[str, Any]], scanned: Scan
) -> tuple[list[TurnLatency], list[dict[str, Any]]]:
    """The measured rows, and each agent turn left unmeasured with why."""
    order = sorted(
        (i for i, e in enumerate(transcript) if _channel(e.get("role")) is not None),
        key=lambda i: _span(transcript[i])[0],
    )
    rows, skipped = [], []
    for n, cur in enumerate(order):
        if transcript[cur]["role"] != "assistant":
            continue
        prev = order[n - 1] if n else None
        if prev is None or transcript[prev]["role"] != "user":
            skipped.append({"turn": cur, "why": "no caller turn before it"})
            continue
        row = _measure(prev, cur, transcript, scanned)
        if isinstance(row, str):
            skipped.append({"turn": cur, "why": row})
            continue
        _add_stages(row, transcript[prev], transcript[cur], metrics)
        rows.append(row)
    return rows, skipped


def _measure(
    user: int, agent: int, transcript: Sequence[dict[str, Any]], scanned: Scan
) -> TurnLatency | str:
    """The row of an agent turn answering caller turn ``user``, or why it cannot be measured."""
    user_start, _ = _span(transcript[user])
    agent_start, _ = _span(transcript[agent])
    if agent_start >= scanned.duration_s:
        return "after the end of the recording"
    onset = _nearest_onset(scanned.runs[1], agent_start)
    if onset is None or abs(onset - agent_start) > ONSET_TOLERANCE_S:
        return "its audio is not where the transcript says"  # see the alignment check
    spoken = [
        (a, b) for a, b in scanned.runs[0] if a < onset and b > user_start - ONSET_TOLERANCE_S
    ]
    if not spoken:
        return "no caller speech before it on the recording"
    caller_end = spoken[-1][1]
    return TurnLatency(agent, user, caller_end, onset, round(onset - caller_end, 3))


def _metric_value(record: dict[str, Any] | None, key: str) -> float | None:
    if record is None:
        return None
    extra = record.get("extra")
    value = record.get(key, extra.get(key) if isinstance(extra, dict) else None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(float(value), 3)
    return None


def _offset_ms(record: dict[str, Any]) -> float:
    value = record.get("audioOffsetMs")
    return float(value) if isinstance(value, (int, float)) else -1.0


def _turn_metric(
    metrics: Iterable[dict[str, Any]], role: str, end_ms: int
) -> dict[str, Any] | None:
    # LiveKit's per-message metrics (ChatMessage.metrics) are posted at the message's end
    for record in metrics:
        extra = record.get("extra")
        extra = extra if isinstance(extra, dict) else {}
        if (
            record.get("kind") == "turn"
            and extra.get("role") == role
            and abs(_offset_ms(record) - end_ms) <= METRIC_MATCH_MS
        ):
            return record
    return None


def _first_between(
    metrics: Iterable[dict[str, Any]],
    kind: str,
    after_ms: float,
    until_ms: float,
    last: bool = False,
) -> dict[str, Any] | None:
    found = [r for r in metrics if r.get("kind") == kind and after_ms <= _offset_ms(r) <= until_ms]
    if not found:
        return None
    return found[-1] if last else found[0]


def _add_stages(
    row: TurnLatency, user: dict[str, Any], agent: dict[str, Any], metrics: Sequence[dict[str, Any]]
) -> None:
    """LiveKit's stages for the turn: its per-message metrics, else the stage records
    between the caller's turn and the end of the agent's."""
    (user_start, user_end), (agent_start, agent_end) = _span(user), _span(agent)
    said = _turn_metric(metrics, "user", round(user_end * 1000))
    answered = _turn_metric(metrics, "assistant", round(agent_end * 1000))
    eou = said or _first_between(
        metrics, "eou", user_start * 1000, agent_start * 1000 + METRIC_MATCH_MS, last=True
    )
    row.eou_s = _metric_value(eou, "endOfUtteranceDelay")
    row.stt_s = _metric_value(eou, "transcriptionDelay")
    after = _offset_ms(eou) if eou else user_start * 1000
    until = agent_end * 1000 + METRIC_MATCH_MS
    row.llm_ttft_s = _metric_value(answered, "llmNodeTtft")
    for kind in ("llm", "realtime_model"):  # a realtime model's own time to first token
        if row.llm_ttft_s is None:
            row.llm_ttft_s = _metric_value(_first_between(metrics, kind, after, until), "ttft")
    row.tts_ttfb_s = _metric_value(answered, "ttsNodeTtfb")
    if row.tts_ttfb_s is None:
        row.tts_ttfb_s = _metric_value(_first_between(metrics, "tts", after, until), "ttfb")
    explained = [row.eou_s, row.llm_ttft_s, row.tts_ttfb_s]
    row.remainder_s = round(row.heard_s - sum(v for v in explained if v is not None), 3)


def latency_summary(rows: Sequence[TurnLatency]) -> dict[str, float | None]:
    """The call's median and worst heard silence."""
    heard = [r.heard_s for r in rows]
    if not heard:
        return {"median_s": None, "worst_s": None}
    return {"median_s": round(float(np.median(heard)), 3), "worst_s": max(heard)}


# --------------------------------------------------------------------------- together


def analyze(
    transcript: Sequence[dict[str, Any]], metrics: Sequence[dict[str, Any]], scanned: Scan
) -> dict[str, Any]:
    """Everything the call page shows about the recording, as JSON-ready data."""
    rows, skipped = _latency(transcript, metrics, scanned)
    return {
        "version": VERSION,
        "duration_s": round(scanned.duration_s, 3),
        "peaks_per_second": PEAKS_PER_SECOND,
        "speech": {name: runs for name, runs in zip(CHANNELS, scanned.runs, strict=True)},
        "latency": [asdict(r) for r in rows],
        "latency_skipped": skipped,
        "latency_summary": latency_summary(rows),
        "alignment": [asdict(a) for a in alignment(transcript, scanned)],
        "interruptions": interruptions(transcript, scanned),
    }
