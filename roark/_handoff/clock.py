"""A call's clock: wall time that a step of the system clock cannot tear.

LiveKit stamps its events with ``time.time()`` and the audio taps stamp frames as they pass.
When the system clock is stepped mid-call (NTP, a virtual machine paused and resumed, live
migration), ``time.time()`` jumps while the audio keeps its pace: frames stamped with it
would leave a hole (or an overlap) the step's length in the caller's channel, and every
offset after it would be off by the step. A call's clock counts ``time.monotonic()`` from the
wall time at the call's start, and moves LiveKit's wall timestamps back by the step that was
in effect when they were taken.
"""

from __future__ import annotations

import time

# smaller differences between the two clocks are drift and jitter, not a step
_STEP = 0.005
# a look at the clocks interrupted for longer than this (the thread lost its core) is ignored
_READ_WINDOW = 0.0005
_MAX_STEPS = 16


class CallClock:
    """Wall time as of the call's start, advancing with the monotonic clock.

    Used from the event loop (the taps, the hooks) and the processor thread; ``_steps`` is
    only ever appended to and read, so the two need no lock.
    """

    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()
        # (wall time from which on, seconds time.time() runs ahead of this clock)
        self._steps: list[tuple[float, float]] = [(float("-inf"), 0.0)]

    def now(self) -> float:
        self._look()
        return time.monotonic() + self._offset

    def from_wall(self, at: float) -> float:
        """A ``time.time()`` stamp (LiveKit's, the processor's) on this clock."""
        self._look()
        for since, step in reversed(self._steps):
            if at >= since:
                return at - step
        return at

    def _look(self) -> None:
        before = time.monotonic()
        wall = time.time()
        after = time.monotonic()
        if after - before > _READ_WINDOW:
            return
        step = wall - (before + after) / 2 - self._offset
        last = self._steps[-1][1]
        if abs(step - last) > _STEP and len(self._steps) < _MAX_STEPS:
            # after a jump ahead, stamps taken before it are below this look's time without
            # the jump, and stamps taken after it at or above it (the looks come every frame,
            # far more often than a jump's length); after a jump back, from this look on
            self._steps.append((wall - max(step - last, 0.0), step))
