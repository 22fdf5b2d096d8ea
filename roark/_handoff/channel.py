"""The door: the hand-off queue, and the channel through which the loop posts one call.

The loop side builds small records from what LiveKit hands it (copying bytes, reading a few
attributes) and posts them through the call's ``CallChannel``; the processor thread takes
them from the ``HandOff``. Audio has a byte budget: when the workers fall that far behind,
new audio frames are dropped and counted (they become silence at their place on the
recording, never a shift); lifecycle and conversation records are always accepted, so a
call-ended is never dropped.

Threading invariants:

- The loop holds a call's ``CallChannel`` and nothing of the thread side: it posts records,
  appends audio to the channel's buffers, reads the channel's clock and closes it.
- ``HandOff.put`` and ``CallChannel.post`` never block; they are safe from any thread.
- A channel's buffers are appended on the loop and taken both by ``post`` (on the loop) and
  by the processor thread (between records); either way what is taken is queued under the
  buffer's lock, so a tap's audio reaches the processor in the order it was appended. What
  the buffers hold when a record is posted is queued ahead of that record: a playback event
  finds the frames it places, and the end finds the whole recording.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import uuid
from dataclasses import dataclass, field

from .._failures import Stats
from .audio_buffer import AudioBuffer
from .clock import CallClock
from .records import (
    AgentAudio,
    AgentConfig,
    Barrier,
    CallerAudio,
    End,
    Message,
    Metric,
    Record,
    Tools,
)

# what the processor handles at once rather than at its next pass: a call's end, a flush,
# and the records the spool keeps of a call (transcript entries, tools, metrics), so that a
# process killed right after one was said still has it on disk (a few wake-ups a turn, not
# one a frame)
_URGENT = (End, Barrier, Message, Tools, Metric, AgentConfig)


@dataclass(slots=True)
class Envelope:
    channel: CallChannel | None  # None for a Barrier, which belongs to no call
    record: Record


@dataclass
class HandOff:
    """Unbounded for records, byte-bounded for audio; ``put`` is safe from any thread.

    The processor does not wake for every frame (a thread wake-up per 20 ms frame per call
    costs more CPU than the frame's work): it collects the queue every few hundred ms, and at
    once only for what is urgent (``_URGENT``). Audio waits in each tap's
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

    def put(self, channel: CallChannel | None, record: Record) -> None:
        """Queue a record, or audio taken from a buffer (no longer counted against the budget)."""
        self._queue.put(Envelope(channel, record))
        if isinstance(record, _URGENT):
            self._urgent.set()

    def wake(self) -> None:
        self._urgent.set()

    def collect(self, wait: float) -> list[Envelope]:
        """Everything queued, after waiting up to ``wait`` seconds (less if something is urgent)."""
        self._urgent.wait(wait)
        self._urgent.clear()
        out: list[Envelope] = []
        try:
            while True:
                out.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return out


class CallChannel:
    """One call's side of the door: what opening a call returns to the loop.

    The loop posts the call's records, gets an audio buffer per tap, reads the call's clock
    and closes the channel at the call's end; ``delivered`` resolves once Roark has the whole
    call (True), or once roark stopped trying while this process lives (False).
    """

    __slots__ = ("key", "clock", "delivered", "_handoff", "_stats", "_buffers", "_posted", "closed")

    def __init__(self, handoff: HandOff, stats: Stats) -> None:
        #: names the call on the thread side and its folder in the spool
        self.key = uuid.uuid4().hex
        #: made with the call, on the loop; every stamp of the call is on it
        self.clock = CallClock()
        self.delivered: concurrent.futures.Future[bool] = concurrent.futures.Future()
        self._handoff = handoff
        self._stats = stats
        self._buffers: list[AudioBuffer] = []
        self._posted = False
        self.closed = False

    def post(self, record: Record) -> None:
        """Hand ``record`` over, after the audio the buffers took before it. Never blocks."""
        if self.closed:
            return  # the taps outlive the call in the chain; what they report is not needed
        self._posted = True
        self.queue_audio()
        self._handoff.put(self, record)

    def new_audio_buffer(self) -> AudioBuffer:
        """A buffer for one audio tap; the processor takes from it between records too."""
        buffer = AudioBuffer(self._handoff, self._stats)
        self._buffers.append(buffer)
        return buffer

    def queue_audio(self) -> None:
        """Queue what the taps appended since the last take (any thread), behind what was
        queued before it: audio the loop took when it posted a record and has not been
        handled yet is never overtaken."""
        for buffer in list(self._buffers):
            buffer.hand_over(self._put)

    def _put(self, audio: CallerAudio | AgentAudio) -> None:
        self._handoff.put(self, audio)

    def take_audio(self) -> list[CallerAudio | AgentAudio]:
        """What the taps appended since the last take, oldest first (any thread)."""
        return [audio for buffer in list(self._buffers) for audio in buffer.take()]

    def close(self) -> None:
        """No more records or audio. A channel that never posted has nothing to deliver."""
        self.closed = True
        for buffer in self._buffers:
            buffer.closed = True
        if not self._posted and not self.delivered.done():
            self.delivered.set_result(True)
