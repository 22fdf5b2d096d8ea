"""The scripted speaker: takes the agent's audio faster than real time, plays it in real time.

``RealtimeAudioOutput`` is the session's ``output.audio``: it never blocks the agent's
pipeline, models a device consuming buffered audio at real-time speed, and reports
``playback_started``/``playback_finished`` (with the position reached when the caller
barges in) as LiveKit's room output does, so interruptions and the agent's transcript
behave as in production. What it really played, segment by segment, is the truth a test
compares against: :attr:`RealtimeAudioOutput.segments`, a list of :class:`PlayedSegment`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass

from livekit import rtc
from livekit.agents import utils
from livekit.agents.voice import io

from ._shared import SECONDS_TOLERANCE

__all__ = ["PlayedSegment", "RealtimeAudioOutput"]


@dataclass(frozen=True)
class PlayedSegment:
    """What the speaker did with one playback segment (audio between two flushes).

    Example::

        seg = call.output.segments[0]
        assert not seg.interrupted and abs(seg.played_seconds - 1.6) < 0.06
    """

    started_at: float | None
    """Wall time the first frame started playing; ``None`` if nothing was played."""
    played_seconds: float
    """Seconds of audio actually played (pauses excluded)."""
    interrupted: bool
    """Whether ``clear_buffer()`` cut the segment short."""
    captured_seconds: float
    """Seconds of audio the segment received."""
    finished_at: float
    """Wall time playback finished or was interrupted."""


@dataclass(eq=False)
class _SegmentPlayout:
    """The speaker's running account of one segment it is capturing or playing."""

    captured: float = 0.0
    """Seconds of audio received so far."""
    flushed: bool = False
    """No more audio will come for this segment."""
    played_before: float = 0.0
    """Seconds played before ``playing_since``."""
    playing_since: float | None = None
    """Monotonic time the device (re)started consuming audio; ``None`` while stopped."""
    started_at: float | None = None


def _init_audio_output(obj: io.AudioOutput, label: str, sample_rate: int | None) -> None:
    try:
        io.AudioOutput.__init__(
            obj,
            label=label,
            capabilities=io.AudioOutputCapabilities(pause=True),
            sample_rate=sample_rate,
        )
    except (TypeError, AttributeError):  # older 1.x: no capabilities
        io.AudioOutput.__init__(obj, label=label, next_in_chain=None, sample_rate=sample_rate)


class RealtimeAudioOutput(io.AudioOutput):
    """The agent's speaker: accepts audio faster than real time, plays it in real time.

    ``capture_frame`` never blocks; a background task models a device consuming the
    buffered audio at real-time speed. It reports ``playback_started`` when a segment's
    first frame starts playing and ``playback_finished`` once per segment: when a flushed
    segment has fully played, or on ``clear_buffer()`` with the position reached.
    ``pause()``/``resume()`` stop and restart the device clock. An underrun (audio
    arriving slower than real time) stalls playback like a real device would. The truth
    is in :attr:`segments`.

    Example::

        speaker = RealtimeAudioOutput()
        session.output.audio = speaker
        ...
        assert not speaker.segments[0].interrupted
    """

    def __init__(
        self, *, sample_rate: int | None = None, label: str = "RealtimeAudioOutput"
    ) -> None:
        _init_audio_output(self, label, sample_rate)
        self._queue: collections.deque[_SegmentPlayout] = collections.deque()
        self._capturing: _SegmentPlayout | None = None
        self._paused = False
        self._wake = asyncio.Event()
        self._idle_event = asyncio.Event()
        self._idle_event.set()
        self._task: asyncio.Task[None] | None = None
        self.segments: list[PlayedSegment] = []
        """Finished segments, in order."""

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def idle(self) -> bool:
        """Nothing buffered, playing or being captured."""
        return not self._queue and self._capturing is None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        seg = self._capturing
        if seg is None:
            seg = self._capturing = _SegmentPlayout()
            self._queue.append(seg)
            self._idle_event.clear()
        self._fold_played(seg)
        seg.captured += frame.samples_per_channel / frame.sample_rate
        self._maybe_start()
        self._wake_playout()

    def flush(self) -> None:
        super().flush()
        if self._capturing is not None:
            self._capturing.flushed = True
            self._capturing = None
            self._wake_playout()

    def clear_buffer(self) -> None:
        if self._capturing is not None:
            # clear_buffer ends the segment being captured too; keep the base counters right
            io.AudioOutput.flush(self)
            self._capturing.flushed = True
            self._capturing = None
        while self._queue:
            seg = self._queue.popleft()
            complete = seg.flushed and self._played(seg) >= seg.captured - SECONDS_TOLERANCE
            self._finish(seg, interrupted=not complete)
        self._wake.set()
        self._idle_event.set()

    def pause(self) -> None:
        if self._paused:
            return
        if self._queue:
            self._fold_played(self._queue[0])
            self._queue[0].playing_since = None
        self._paused = True
        self._wake.set()

    def resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if self._queue and self._queue[0].started_at is not None:
            self._queue[0].playing_since = time.monotonic()
        self._maybe_start()
        self._wake_playout()

    async def aclose(self) -> None:
        """Stop the playback task; unfinished segments are reported as interrupted."""
        if self._queue or self._capturing is not None:
            self.clear_buffer()
        if self._task is not None:
            await utils.aio.cancel_and_wait(self._task)
            self._task = None

    async def wait_idle(self) -> None:
        """Wait until nothing is buffered or playing."""
        while not self.idle:
            await self._idle_event.wait()

    def _played(self, seg: _SegmentPlayout) -> float:
        if seg.playing_since is None:
            return min(seg.played_before, seg.captured)
        return min(seg.captured, seg.played_before + (time.monotonic() - seg.playing_since))

    def _fold_played(self, seg: _SegmentPlayout) -> None:
        # folding the elapsed time in (clamped to what was captured) also models an underrun:
        # the device stalls at the end of the buffer and restarts from `now`
        if seg.playing_since is not None:
            seg.played_before = self._played(seg)
            seg.playing_since = time.monotonic()

    def _maybe_start(self) -> None:
        if not self._queue or self._paused:
            return
        seg = self._queue[0]
        if seg.started_at is None and seg.captured > 0:
            seg.started_at = time.time()
            seg.playing_since = time.monotonic()
            if hasattr(self, "on_playback_started"):
                self.on_playback_started(created_at=seg.started_at)

    def _finish(self, seg: _SegmentPlayout, *, interrupted: bool) -> None:
        played = self._played(seg)
        self.segments.append(
            PlayedSegment(
                started_at=seg.started_at,
                played_seconds=played,
                interrupted=interrupted,
                captured_seconds=seg.captured,
                finished_at=time.time(),
            )
        )
        self.on_playback_finished(playback_position=played, interrupted=interrupted)

    def _wake_playout(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._playout(), name="RealtimeAudioOutput._playout")

    async def _playout(self) -> None:
        while self._queue:
            self._wake.clear()
            seg = self._queue[0]
            self._maybe_start()
            timeout: float | None = None
            if seg.flushed and not self._paused:
                remaining = seg.captured - self._played(seg)
                if remaining <= SECONDS_TOLERANCE:
                    self._queue.popleft()
                    self._finish(seg, interrupted=False)
                    continue
                timeout = remaining
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        if self._capturing is None:
            self._idle_event.set()
