"""The stereo recording, laid out on one clock and cut into PCM chunks (worker thread only).

Both channels are placed on the wall clock from ``t0`` (the call's start, the recording's
first sample): the caller's audio where it began, the agent's where its playback started,
for as long as it actually played. Whatever nothing was placed over is real silence. The
timeline is cut as soon as it can no longer change, and leaves in chunks of ``chunk_bytes``,
so memory stays bounded by the longest agent turn in flight, not by the call.

The caller's audio is a stream: it stays one run, sample after sample, while its frames keep
to the run's clock. Frames are never early, only late, so a frame earlier than the clock
moves the run (and what of it is placed) earlier: a run that broke off because a stalled
event loop handed a burst of queued frames over late finds its place again, and where it
reaches the audio before it, it follows on from it without a gap. Audio is never placed
before the audio before it, nor moved across a cut: while a run may still move, the cut
waits behind the place it could move to. A pause of the source (frames stop, then resume
in real time) stays a silence of its length.

The tail (everything after the last chunk, as it stands: an agent turn still playing is
placed as if it played on) is handed to ``tail`` every pass, as changes to a file that only
grows unless something already written changed: a process killed mid-call loses only what
came after the last pass, and the tail becomes the next chunk's file without being written
again.
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


def _int16(block: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) as int16, rounded and clipped; ``block`` is reused."""
    block *= 32768.0
    np.rint(block, out=block)
    np.clip(block, -32768, 32767, out=block)
    return block.astype(np.int16)


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
        self._taken_to = 0

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

    def shift(self, start: int, by: int) -> None:
        """Move what was placed from ``start`` on by ``by`` samples (never before a take)."""
        self._placed = [(pos + by if pos >= start else pos, part) for pos, part in self._placed]
        self.end = max([self._taken_to] + [pos + len(part) for pos, part in self._placed])

    def held(self) -> int:
        return sum(len(samples) for _, samples in self._placed)

    def take(self, start: int, end: int) -> np.ndarray:
        """Samples ``start..end`` (what nothing was placed over is silence), then forgotten."""
        block = self.peek(start, end)
        self._taken_to = max(self._taken_to, end)
        keep: list[tuple[int, np.ndarray]] = []
        for pos, samples in self._placed:
            stop = pos + len(samples)
            if pos >= end:
                keep.append((pos, samples))
            elif stop > end:
                keep.append((end, samples[end - pos :]))
        self._placed = keep
        return block

    def peek(self, start: int, end: int) -> np.ndarray:
        block = np.zeros(end - start, dtype=np.float32)
        for pos, samples in self._placed:
            lo, hi = max(pos, start), min(pos + len(samples), end)
            if lo < hi:
                block[lo - start : hi - start] += samples[lo - pos : hi - pos]
        return block


