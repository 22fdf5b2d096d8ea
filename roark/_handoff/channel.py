"""The door between the asyncio side and the worker threads.

The loop side builds these small records from what LiveKit hands it (copying bytes, reading
a few attributes) and puts them here; ``put`` never blocks. Audio has a byte budget: when the
workers fall that far behind, new audio frames are dropped and counted (they become silence at
their place on the recording, never a shift); lifecycle and conversation records are always
accepted, so a call-ended is never dropped.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from .records import Barrier, End, Record


@dataclass(slots=True)
class Envelope:
    call: Any  # the worker-side call state
    item: Record


@dataclass
class HandOff:
    """Unbounded for records, byte-bounded for audio; ``put`` is safe from any thread.

    The processor does not wake for every frame (a thread wake-up per 20 ms frame per call
    costs more CPU than the frame's work): it drains the queue every ``interval`` seconds,
    and at once only for what is urgent (a call's end, a flush). Audio waits in each tap's
    ``AudioBuffer``, counted against ``audio_budget`` until the processor takes it.
    """

    audio_budget: int = 64 * 1024 * 1024
    _queue: queue.SimpleQueue[Envelope] = field(default_factory=queue.SimpleQueue)
    _urgent: threading.Event = field(default_factory=threading.Event)
    _audio_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reserve(self, size: int) -> bool:
        with self._lock:
            if self._audio_bytes + size > self.audio_budget:
                return False
            self._audio_bytes += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self._audio_bytes -= size

    def put(self, call: Any, item: Record) -> None:
        """Queue a record, or audio taken from a buffer (no longer counted against the budget)."""
        self._queue.put(Envelope(call, item))
        if isinstance(item, (End, Barrier)):
            self._urgent.set()

    def wake(self) -> None:
        self._urgent.set()

    def pending(self) -> int:
        return self._queue.qsize()

    def drain(self, interval: float) -> list[Envelope]:
        """Everything queued, after waiting up to ``interval`` (less if something is urgent)."""
        self._urgent.wait(interval)
        self._urgent.clear()
        out: list[Envelope] = []
        try:
            while True:
                out.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return out
