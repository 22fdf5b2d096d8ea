"""The one failure boundary, and the counters of what roark did.

Nothing roark does may raise into the agent. Every hook on the loop side and every task of
roark's threads runs behind this boundary: an internal failure is counted by its kind,
logged at WARNING with its traceback the first time its kind is seen (at DEBUG after that),
and swallowed. One behaviour, three forms:

- ``guarded(kind, fn)``: a handler for LiveKit's event emitters;
- ``with guard(kind):`` (or ``stats.guard(kind)``): a block;
- ``failed(kind)`` (or ``stats.failed(kind)``), called in an ``except`` block: where even a
  ``with`` would cost too much (once per audio frame).

The counters (``Stats``) are updated from the event loop and from roark's threads, under one
lock held for a dictionary update, and read as a snapshot (``roark check`` prints them).
The loop side reports into the running client's ``Stats`` (``use``); the thread side into
its worker's, which is the same one while that worker is the client's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

logger = logging.getLogger("roark.failures")

FAILURES = "failures"


class Stats:
    """Counts by name: calls, events, chunks, dropped audio frames, failures by kind..."""

    def __init__(self, *always: str) -> None:
        #: the counts a snapshot shows even while they are zero
        self._always = (*always, FAILURES)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self._always, 0)

    def add(self, name: str, n: int = 1) -> int:
        """Count ``n`` more of ``name``; returns the new count (1 the first time)."""
        with self._lock:
            count = self._counts[name] = self._counts.get(name, 0) + n
        return count

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        """Every count at one moment; ``failures`` is the total, ``failures.<kind>`` each kind."""
        with self._lock:
            return dict(sorted(self._counts.items()))

    def failed(self, kind: str, exc: BaseException | None = None) -> None:
        """Count an internal failure of ``kind``; call it from an ``except`` block."""
        with self._lock:
            self._counts[FAILURES] = self._counts.get(FAILURES, 0) + 1
            name = f"{FAILURES}.{kind}"
            first = name not in self._counts
            self._counts[name] = self._counts.get(name, 0) + 1
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "roark: %s failed; the agent is not affected%s",
            kind,
            " (further failures of this kind are logged at DEBUG)" if first else "",
            exc_info=exc if exc is not None else True,
        )

    def guard(self, kind: str) -> Guard:
        return Guard(kind, self)

    def after_fork(self) -> None:
        """In a forked child: the lock may have been held at the fork; the counts are not ours."""
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self._always, 0)


class Guard:
    """``with guard:`` runs a block behind the boundary. Keeps no state between uses, so one
    instance serves a loop without making an object per pass."""

    __slots__ = ("kind", "_stats")

    def __init__(self, kind: str, stats: Stats | None = None) -> None:
        self.kind = kind
        self._stats = stats  # None: whichever Stats is in use when a failure happens

    def __enter__(self) -> Guard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False  # cancellation, KeyboardInterrupt, SystemExit pass
        (self._stats or _in_use).failed(self.kind, exc)
        return True


_in_use = Stats()


def use(stats: Stats) -> None:
    """Report the loop side's failures into ``stats`` from now on (the client's worker's)."""
    global _in_use
    _in_use = stats


def failed(kind: str) -> None:
    """Count a failure of ``kind`` on the loop side; call it from an ``except`` block."""
    _in_use.failed(kind)


def guard(kind: str) -> Guard:
    return Guard(kind)


def guarded(kind: str, fn: Callable[[Any], None]) -> Callable[[Any], None]:
    """``fn`` as an event handler that never raises into the emitter."""

    # LiveKit's emitter inspects each handler's signature on every emit: a plain one-argument
    # function (no functools.wraps, no bound method) keeps that cheap
    def handler(ev: Any) -> None:
        try:
            fn(ev)
        except Exception:
            failed(kind)

    return handler