@dataclass
class _InputRun:
    """The caller's audio since its source last broke off (a pause, a new format)."""

    at: float  # when its first sample began, as its frames say (wall)
    pos: int  # where its first sample is placed
    floor_at: float  # where the caller's audio before it ended: it cannot begin earlier
    floor: int  # ... on the recording
    #: source samples after which it is taken as placed for good: a stalled loop's burst
    #: shows where it began within the first of them (no more than the gap before it)
    open_for: int
    fed: int = 0  # handed in, at the source rate
    placed: int = 0  # placed, at the recording rate


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
    #: where the audio placed so far began and ended on the call's clock
    placed: tuple[float, float] | None = None

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
        tail: Callable[[int, int, bytes], None] | None = None,
    ) -> None:
        self.t0 = t0
        self.rate = sample_rate
        self._emit = emit
        #: (chunk index, bytes to keep, bytes that follow): the tail file of that chunk
        self._tail_out = tail
        self._chunk_frames = chunk_bytes // 4
        self._tracks = (_Track(), _Track())
        self._cursor = 0  # samples already cut (into chunks, or pending)
        #: most samples ever held at once (placed ahead of the cursor plus not yet a chunk)
        self.high_water = 0
        self._pending = bytearray()  # cut, encoded, not yet a whole chunk
        self.chunks = 0
        # the tail as last handed out: its length, and from where it may have changed since
        self._tail_frames = 0
        self._rendered_to = 0
        self._changed_from: int | None = None
        # caller run state: the run, and where the caller's audio before it ended
        self._in_resampler: _Resampler | None = None
        self._run: _InputRun | None = None
        self._input_floor_at = float("-inf")
        self._input_floor = 0
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
        run, resampler = self._run, self._in_resampler
        if (
            run is None
            or resampler is None
            or resampler.source_rate != rate
            or channels != self._in_channels
        ):
            run = self._new_input_run(at, rate, channels)
        else:
            late = at - run.at - run.fed / rate
            if late > RESYNC_TOLERANCE:
                # a pause of the source, or the start of a stalled loop's burst
                run = self._new_input_run(at, rate, channels)
            elif late < 0.0:
                # frames are never early: the run began earlier than it was anchored
                self._move_input_run(run, run.at + late, rate)
        # raw bytes until the batch is resampled: one conversion per batch, not per frame
        self._in_batch.append(data)
        self._in_batched += samples
        run.fed += samples
        if self._in_batched >= rate * INPUT_BATCH:
            self._resample_input()
        self._input_end = max(self._input_end, at + samples / rate)
        self._input_seen_at = now
        if self.sample_at(self._input_end) - self._cursor > 2 * self._chunk_frames:
            # a chunk's worth is waiting: cut it now rather than at the next pass, so a
            # source delivering faster than real time does not pile audio up in memory
            self.cut(now)

    def _new_input_run(self, at: float, rate: int, channels: int) -> _InputRun:
        self._end_input_run()
        floor_at, floor = self._input_floor_at, self._input_floor
        start, pos = self._input_place(at, floor_at, floor)
        gap = min(INPUT_STALL, max(0.0, at - floor_at))
        run = self._run = _InputRun(start, pos, floor_at, floor, open_for=round(gap * rate))
        self._in_resampler = _Resampler(rate, self.rate)
        self._in_channels = channels
        return run

    def _input_place(self, at: float, floor_at: float, floor: int) -> tuple[float, int]:
        """Where caller audio beginning at ``at`` goes, after the audio that ended at
        ``floor_at`` (placed up to ``floor``) and never before the cut."""
        if at <= floor_at + RESYNC_TOLERANCE:
            # it follows on from that audio: sample for sample, whatever the jitter
            return min(at, floor_at), max(floor, self._cursor)
        return at, max(self.sample_at(at), floor, self._cursor)

    def _move_input_run(self, run: _InputRun, start: float, rate: int) -> None:
        """Re-anchor ``run`` to ``start``: what of it is placed moves with it, unless some of
        it was cut already (audio never moves across a cut: the rest stays behind it)."""
        run.at, pos = self._input_place(start, run.floor_at, run.floor)
        self._input_end = run.at + run.fed / rate
        if pos < run.pos and run.pos >= self._cursor:
            self._tracks[0].shift(run.pos, pos - run.pos)
            self._changed(pos)
            run.pos = pos

    def _resample_input(self) -> None:
        if not self._in_batch or self._in_resampler is None:
            return
        batch = mono_pcm(b"".join(self._in_batch), self._in_channels)
        self._in_batch, self._in_batched = [], 0
        self._place_input(self._in_resampler.push(batch))

    def _place_input(self, samples: np.ndarray) -> None:
        run = self._run
        assert run is not None
        start = run.pos + run.placed
        self._changed(start)
        self._tracks[0].place(start, samples, self._cursor)
        run.placed += len(samples)

    def _end_input_run(self) -> None:
        self._resample_input()
        run = self._run
        if run is not None and self._in_resampler is not None:
            self._place_input(self._in_resampler.flush())
            self._input_floor_at = run.at + run.fed / self._in_resampler.source_rate
            self._input_floor = run.pos + run.placed
        self._in_resampler = None
        self._run = None

    # -- agent -----------------------------------------------------------------------------

    def add_agent_audio(
        self, segment: int, data: bytes, rate: int, channels: int, at: float
    ) -> None:
        seg = self._segments.get(segment)
        if seg is None:
            seg = self._segments[segment] = _AgentSegment(captured_at=at, rate=rate)
        if seg.started_at is not None and not seg.progressed and seg.rate:
            # playing already: the tail handed out so far ended where its audio did
            captured = sum(len(part) for part in seg.parts) * self.rate // seg.rate
            self._changed(self.sample_at(seg.started_at) + captured)
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
            self._changed(self.sample_at(at))

    def playback_progressed(
        self, segment: int, started_at: float, offset: float, dur: float
    ) -> None:
        seg = self._segments.get(segment)
        if seg is None:
            return
        seg.progressed = True
        self._place_output(seg, started_at, offset, dur)

    def playback_finished(
        self, segment: int, played: float, at: float
    ) -> tuple[float, float] | None:
        """Segment ``segment`` stopped at ``at`` after ``played`` seconds of it; returns where
        its audio began and ended on the call's clock (None: no audio of it was placed)."""
        seg = self._segments.pop(segment, None)
        if seg is None:
            return None
        if not seg.progressed:
            started = seg.started_at
            if started is None or seg.provisional:
                started = at - played
            # the tail placed it from its start as if it played on
            rendered = started if seg.started_at is None else min(started, seg.started_at)
            self._changed(self.sample_at(rendered))
            self._place_output(seg, started, 0.0, played)
        return seg.placed

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
        self._changed(self.sample_at(started_at))
        self._tracks[1].place(self.sample_at(started_at), piece, self._cursor)
        end = started_at + (hi - lo) / seg.rate
        if seg.placed is not None:
            started_at, end = min(seg.placed[0], started_at), max(seg.placed[1], end)
        seg.placed = (started_at, end)

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
            run = self._run
            if run is not None:
                end = min(end, run.pos + run.placed)
                lowest = max(run.floor, self._cursor)
                if run.fed < run.open_for and run.pos > lowest:
                    # a burst may yet show it began earlier, down to the audio before it
                    end = min(end, lowest)
        for seg in self._segments.values():
            # a segment in flight has not said yet where its audio goes
            end = min(end, self.sample_at(seg.captured_at))
        return end

    def cut(self, now: float) -> None:
        """Cut the timeline as far as it can no longer change, once that makes a whole chunk
        (the tail, ``sync_tail``, has everything after the cut as it stands)."""
        self._resample_input()
        end = self._settled(now)
        if end - self._cursor + len(self._pending) // 4 >= self._chunk_frames:
            self._advance(end)

    def _advance(self, end: int) -> None:
        if end <= self._cursor:
            return
        block = np.empty((end - self._cursor, 2), dtype=np.float32)
        block[:, 0] = self._tracks[0].take(self._cursor, end)
        block[:, 1] = self._tracks[1].take(self._cursor, end)
        self._cursor = end
        self._pending += self._encode(block)
        chunk = self._chunk_frames * 4
        while len(self._pending) >= chunk:
            self._emit_chunk(bytes(self._pending[:chunk]))
            del self._pending[:chunk]
        held = len(self._pending) // 4 + sum(t.held() for t in self._tracks)
        self.high_water = max(self.high_water, held)

    def _encode(self, block: np.ndarray) -> bytes:
        """Float stereo frames as the contract's PCM (16-bit little-endian, interleaved)."""
        buf = io.BytesIO()
        sf.write(buf, _int16(block), self.rate, format="RAW", subtype="PCM_16", endian="LITTLE")
        return buf.getvalue()

    def _emit_chunk(self, data: bytes) -> None:
        self._emit(self.chunks, data)
        self.chunks += 1
        # the tail was this chunk's file: the next one starts empty
        self._tail_frames = 0
        self._rendered_to = self.chunks * self._chunk_frames
        self._changed_from = None

    # -- the tail --------------------------------------------------------------------------

    def _changed(self, position: int) -> None:
        """The timeline may differ from ``position`` on from the tail handed out."""
        if position < self._rendered_to:
            old = self._changed_from
            self._changed_from = position if old is None else min(old, position)

    def sync_tail(self, now: float) -> None:
        """Hand out the tail as of ``now``: what changed in it since the last time, and what
        was added. Nothing leaves when nothing did."""
        if self._tail_out is None:
            return
        start = self.chunks * self._chunk_frames
        horizon = max(self._cursor, self.sample_at(self._tail_until(now)))
        kept = self._tail_frames
        if self._changed_from is not None:
            kept = max(0, min(kept, self._changed_from - start))
        self._changed_from = None
        data = bytearray(self._pending[kept * 4 :])  # cut already: final
        render_from = max(start + kept, self._cursor)
        if horizon > render_from:
            # the same bytes soundfile makes of them (raw little-endian int16), without its
            # objects every pass: the tail file becomes the chunk soundfile encoded
            data += _int16(self._render(render_from, horizon)).astype("<i2").tobytes()
        if kept == self._tail_frames and not data:
            return
        self._tail_out(self.chunks, kept * 4, bytes(data))
        self._tail_frames = kept + len(data) // 4
        self._rendered_to = start + self._tail_frames

    def _tail_until(self, now: float) -> float:
        """How far the tail reaches: up to now, but no further than the caller's audio while
        it streams (what arrives next would only rewrite silence written ahead of it)."""
        if self._input_seen_at is None or now - self._input_seen_at > INPUT_STALL:
            return now
        return min(now, self._input_end)

    def _render(self, start: int, end: int) -> np.ndarray:
        """Samples ``start..end`` as they stand, an agent turn still playing placed as if it
        played on (its end is not known yet)."""
        block = np.empty((end - start, 2), dtype=np.float32)
        block[:, 0] = self._tracks[0].peek(start, end)
        block[:, 1] = self._tracks[1].peek(start, end)
        for seg in self._segments.values():
            if seg.started_at is not None and not seg.progressed and seg.rate:
                self._render_playing(seg, block, start)
        return block

    def _render_playing(self, seg: _AgentSegment, block: np.ndarray, start: int) -> None:
        at = self.sample_at(seg.started_at or 0.0)
        audio, ratio = seg.audio(), seg.rate / self.rate
        lo = max(0, start - at)  # in recording samples from the segment's start
        hi = min(start + len(block) - at, int(len(audio) / ratio))
        if hi <= lo:
            return
        if seg.rate == self.rate:
            piece = audio[lo:hi].astype(np.float32) / 32768.0
        else:
            resampler = _Resampler(seg.rate, self.rate)
            source = audio[int(lo * ratio) : min(len(audio), int(hi * ratio) + 2)]
            piece = np.concatenate([resampler.push(source), resampler.flush()])[: hi - lo]
        block[at + lo - start : at + lo - start + len(piece), 1] += piece

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
        if self._pending:
            data, self._pending = bytes(self._pending), bytearray()
            self._emit_chunk(data)
        dropped = sum(t.dropped for t in self._tracks)
        if dropped:
            logger.warning(
                "%d samples arrived after their place on the recording was cut and were dropped",
                dropped,
            )
