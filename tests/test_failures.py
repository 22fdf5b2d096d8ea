"""The failure boundary: nothing raised inside roark reaches the host; each kind of failure is
counted, and warned about once with its traceback."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import pytest

from roark import _failures
from roark._failures import Stats


@pytest.fixture
def stats() -> Iterator[Stats]:
    previous = _failures._in_use
    fresh = Stats("calls")
    _failures.use(fresh)
    yield fresh
    _failures.use(previous)


def _broken(ev: object) -> None:
    raise ValueError(f"cannot read {ev}")


def test_a_guarded_handler_never_raises_and_warns_once_per_kind(
    stats: Stats, caplog: pytest.LogCaptureFixture
) -> None:
    handler = _failures.guarded("the test's handler", _broken)
    other = _failures.guarded("another handler", _broken)
    with caplog.at_level(logging.DEBUG, logger="roark"):
        for n in range(3):
            handler(n)
        other(0)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(";")[0] for r in warnings] == [
        "roark: the test's handler failed",
        "roark: another handler failed",
    ]
    assert warnings[0].exc_info is not None and "cannot read 0" in caplog.text
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 2
    assert stats.snapshot() == {
        "calls": 0,
        "failures": 4,
        "failures.another handler": 1,
        "failures.the test's handler": 3,
    }


def test_a_guard_swallows_failures_but_not_cancellation(stats: Stats) -> None:
    with _failures.guard("a block"):
        raise KeyError("x")
    with pytest.raises(asyncio.CancelledError), _failures.guard("a block"):
        raise asyncio.CancelledError
    assert stats.get("failures.a block") == 1


def test_counts_from_many_threads_add_up(stats: Stats) -> None:
    def count() -> None:
        for _ in range(10_000):
            stats.add("calls")

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stats.get("calls") == 40_000
