"""The door between the asyncio side and the worker threads.

The loop side builds these small records from what LiveKit hands it (copying bytes, reading
a few attributes) and puts them here; ``put`` never blocks. Audio has a byte budget: when the
workers fall that far behind, new audio frames are dropped and counted (they become silence at
their place on the recording, never a shift); lifecycle and conversation records are always
accepted, so a call-ended is never dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Union

logger = logging.getLogger("roark.handoff")


@dataclass(slots=True)
class Begin:
    at: float
    started: dict[str, Any]  # call-started fields except the call id and timestamp
    sample_rate: int | None
    call_id: str | None


@dataclass(slots=True)
class CallId:
    call_id: str


@dataclass(slots=True)
class Message:
    role: str
    text: str
    started_at: float
    stopped_at: float
    interrupted: bool
    language: str | None


@dataclass(slots=True)
class Tools:
    at: float
    calls: list[tuple[str, str, str, float]]  # call_id, name, arguments, created_at
    outputs: list[tuple[str, Any, bool, float]]  # call_id, output, is_error, created_at


@dataclass(slots=True)
class Metric:
    kind: str
    at: float
    fields: dict[str, Any]


@dataclass(slots=True)
class Usage:
    at: float
    models: list[dict[str, Any]]


@dataclass(slots=True)
class InputFrame:
    at: float
    data: bytes
    rate: int
    channels: int


@dataclass(slots=True)
class OutputFrame:
    segment: int
    at: float
    data: bytes
    rate: int
    channels: int


@dataclass(slots=True)
class Playback:
    segment: int
    what: str  # "started", "progressed", "finished"
    at: float
    position: float = 0.0
    offset: float = 0.0
    interrupted: bool = False


@dataclass(slots=True)
class End:
    at: float
    reason: str


@dataclass(slots=True)
class Barrier:
    """Set once the processor has handled everything put before it (for ``flush``)."""

    passed: threading.Event


Item = Union[
    Begin, CallId, Message, Tools, Metric, Usage, InputFrame, OutputFrame, Playback, End, Barrier
]
AUDIO_ITEMS = (InputFrame, OutputFrame, Playback)


@dataclass
class Drops:
    frames: int = 0
    logged: bool = False


@dataclass(slots=True)
class Envelope:
    call: Any  # the worker-side call state
    item: Item


@dataclass
class HandOff:
    """Unbounded for records, byte-bounded for audio; ``put`` is safe from any thread.

    The processor does not wake for every frame (a thread wake-up per 20 ms frame per call
    costs more CPU than the frame's work): it drains the queue every ``interval`` seconds,
    and at once only for what is urgent (a call's end, a flush).
    """

    audio_budget: int = 64 * 1024 * 1024
    _queue: queue.SimpleQueue[Envelope] = field(default_factory=queue.SimpleQueue)
    _urgent: threading.Event = field(default_factory=threading.Event)
    _audio_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, call: Any, item: Item, drops: Drops | None = None) -> bool:
        if isinstance(item, (InputFrame, OutputFrame)):
            with self._lock:
                if self._audio_bytes + len(item.data) > self.audio_budget:
                    if drops is not None:
                        drops.frames += 1
                        if not drops.logged:
                            drops.logged = True
                            logger.warning(
                                "roark workers are behind: dropping audio frames (they will be "
                                "silence on the recording)"
                            )
                    return False
                self._audio_bytes += len(item.data)
            self._queue.put(Envelope(call, item))
            return True
        self._queue.put(Envelope(call, item))
        if isinstance(item, (End, Barrier)):
            self._urgent.set()
        return True

    def wake(self) -> None:
        self._urgent.set()

    def pending(self) -> int:
        return self._queue.qsize()

    def drain(self, interval: float) -> list[Envelope]:
        """Everything queued, after waiting up to ``interval`` (less if something is urgent)."""
        self._urgent.wait(interval)
        self._urgent.clear()
        out: list[Envelope] = []
        freed = 0
        try:
            while True:
                envelope = self._queue.get_nowait()
                out.append(envelope)
                if isinstance(envelope.item, (InputFrame, OutputFrame)):
                    freed += len(envelope.item.data)
        except queue.Empty:
            pass
        if freed:
            with self._lock:
                self._audio_bytes -= freed
        return out
