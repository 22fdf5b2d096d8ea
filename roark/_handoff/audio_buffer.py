"""Per-tap audio buffers: frames joined into runs, within the hand-off's byte budget."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from .._failures import Stats
from .records import AgentAudio, CallerAudio

if TYPE_CHECKING:
    from .channel import HandOff

logger = logging.getLogger("roark.handoff")

# a caller run continues while its own clock stays this close to the arrival stamps
RESYNC_TOLERANCE = 0.1
# the count of audio frames dropped over the budget (``Stats``)
FRAMES_DROPPED = "audio_frames_dropped"


class _Run:
    """Consecutive frames of one format (and one agent segment), joined."""

    __slots__ = ("at", "rate", "channels", "segment", "samples", "data")

    def __init__(self, at: float, rate: int, channels: int, segment: int) -> None:
        self.at = at
        self.rate = rate
        self.channels = channels
        self.segment = segment
        self.samples = 0
        self.data = bytearray()

    def continues(self, at: float, rate: int, channels: int, segment: int) -> bool:
        # a run keeps only its first frame's arrival stamp, so a caller source that paused
        # must start a new run here, or the recording could not see the pause and resync
        return (
            rate == self.rate
            and channels == self.channels
            and segment == self.segment
            and (segment >= 0 or abs(at - (self.at + self.samples / rate)) <= RESYNC_TOLERANCE)
        )

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
            if run is None or not run.continues(at, rate, channels, segment):
                if run is not None and run.samples:
                    self._runs.append(run)
                run = self._current = _Run(at, rate, channels, segment)
            run.data += data
            run.samples += size // (2 * channels)

    def take(self) -> list[CallerAudio | AgentAudio]:
        """Everything appended so far, oldest first, no longer counted against the budget."""
        with self._lock:
            runs, self._runs = self._runs, []
            run = self._current
            if run is not None and run.samples:
                runs.append(run)
                # the next frames continue this run where the taken part ended
                follow = _Run(run.at + run.samples / run.rate, run.rate, run.channels, run.segment)
                self._current = follow
        if runs:
            self._handoff.release(sum(len(r.data) for r in runs))
        return [r.record() for r in runs]
