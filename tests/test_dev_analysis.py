"""The viewer's measurements on synthetic stereo audio whose truth is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from roark.dev import analysis

RATE = 16_000


def call_audio(
    caller: list[tuple[float, float]],
    agent: list[tuple[float, float]],
    *,
    seconds: float = 10.0,
    noise: float = 0.0,
) -> np.ndarray:
    """Stereo int16: a 0.3 tone where each side speaks, silence (or line noise) elsewhere."""
    frames = int(seconds * RATE)
    t = np.arange(frames) / RATE
    rec = np.zeros((frames, 2), dtype=np.float64)
    for channel, spans, hz in ((0, caller, 700.0), (1, agent, 300.0)):
        for start, end in spans:
            lo, hi = int(start * RATE), int(end * RATE)
            rec[lo:hi, channel] = 0.3 * np.sin(2 * np.pi * hz * t[lo:hi])
    rec[:, 0] += noise * np.random.default_rng(1).standard_normal(frames)
    return np.clip(np.rint(rec * 32767), -32768, 32767).astype(np.int16)


def entry(role: str, start: float, end: float, **extra: object) -> dict:
    return {
        "role": role,
        "content": f"{role} at {start}",
        "audioOffsetMs": round(start * 1000),
        "endAudioOffsetMs": round(end * 1000),
        **extra,
    }


CALLER = [(2.0, 3.5)]
AGENT = [(0.5, 1.5), (4.3, 6.0)]
TRANSCRIPT = [
    entry("assistant", 0.5, 1.5),
    entry("user", 2.0, 3.5),
    entry("assistant", 4.3, 6.0),
]


def test_peaks_are_the_loudest_sample_of_each_20_ms_per_channel() -> None:
    scanned = analysis.scan(call_audio(CALLER, AGENT), RATE, block_s=1.0)
    assert scanned.peaks.shape == (10 * analysis.PEAKS_PER_SECOND, 2)
    assert scanned.duration_s == 10.0
    bucket = 1 / analysis.PEAKS_PER_SECOND
    caller, agent = scanned.peaks[:, 0], scanned.peaks[:, 1]
    # 0.3 of full scale is 77 of 255, where the side speaks; exact zero where it is silent
    assert caller[int(2.5 / bucket)] == pytest.approx(0.3 * 255, abs=1)
    assert caller[int(1.0 / bucket)] == 0 and caller[int(8.0 / bucket)] == 0
    assert agent[int(5.0 / bucket)] == pytest.approx(0.3 * 255, abs=1)
    assert agent[int(2.5 / bucket)] == 0
    assert scanned.peaks.dtype == np.uint8


def test_speech_runs_are_found_over_line_noise() -> None:
    scanned = analysis.scan(call_audio(CALLER, AGENT, noise=0.003), RATE)
    ((start, end),) = scanned.runs[0]
    assert start == pytest.approx(2.0, abs=0.011) and end == pytest.approx(3.5, abs=0.011)
    assert scanned.runs[1] == [(0.5, 1.5), (4.3, 6.0)]


def test_latency_is_measured_on_the_recording_and_adds_up() -> None:
    metrics = [
        {
            "kind": "turn",
            "audioOffsetMs": 3500,
            "endOfUtteranceDelay": 0.42,
            "transcriptionDelay": 0.21,
            "extra": {"role": "user"},
        },
        {
            "kind": "turn",
            "audioOffsetMs": 6000,
            "extra": {"role": "assistant", "llmNodeTtft": 0.18, "ttsNodeTtfb": 0.09},
        },
    ]
    scanned = analysis.scan(call_audio(CALLER, AGENT), RATE)
    (row,) = analysis.latency(TRANSCRIPT, metrics, scanned)
    assert (row.turn, row.caller_turn) == (2, 1)
    assert (row.caller_end_s, row.agent_start_s) == (3.5, 4.3)
    assert row.heard_s == 0.8
    assert (row.eou_s, row.stt_s, row.llm_ttft_s, row.tts_ttfb_s) == (0.42, 0.21, 0.18, 0.09)
    assert row.remainder_s == 0.11
    assert row.eou_s + row.llm_ttft_s + row.tts_ttfb_s + row.remainder_s == pytest.approx(0.8)
    assert analysis.latency_summary([row]) == {"median_s": 0.8, "worst_s": 0.8}


def test_stage_records_stand_in_when_a_turn_has_no_per_message_metrics() -> None:
    metrics = [
        {"kind": "eou", "audioOffsetMs": 3900, "endOfUtteranceDelay": 0.4},
        {"kind": "llm", "audioOffsetMs": 4100, "ttft": 0.25},
        {"kind": "llm", "audioOffsetMs": 9000, "ttft": 9.0},  # a later turn's
        {"kind": "tts", "audioOffsetMs": 5200, "ttfb": 0.1},
    ]
    scanned = analysis.scan(call_audio(CALLER, AGENT), RATE)
    (row,) = analysis.latency(TRANSCRIPT, metrics, scanned)
    assert (row.eou_s, row.stt_s, row.llm_ttft_s, row.tts_ttfb_s) == (0.4, None, 0.25, 0.1)
    assert row.remainder_s == 0.05


def test_the_median_and_the_worst_turn_of_a_call() -> None:
    caller = [(1.0, 2.0), (4.0, 5.0), (8.0, 9.0)]
    agent = [(2.5, 3.5), (6.0, 7.0), (9.3, 9.8)]
    transcript = [entry("user", *caller[0]), entry("assistant", *agent[0])]
    transcript += [entry("user", *caller[1]), entry("assistant", *agent[1])]
    transcript += [entry("user", *caller[2]), entry("assistant", *agent[2])]
    rows = analysis.latency(transcript, [], analysis.scan(call_audio(caller, agent), RATE))
    assert [r.heard_s for r in rows] == [0.5, 1.0, 0.3]
    assert [r.remainder_s for r in rows] == [0.5, 1.0, 0.3]  # no stage known: all unexplained
    assert analysis.latency_summary(rows) == {"median_s": 0.5, "worst_s": 1.0}


def test_alignment_flags_turns_whose_audio_is_not_where_the_transcript_says() -> None:
    transcript = [
        *TRANSCRIPT,
        entry("assistant", 7.0, 8.0),  # nothing on the agent channel there
        entry("user", 4.0, 6.0),  # the caller is silent; the agent speaks then
        entry("user", 9.5, 12.0),  # runs past the end of a 10 s recording, silent before
        entry("user", 10.5, 11.0),  # after the end: no audio to check it against
        entry("system", 0.0, 0.0),
    ]
    checks = analysis.alignment(transcript, analysis.scan(call_audio(CALLER, AGENT), RATE))
    assert [(c.turn, c.channel, c.ok) for c in checks] == [
        (0, "agent", True),
        (1, "caller", True),
        (2, "agent", True),
        (3, "agent", False),
        (4, "caller", False),
        (5, "caller", False),
        (6, "caller", None),
    ]
    assert checks[0].coverage == 1.0 and checks[0].onset_error_s == 0.0
    assert checks[3].problem == "no speech on the agent channel at 7.00-8.00 s"
    assert checks[4].problem == "no speech on the caller channel at 4.00-6.00 s"
    assert checks[5].problem == "no speech on the caller channel at 9.50-10.00 s"
    assert checks[6].problem == "after the end of the recording (10.0 s)"


def test_an_interrupted_turn_is_checked_and_marked_up_to_where_its_audio_stopped() -> None:
    # the caller cut the agent off at 3.0 s; LiveKit ended the turn at 5.5 s, when it
    # committed it, just before the agent's next turn
    caller, agent = [(2.4, 4.8)], [(1.0, 3.0), (5.6, 6.4)]
    transcript = [
        entry("assistant", 1.0, 5.5, interrupted=True),
        entry("user", 2.4, 4.8),
        entry("assistant", 5.6, 6.4),
    ]
    scanned = analysis.scan(call_audio(caller, agent), RATE)
    (cut, _, answer) = analysis.alignment(transcript, scanned)
    assert (cut.ok, cut.coverage) == (True, 1.0)  # not "only 44% has speech"
    assert answer.ok is True
    assert analysis.interruptions(transcript, scanned) == [{"turn": 0, "stopped_s": 3.0}]


def test_agent_turns_left_unmeasured_say_why() -> None:
    caller, agent = [(2.0, 3.0)], [(0.5, 1.5), (3.5, 4.5), (5.0, 6.0)]
    transcript = [
        entry("assistant", 0.5, 1.5),  # a greeting
        entry("user", 2.0, 3.0),
        entry("assistant", 3.5, 4.5),
        entry("assistant", 5.0, 6.0),  # a follow-up
        entry("user", 7.0, 7.5),
        entry("assistant", 8.5, 9.0),  # the transcript says so; the agent channel is silent
        entry("user", 10.2, 10.5),
        entry("assistant", 11.0, 12.0),  # after the end of the recording
    ]
    scanned = analysis.scan(call_audio(caller + [(7.0, 7.5)], agent), RATE)
    result = analysis.analyze(transcript, [], scanned)
    assert [row["turn"] for row in result["latency"]] == [2]
    assert result["latency_skipped"] == [
        {"turn": 0, "why": "no caller turn before it"},
        {"turn": 3, "why": "no caller turn before it"},
        {"turn": 5, "why": "its audio is not where the transcript says"},
        {"turn": 7, "why": "after the end of the recording"},
    ]
    assert result["version"] == analysis.VERSION


def test_a_realtime_models_time_to_first_token_stands_in_for_the_llms() -> None:
    metrics = [{"kind": "realtime_model", "audioOffsetMs": 4000, "ttft": 0.35}]
    scanned = analysis.scan(call_audio(CALLER, AGENT), RATE)
    (row,) = analysis.latency(TRANSCRIPT, metrics, scanned)
    assert (row.eou_s, row.stt_s, row.llm_ttft_s, row.tts_ttfb_s) == (None, None, 0.35, None)
    assert row.remainder_s == 0.45


def test_a_shifted_transcript_is_flagged_and_not_measured() -> None:
    shifted = [
        entry(e["role"], e["audioOffsetMs"] / 1000 + 1.0, e["endAudioOffsetMs"] / 1000 + 1.0)
        for e in TRANSCRIPT
    ]
    scanned = analysis.scan(call_audio(CALLER, AGENT), RATE)
    checks = analysis.alignment(shifted, scanned)
    assert [c.ok for c in checks] == [False, False, False]
    assert [c.onset_error_s for c in checks] == [-1.0, -1.0, -1.0]
    assert analysis.latency(shifted, [], scanned) == []
