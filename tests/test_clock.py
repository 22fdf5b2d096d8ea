"""CallClock: the monotonic pace kept through steps of the wall clock, LiveKit's stamps moved."""

from __future__ import annotations

import time

import pytest

from roark._handoff.clock import CallClock


class Clocks:
    """time.time() and time.monotonic() under the test's control."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_700_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> Clocks:
    c = Clocks()
    monkeypatch.setattr(time, "time", lambda: c.wall)
    monkeypatch.setattr(time, "monotonic", lambda: c.mono)
    return c


def test_without_a_step_it_is_the_wall_clock(clocks: Clocks) -> None:
    clock = CallClock()
    clocks.advance(2.5)
    assert clock.now() == pytest.approx(clocks.wall)
    assert clock.from_wall(clocks.wall - 1.0) == pytest.approx(clocks.wall - 1.0)


def test_a_step_ahead_moves_later_stamps_back_and_leaves_earlier_ones(clocks: Clocks) -> None:
    clock = CallClock()
    clocks.advance(1.0)
    before_step = clocks.wall
    assert clock.now() == pytest.approx(before_step)
    clocks.advance(0.02)
    clocks.wall += 0.35  # NTP steps the clock ahead
    clocks.advance(0.02)
    # the audio's pace: 1.04 s since the start, whatever time.time() says
    assert clock.now() == pytest.approx(before_step + 0.04)
    # LiveKit stamped this before the step (a speaking start), this one after it
    assert clock.from_wall(before_step + 0.01) == pytest.approx(before_step + 0.01)
    assert clock.from_wall(clocks.wall) == pytest.approx(before_step + 0.04)


def test_a_step_back_is_taken_from_when_it_was_seen(clocks: Clocks) -> None:
    clock = CallClock()
    clocks.advance(1.0)
    clock.now()
    clocks.wall -= 0.4
    clocks.advance(0.02)
    assert clock.now() == pytest.approx(clocks.wall + 0.4)
    assert clock.from_wall(clocks.wall) == pytest.approx(clocks.wall + 0.4)


def test_drift_under_the_threshold_is_not_a_step(clocks: Clocks) -> None:
    clock = CallClock()
    clocks.advance(1.0)
    clocks.wall += 0.003  # slewing, jitter
    assert clock.from_wall(clocks.wall) == pytest.approx(clocks.wall)


def test_a_stamp_from_the_future_is_taken_at_its_arrival(clocks: Clocks) -> None:
    clock = CallClock()
    clocks.advance(1.0)
    # another clock's stamp (a year ahead) says nothing about when it was taken
    assert clock.from_wall(clocks.wall + 365 * 86400.0) == pytest.approx(clocks.wall)
    assert not clock.virtual


def test_a_frozen_wall_clock_is_a_test_clock(clocks: Clocks) -> None:
    clock = CallClock()
    frozen = clocks.wall
    clocks.mono += 0.03
    clock.now()
    clocks.mono += 0.03  # time.time() answered the same for 60 ms: frozen (freezegun)
    assert clock.now() == pytest.approx(frozen + 0.06)
    assert clock.virtual
    # every stamp is taken at its arrival, the frozen ones and the real clock's alike
    clocks.mono += 0.5
    assert clock.from_wall(frozen) == pytest.approx(frozen + 0.56)
    assert clock.from_wall(frozen + 1000.0) == pytest.approx(frozen + 0.56)


def test_a_wall_clock_moved_in_jumps_is_a_test_clock(clocks: Clocks) -> None:
    clock = CallClock()
    for _ in range(3):
        clocks.advance(0.02)
        clocks.wall += 1.0  # a virtual clock racing ahead in jumps
        clock.now()
        assert not clock.virtual  # up to three jumps are steps of the system clock
    clocks.advance(0.02)
    clocks.wall += 1.0
    clock.now()
    assert clock.virtual
    assert clock.from_wall(clocks.wall) == pytest.approx(clock.now())


def test_steps_far_apart_are_steps(clocks: Clocks) -> None:
    clock = CallClock()
    for _ in range(6):
        clocks.advance(11.0)
        clocks.wall += 0.2
        clock.now()
    assert not clock.virtual
