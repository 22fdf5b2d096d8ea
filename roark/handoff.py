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

from .clock import CallClock
from .recording import RESYNC_TOLERANCE

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
    data: bytes | bytearray
    rate: int
    channels: int


@dataclass(slots=True)
class OutputFrame:
    segment: int
    at: float
    data: bytes | bytearray
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

    def item(self) -> InputFrame | OutputFrame:
        if self.segment < 0:
            return InputFrame(at=self.at, data=self.data, rate=self.rate, channels=self.channels)
        return OutputFrame(
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

    def __init__(self, handoff: HandOff, drops: Drops, clock: CallClock | None = None) -> None:
        self._handoff = handoff
        self._drops = drops
        #: the call's clock: the taps stamp frames and playback events with it
        self.clock = clock or CallClock()
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
            self._drops.frames += 1
            if not self._drops.logged:
                self._drops.logged = True
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

    def take(self) -> list[InputFrame | OutputFrame]:
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
        return [r.item() for r in runs]


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

    def put(self, call: Any, item: Item) -> None:
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
