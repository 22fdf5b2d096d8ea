"""The stereo recording, laid out on one clock and cut into PCM chunks (worker thread only).

Both channels are placed on the wall clock from ``t0`` (the call's start, the recording's
first sample): the caller's audio where it arrived, the agent's where its playback started,
for as long as it actually played. Whatever nothing was placed over is real silence. Chunks
leave as soon as the timeline behind them can no longer change, so memory stays bounded by
the longest agent turn in flight, not by the call.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from math import gcd

import numpy as np
import soundfile as sf
from livekit import rtc

from .._handoff.audio_buffer import RESYNC_TOLERANCE

logger = logging.getLogger("roark.recording")

# a caller source silent this long (in processing time) is taken as really silent
INPUT_STALL = 1.0
# seconds of caller audio resampled in one go
INPUT_BATCH = 0.5


def mono_pcm(data: bytes, channels: int) -> np.ndarray:
    """int16 interleaved PCM as mono int16."""
    pcm = np.frombuffer(data, dtype=np.int16)
    if channels > 1:
        pcm = pcm[: len(pcm) - len(pcm) % channels].reshape(-1, channels).mean(axis=1)
        pcm = pcm.astype(np.int16)
    return pcm


class _Upsampler:
    """Streaming linear interpolation, for a source slower than the recording.

    Speech at 8 or 16 kHz has little energy near its Nyquist, so the images linear
    interpolation leaves are faint; it costs a sixth of a call into LiveKit's native
    resampler, which the caller's channel would pay all call long.
    """

    def __init__(self, source_rate: int, rate: int) -> None:
        self._step = source_rate / rate
        self._pos = 0.0  # where the next output sample falls, in input samples of the buffer
        self._prev: np.ndarray | None = None

    def push(self, x: np.ndarray) -> np.ndarray:
        buf = x if self._prev is None else np.concatenate([self._prev, x])
        if len(buf) < 2:
            self._prev = buf
            return np.zeros(0, dtype=np.float32)
        last = len(buf) - 1
        count = int(np.floor((last - self._pos) / self._step)) + 1
        positions = self._pos + np.arange(count) * self._step
        # np.interp without its search: the positions are evenly spaced and sorted
        left = positions.astype(np.intp)
        np.minimum(left, last - 1, out=left)
        below = buf[left]
        out = below + (positions - left).astype(np.float32) * (buf[left + 1] - below)
        self._pos = positions[-1] + self._step - last
        self._prev = buf[-1:]
        return out

    def flush(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)


class _PeriodicUpsampler:
    """The same interpolation for a ratio of small integers (16 to 24 kHz: 3 out per 2 in).

    The output repeats its pattern of input positions every ``p`` samples, so each phase is
    two strided slices of the input: no index arrays, a quarter of the general case's CPU.
    """

    MAX_PHASES = 16

    def __init__(self, source_rate: int, rate: int) -> None:
        common = gcd(source_rate, rate)
        self._q, self._p = source_rate // common, rate // common
        positions = np.arange(self._p) * self._q / self._p
        self._index = [int(i) for i in np.floor(positions)]
        self._frac = [float(f) for f in positions - np.floor(positions)]
        self._held = np.zeros(0, dtype=np.float32)

    def push(self, x: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self._held, x]) if len(self._held) else x
        q = self._q
        # period k reads inputs k*q + index[j] and the one after; index[-1] < q
        reach = len(buf) - 2 - self._index[-1]
        periods = reach // q + 1 if reach >= 0 else 0
        out = np.empty((periods, self._p), dtype=np.float32)
        end = periods * q
        for j, (i, frac) in enumerate(zip(self._index, self._frac, strict=True)):
            below = buf[i : i + end : q]
            if frac == 0.0:
                out[:, j] = below
            else:
                out[:, j] = below + np.float32(frac) * (buf[i + 1 : i + 1 + end : q] - below)
        self._held = buf[periods * q :]
        return out.reshape(-1)

    def flush(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)


def _upsampler(source_rate: int, rate: int) -> _Upsampler | _PeriodicUpsampler:
    if rate // gcd(source_rate, rate) <= _PeriodicUpsampler.MAX_PHASES:
        return _PeriodicUpsampler(source_rate, rate)
    return _Upsampler(source_rate, rate)


class _Resampler:
    """Streaming mono int16 to float32 at the recording rate; no resampling when rates match."""

    def __init__(self, source_rate: int, rate: int) -> None:
        self.source_rate = source_rate
        self._up = _upsampler(source_rate, rate) if source_rate < rate else None
        self._inner = (
            None if source_rate <= rate else rtc.AudioResampler(source_rate, rate, num_channels=1)
        )

    def push(self, pcm: np.ndarray) -> np.ndarray:
        if self._up is not None:
            return self._up.push(pcm.astype(np.float32) / 32768.0)
        if self._inner is None:
            return pcm.astype(np.float32) / 32768.0
        return _join(self._inner.push(bytearray(pcm.tobytes())))

    def flush(self) -> np.ndarray:
        if self._up is not None:
            return self._up.flush()
        if self._inner is None:
            return np.zeros(0, dtype=np.float32)
        return _join(self._inner.flush())


def _join(frames: list[rtc.AudioFrame]) -> np.ndarray:
    if not frames:
        return np.zeros(0, dtype=np.float32)
    pcm = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    out = pcm.astype(np.float32) / 32768.0
    # LiveKit's resampler dithers its int16 output; a one-LSB gate keeps silence digital zero
    out[np.abs(pcm) <= 1] = 0.0
    return out


class _Track:
    """One channel: runs of samples placed at absolute sample positions."""

    def __init__(self) -> None:
        self._placed: list[tuple[int, np.ndarray]] = []
        self.dropped = 0
        self.end = 0  # one past the last sample ever placed

    def place(self, start: int, samples: np.ndarray, cursor: int) -> None:
        if len(samples) == 0:
            return
        if start < cursor:
            late = min(len(samples), cursor - start)
            self.dropped += late
            samples, start = samples[late:], cursor
            if len(samples) == 0:
                return
        self._placed.append((start, samples))
        self.end = max(self.end, start + len(samples))

    def held(self) -> int:
        return sum(len(samples) for _, samples in self._placed)

    def take(self, start: int, end: int) -> np.ndarray:
        block = np.zeros(end - start, dtype=np.float32)
        keep: list[tuple[int, np.ndarray]] = []
        for pos, samples in self._placed:
            stop = pos + len(samples)
            if stop <= start:
                continue
            if pos >= end:
                keep.append((pos, samples))
                continue
            lo, hi = max(pos, start), min(stop, end)
            block[lo - start : hi - start] += samples[lo - pos : hi - pos]
            if stop > end:
                keep.append((end, samples[end - pos :]))
        self._placed = keep
        return block


@dataclass
class _AgentSegment:
    """One agent playback segment: the audio captured for it and where it played."""

    captured_at: float
    rate: int = 0
    parts: list[np.ndarray] = field(default_factory=list)  # mono int16
    started_at: float | None = None
    #: the start was said at capture, not at playback (an avatar): its finish places it
    provisional: bool = False
    progressed: bool = False

    def audio(self) -> np.ndarray:
        if len(self.parts) != 1:
            self.parts = [np.concatenate(self.parts) if self.parts else np.zeros(0, np.int16)]
        return self.parts[0]


class Recording:
    """Lays one call's audio on the timeline and hands out finished chunks via ``emit``."""

    def __init__(
        self,
        *,
        t0: float,
        sample_rate: int,
        chunk_bytes: int,
        emit: Callable[[int, bytes], None],
    ) -> None:
        self.t0 = t0
        self.rate = sample_rate
        self._emit = emit
        self._chunk_frames = chunk_bytes // 4
        self._tracks = (_Track(), _Track())
        self._cursor = 0  # samples already cut into chunks
        #: most samples ever held at once (placed ahead of the cursor plus not yet a chunk)
        self.high_water = 0
        self._pending: list[np.ndarray] = []  # stereo int16 blocks not yet a full chunk
        self._pending_frames = 0
        self.chunks = 0
        # caller run state
        self._in_resampler: _Resampler | None = None
        self._run_start: float | None = None
        self._run_samples = 0  # placed, at the recording rate
        self._run_fed = 0  # handed in, at the source rate
        # caller audio waiting for the resampler: one call per batch, not per 20 ms frame,
        # as each call into LiveKit's native resampler has a fixed cost
        self._in_batch: list[bytes] = []
        self._in_batched = 0
        self._in_channels = 1
        self._input_end = t0
        self._input_seen_at: float | None = None
        self._segments: dict[int, _AgentSegment] = {}

    # -- positions -------------------------------------------------------------------------

    def sample_at(self, wall: float) -> int:
        return max(0, round((wall - self.t0) * self.rate))

    def offset_ms(self, wall: float) -> int:
        return max(0, round((wall - self.t0) * 1000))

    # -- caller ----------------------------------------------------------------------------

    def add_caller_audio(
        self, at: float, data: bytes, rate: int, channels: int, now: float
    ) -> None:
        samples = len(data) // (2 * channels)
        resampler = self._in_resampler
        expected = None if self._run_start is None else self._run_start + self._run_fed / rate
        if (
            expected is None
            or abs(at - expected) > RESYNC_TOLERANCE
            or resampler is None
            or resampler.source_rate != rate
            or channels != self._in_channels
        ):
            self._end_input_run()
            self._run_start, self._run_samples, self._run_fed = at, 0, 0
            self._in_resampler = _Resampler(rate, self.rate)
            self._in_channels = channels
        # raw bytes until the batch is resampled: one conversion per batch, not per frame
        self._in_batch.append(data)
        self._in_batched += samples
        self._run_fed += samples
        if self._in_batched >= rate * INPUT_BATCH:
            self._resample_input()
        self._input_end = max(self._input_end, at + samples / rate)
        self._input_seen_at = now
        if self.sample_at(self._input_end) - self._cursor > 2 * self._chunk_frames:
            # a chunk's worth is waiting: cut it now rather than at the next pass, so a
            # source delivering faster than real time does not pile audio up in memory
            self.cut(now)

    def _resample_input(self) -> None:
        if not self._in_batch or self._in_resampler is None:
            return
        batch = mono_pcm(b"".join(self._in_batch), self._in_channels)
        self._in_batch, self._in_batched = [], 0
        self._place_input(self._in_resampler.push(batch))

    def _place_input(self, samples: np.ndarray) -> None:
        assert self._run_start is not None
        start = self.sample_at(self._run_start) + self._run_samples
        self._tracks[0].place(start, samples, self._cursor)
        self._run_samples += len(samples)

    def _end_input_run(self) -> None:
        self._resample_input()
        if self._in_resampler is not None and self._run_start is not None:
            self._place_input(self._in_resampler.flush())
        self._in_resampler = None
        self._run_start = None
        self._run_samples = 0
        self._run_fed = 0

    # -- agent -----------------------------------------------------------------------------

    def add_agent_audio(
        self, segment: int, data: bytes, rate: int, channels: int, at: float
    ) -> None:
        seg = self._segments.get(segment)
        if seg is None:
            seg = self._segments[segment] = _AgentSegment(captured_at=at, rate=rate)
        mono = mono_pcm(data, channels)
        if rate != seg.rate and seg.parts:
            # a sink that changes rate mid-segment: keep the segment at its first rate
            resampled = _Resampler(rate, seg.rate).push(mono)
            mono = np.clip(np.round(resampled * 32768.0), -32768, 32767).astype(np.int16)
        else:
            seg.rate = rate
        seg.parts.append(mono)

    def playback_started(self, segment: int, at: float, provisional: bool = False) -> None:
        seg = self._segments.get(segment)
        if seg is not None and seg.started_at is None:
            seg.started_at = at
            seg.provisional = provisional

    def playback_progressed(
        self, segment: int, started_at: float, offset: float, dur: float
    ) -> None:
        seg = self._segments.get(segment)
        if seg is None:
            return
        seg.progressed = True
        self._place_output(seg, started_at, offset, dur)

    def playback_finished(self, segment: int, played: float, at: float) -> None:
        """Segment ``segment`` stopped at ``at`` after ``played`` seconds of it."""
        seg = self._segments.pop(segment, None)
        if seg is None:
            return
        if not seg.progressed:
            started = seg.started_at
            if started is None or seg.provisional:
                started = at - played
            self._place_output(seg, started, 0.0, played)

    def _place_output(
        self, seg: _AgentSegment, started_at: float, offset: float, dur: float
    ) -> None:
        audio = seg.audio()
        if not seg.rate or dur <= 0:
            return
        lo = round(offset * seg.rate)
        hi = min(len(audio), round((offset + dur) * seg.rate))
        if hi <= lo:
            return
        resampler = _Resampler(seg.rate, self.rate)
        piece = np.concatenate([resampler.push(audio[lo:hi]), resampler.flush()])
        self._tracks[1].place(self.sample_at(started_at), piece, self._cursor)

    # -- chunks ----------------------------------------------------------------------------

    def _settled(self, now: float) -> int:
        """How far the timeline can no longer change."""
        stalled = self._input_seen_at is None or now - self._input_seen_at > INPUT_STALL
        if stalled:
            # the caller went quiet: place what the resampler holds, then take the gap as silence
            self._end_input_run()
            end = self.sample_at(max(self._input_end, now - INPUT_STALL))
        else:
            end = self.sample_at(self._input_end)
            if self._run_start is not None:
                end = min(end, self.sample_at(self._run_start) + self._run_samples)
        for seg in self._segments.values():
            # a segment in flight has not said yet where its audio goes
            end = min(end, self.sample_at(seg.captured_at))
        return end

    def cut(self, now: float) -> None:
        self._resample_input()
        end = self._settled(now)
        # cut in whole chunks: fewer, larger numpy operations (finish() cuts the rest)
        if end - self._cursor + self._pending_frames >= self._chunk_frames:
            self._advance(end)

    def _advance(self, end: int) -> None:
        if end <= self._cursor:
            return
        block = np.empty((end - self._cursor, 2), dtype=np.float32)
        block[:, 0] = self._tracks[0].take(self._cursor, end)
        block[:, 1] = self._tracks[1].take(self._cursor, end)
        self._cursor = end
        block *= 32768.0
        np.rint(block, out=block)
        np.clip(block, -32768, 32767, out=block)
        block = block.astype(np.int16)
        self._pending.append(block)
        self._pending_frames += len(block)
        while self._pending_frames >= self._chunk_frames:
            joined = np.concatenate(self._pending)
            self._emit_chunk(joined[: self._chunk_frames])
            rest = joined[self._chunk_frames :]
            self._pending = [rest] if len(rest) else []
            self._pending_frames = len(rest)
        held = self._pending_frames + sum(t.held() for t in self._tracks)
        self.high_water = max(self.high_water, held)

    def _emit_chunk(self, frames: np.ndarray) -> None:
        buf = io.BytesIO()
        sf.write(buf, frames, self.rate, format="RAW", subtype="PCM_16", endian="LITTLE")
        self._emit(self.chunks, buf.getvalue())
        self.chunks += 1

    def finish(self, ended_at: float) -> None:
        """Place everything still open and cut the rest of the recording up to ``ended_at``."""
        self._end_input_run()
        for segment, seg in list(self._segments.items()):
            if seg.started_at is not None and not seg.progressed:
                # never reported finished: assume it played from its start until the end
                self._place_output(seg, seg.started_at, 0.0, max(0.0, ended_at - seg.started_at))
            del self._segments[segment]
        end = max(self.sample_at(ended_at), self._tracks[0].end, self._tracks[1].end)
        self._advance(end)
        if self._pending_frames:
            self._emit_chunk(np.concatenate(self._pending))
            self._pending, self._pending_frames = [], 0
        dropped = sum(t.dropped for t in self._tracks)
        if dropped:
            logger.warning(
                "%d samples arrived after their place on the recording was cut and were dropped",
                dropped,
            )
