"""Per-tap audio buffers: frames joined into runs, within the hand-off's byte budget."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._failures import Stats
from .records import AgentAudio, CallerAudio

if TYPE_CHECKING:
    from .channel import HandOff

logger = logging.getLogger("roark.handoff")

# a caller frame later than its run's clock by more than this starts a new run; a run that
# begins this close to the end of the one before it follows on from it
RESYNC_TOLERANCE = 0.1
# the count of audio frames dropped over the budget (``Stats``)
FRAMES_DROPPED = "audio_frames_dropped"


class _Run:
    """Consecutive frames of one format (and one agent segment), joined.

    A caller run's ``at`` is when its first sample began, estimated from the arrival stamps.
    A frame is never early, only late (the loop was busy, or blocked: the native stream
    queued the frames meanwhile and hands them over in a burst afterwards), so the estimate
    is the earliest any frame allows: its stamp less the run's audio before it.
    """

    __slots__ = ("at", "rate", "channels", "segment", "samples", "data", "joins")

    def __init__(
        self, at: float, rate: int, channels: int, segment: int, joins: float | None = None
    ) -> None:
        self.at = at
        self.rate = rate
        self.channels = channels
        self.segment = segment
        self.samples = 0
        self.data = bytearray()
        #: a caller run begun by a frame later than its run's clock: where that run ended
        #: (None once it is known to follow on from it, or when it follows nothing)
        self.joins = joins

    def same_format(self, rate: int, channels: int, segment: int) -> bool:
        return rate == self.rate and channels == self.channels and segment == self.segment

    def began_by(self, start: float) -> None:
        """A frame says this run began by ``start`` (earlier than ``at``): re-anchor it."""
        joins = self.joins
        if joins is not None and start <= joins + RESYNC_TOLERANCE:
            # it caught up with the run before it: the burst of a stalled loop, not a pause
            # of the source; it follows on from that run, and moves with it from now on
            self.joins = None
            start = min(start, joins)
        self.at = start

    def follow(self) -> _Run:
        """The run's next frames, once the frames so far were taken."""
        end = self.samples / self.rate
        joins = None if self.joins is None else self.joins + end
        return _Run(self.at + end, self.rate, self.channels, self.segment, joins)

    def record(self) -> CallerAudio | AgentAudio:
        if self.segment < 0:
            return CallerAudio(at=self.at, data=self.data, rate=self.rate, channels=self.channels)
        return AgentAudio(
            segment=self.segment,
            at=self.at,
            data=self.data,
            rate=self.rate,
            channels=self.channels,
        )


class AudioBuffer:
    """The frames of one audio tap, joined into runs until the processor takes them.

    A Python object per 20 ms frame per call costs the event loop more than the frame's copy,
    and keeps the garbage collector busy (frames waiting for the processor outlive the
    youngest generation); appending to a bytearray costs neither. The loop appends, the
    processor takes, both under the buffer's lock (never contended for long).
    """

    def __init__(self, handoff: HandOff, stats: Stats) -> None:
        self._handoff = handoff
        self._stats = stats
        self._lock = threading.Lock()
        self._runs: list[_Run] = []
        self._current: _Run | None = None
        self.closed = False

    def append(self, at: float, data: Any, rate: int, channels: int, segment: int = -1) -> None:
        """Add one frame's int16 PCM (any buffer; it is copied). ``segment`` < 0: caller."""
        size = len(data) * getattr(data, "itemsize", 1)
        if self.closed or not size:
            return
        if not self._handoff.reserve(size):
            if self._stats.add(FRAMES_DROPPED) == 1:
                logger.warning(
                    "roark workers are behind: dropping audio frames (they will be "
                    "silence on the recording)"
                )
            return
        with self._lock:
            run = self._current
            if run is None or not run.same_format(rate, channels, segment):
                run = self._start(_Run(at, rate, channels, segment))
            elif segment < 0:
                # the caller's clock: written out here, not in a method (it runs per frame)
                late = at - run.at - run.samples / rate
                if late > RESYNC_TOLERANCE:
                    # a pause of the source, or the first frame of a stalled loop's burst
                    run = self._start(_Run(at, rate, channels, segment, at - late))
                elif late < 0.0:
                    run.began_by(run.at + late)
            run.data += data
            run.samples += size // (2 * channels)

    def _start(self, run: _Run) -> _Run:
        """Close the current run (under the lock) and make ``run`` the current one."""
        current = self._current
        if current is not None and current.samples:
            self._runs.append(current)
        self._current = run
        return run

    def take(self) -> list[CallerAudio | AgentAudio]:
        """Everything appended so far, oldest first, no longer counted against the budget."""
        taken: list[CallerAudio | AgentAudio] = []
        self.hand_over(taken.append)
        return taken

    def hand_over(self, put: Callable[[CallerAudio | AgentAudio], None]) -> None:
        """Give ``put`` everything appended so far, oldest first, under the buffer's lock:
        what two threads take (the loop posting a record, the processor between records)
        reaches ``put`` in the order it was appended."""
        with self._lock:
            runs, self._runs = self._runs, []
            run = self._current
            if run is not None and run.samples:
                runs.append(run)
                # the next frames continue this run where the taken part ended
                self._current = run.follow()
            for taken in runs:
                put(taken.record())
        if runs:
            self._handoff.release(sum(len(r.data) for r in runs))
