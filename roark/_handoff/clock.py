"""A call's clock: wall time that neither a step of the system clock nor a test clock can tear.

LiveKit stamps its events with ``time.time()`` and the audio taps stamp frames as they pass.
When the system clock is stepped mid-call (NTP, a virtual machine paused and resumed, live
migration), ``time.time()`` jumps while the audio keeps its pace: frames stamped with it
would leave a hole (or an overlap) the step's length in the caller's channel, and every
offset after it would be off by the step. A call's clock counts ``time.monotonic()`` from the
wall time at the call's start, and moves LiveKit's wall timestamps back by the step that was
in effect when they were taken.

A test clock (freezegun, time-machine, LiveKit's virtual time: ``time.time()`` frozen, or
moved in jumps, while ``time.monotonic()`` runs) is no step: its stamps say nothing about
when things happened, and LiveKit mixes them with stamps of the real clock (pydantic's
``default_factory=time.time`` holds the function it was given at import). Once the clock
sees one (the wall time standing still while the monotonic clock moves, or the two parting
again and again), every LiveKit stamp of the call is taken at its arrival, which keeps the
transcript in the session's order inside the call.

Threading invariants: ``now()`` and ``from_wall()`` are called on the event loop only (the
taps, the hooks); they alone look at the clocks and write what the looks learn (``_steps``,
``_seen_wall``, ``_seen_at``, ``_step_times``, ``virtual``). The processor thread only calls
``current()``, which reads the offset fixed at the call's start.
"""

from __future__ import annotations

import time

# smaller differences between the two clocks are drift and jitter, not a step
_STEP = 0.005
# a look at the clocks interrupted for longer than this (the thread lost its core) is ignored
_READ_WINDOW = 0.0005
_MAX_STEPS = 16
# time.time() answering the same value this long (monotonic) is a frozen or virtual clock;
# a real clock's value changes at every read
_FROZEN_AFTER = 0.05
# this many steps within _STEPS_WINDOW seconds is a clock run by a test, not NTP
_STEPS_FOR_VIRTUAL = 4
_STEPS_WINDOW = 10.0
# a stamp converted to later than now by more than this is from another clock
_FUTURE = 0.1


class CallClock:
    """Wall time as of the call's start, advancing with the monotonic clock."""

    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()
        # (wall time from which on, seconds time.time() runs ahead of this clock)
        self._steps: list[tuple[float, float]] = [(float("-inf"), 0.0)]
        # the wall time at the last check for a test clock, and when (monotonic) it was read
        self._seen_wall = time.time()
        self._seen_at = time.monotonic()
        self._step_times: list[float] = []
        #: set once a test clock is seen (never cleared): stamps are taken at their arrival
        self.virtual = False

    def now(self) -> float:
        """The call's time now (event loop: it looks at the clocks)."""
        return self._look() + self._offset

    def current(self) -> float:
        """The call's time now, without looking at the wall clock (any thread)."""
        return time.monotonic() + self._offset

    def from_wall(self, at: float) -> float:
        """A ``time.time()`` stamp of LiveKit's on this clock (event loop)."""
        arrival = self.now()
        if self.virtual:
            return arrival
        for since, step in reversed(self._steps):
            if at >= since:
                at -= step
                break
        return arrival if at > arrival + _FUTURE else at

    def _look(self) -> float:
        """Note a step or a test clock; returns the monotonic time of the look (the taps call
        it for every frame: one look, no extra read of the clock)."""
        before = time.monotonic()
        if self.virtual:
            return before
        wall = time.time()
        after = time.monotonic()
        if after - before > _READ_WINDOW:
            return after
        if before - self._seen_at >= _FROZEN_AFTER:
            if wall == self._seen_wall:
                self.virtual = True
                return after
            self._seen_wall, self._seen_at = wall, before
        step = wall - (before + after) / 2 - self._offset
        last = self._steps[-1][1]
        if abs(step - last) > _STEP:
            self._stepped(before)
            if len(self._steps) < _MAX_STEPS:
                # after a jump ahead, stamps taken before it are below this look's time
                # without the jump, and stamps taken after it at or above it (the looks come
                # every frame, far more often than a jump's length); after a jump back, from
                # this look on
                self._steps.append((wall - max(step - last, 0.0), step))
        return after

    def _stepped(self, at: float) -> None:
        recent = [t for t in self._step_times if at - t < _STEPS_WINDOW]
        recent.append(at)
        self._step_times = recent
        if len(recent) >= _STEPS_FOR_VIRTUAL:
            self.virtual = True
