"""The thread side's owner: roark's threads, and the processor loop.

One processor thread turns what the loop hands over into each call's records, recording and
spooled items; a pool of sender threads delivers them (``delivery``); one thread recovers
calls left in the spool by processes that stopped (``recovery``).

Threading invariants:

- The processor thread is the only one that touches a ``CallAssembler`` (recording, its
  tail, records, spool writes) and ``Worker.calls``. It also serves as the clock that wakes
  calls waiting out a failure, retries removals that failed and rescans the spool; any
  thread that writes to the spool keeps it under its cap (``Spool.reserve``).
- All threads are daemons owned by ``Worker``: ``stop()`` asks them to finish and joins them
  with a timeout; a Roark that hangs can delay process exit by at most the shutdown budget.
- After a fork only the forking thread exists in the child: ``after_fork_in_child`` replaces
  every lock and queue before it starts the child's own threads.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time

from .._config import Settings
from .._failures import Stats
from .._handoff.audio_buffer import FRAMES_DROPPED
from .._handoff.channel import CallChannel, HandOff
from .._handoff.records import Barrier, Begin, Record
from .assembler import CallAssembler
from .delivery import Delivery
from .recovery import recover
from .spool import Destination, Spooled
from .spool_folder import Spool
from .transport import Transport

# the processor collects what the loop handed over, cuts the recordings, writes their tails
# to the spool and wakes calls due a retry this often (a call's records, its end or a flush
# wake it at once to collect): waking for every 20 ms frame of every call would cost more
# than the frames. Passes start on a fixed beat, so a kill loses at most this much of a
# recording (plus the pass's own few milliseconds), well within half a second.
CUT_INTERVAL = 0.4
SPOOL_CHECK_INTERVAL = 5.0
# however short the time to stop, the processor gets this long to write what it was handed
# to the spool (it takes milliseconds): nothing already captured is lost
STOP_SYNC = 0.25
# and the threads this long to finish (when the process must exit soon, what is left of the
# time to stop, at least the second figure)
STOP_JOIN, STOP_JOIN_BOUNDED = 1.0, 0.1


class Worker:
    """Owns the hand-off queue, the threads, the transport and the spool of one client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = Stats("calls", "events", "chunks", FRAMES_DROPPED)
        destination = Destination.of(settings.base_url, settings.api_key)
        self.spool = Spool(settings.spool_dir, settings.spool_max_bytes, destination, self.stats)
        # made once: the processor enters them for every record, without making an object
        self._record_guard = self.stats.guard("processing a call's records")
        self._cut_guard = self.stats.guard("cutting a call's recording")
        self._start()

    def _start(self) -> None:
        self.handoff = HandOff()
        #: the calls the processor is assembling (its thread only; others read it after sync())
        self.calls: dict[CallChannel, CallAssembler] = {}
        self._closing = threading.Event()
        abort = self._abort = threading.Event()
        self.transport = Transport(self.settings, abort)
        self.delivery = Delivery(self.settings, self.transport, self.stats, abort)
        self.spool.make_room = self._make_room
        self.delivery.on_destination = self.spool.note_destination
        #: set once the start-up pass over the spool has adopted every orphaned call
        self.recovered = threading.Event()
        self._threads = [threading.Thread(target=self._process, name="roark-processor")]
        self._threads += [
            threading.Thread(target=self.delivery.run_sender, name=f"roark-sender-{i}")
            for i in range(self.settings.worker_threads)
        ]
        self._threads.append(threading.Thread(target=self._recover, name="roark-recovery"))
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    # -- lifecycle -----------------------------------------------------------------------

    def open_call(self) -> CallChannel:
        """A new call's channel. Called on the loop, so it only builds objects: the
        processor makes the call's state (and its spool folder) when its first record arrives.
        """
        self.stats.add("calls")
        return CallChannel(self.handoff, self.stats)

    def sync(self, timeout: float) -> bool:
        """Wait until the processor has handled everything handed over before this call."""
        barrier = Barrier(threading.Event())
        self.handoff.put(None, barrier)
        return barrier.passed.wait(timeout)

    def flush(self, timeout: float) -> bool:
        """Wait until every call that has ended is delivered; True when all were.

        Calls still going on are not waited for.
        """
        deadline = time.monotonic() + timeout
        # the processor has seen every End put before this flush once it synced
        if not self.sync(timeout):
            return False
        waiting = self.delivery.ended_calls()
        _, not_done = concurrent.futures.wait(
            waiting, timeout=max(0.0, deadline - time.monotonic())
        )
        return not not_done

    def stop(self, timeout: float, *, bounded: bool = False) -> None:
        """Deliver what can be within ``timeout``, then stop; undelivered calls stay spooled.

        ``bounded``: the process must be gone soon after (LiveKit kills it): the threads are
        waited for only within ``timeout`` too (they are daemons)."""
        deadline = time.monotonic() + timeout
        self.sync(max(timeout, STOP_SYNC))
        self.flush(max(0.0, deadline - time.monotonic()))
        self._closing.set()
        self._abort.set()
        self.handoff.wake()
        self.delivery.stop_senders(self.settings.worker_threads)
        join = STOP_JOIN
        if bounded:
            join = min(join, max(STOP_JOIN_BOUNDED, deadline - time.monotonic()))
        joined = time.monotonic() + join
        for thread in self._threads:
            thread.join(max(0.0, joined - time.monotonic()))
        self.delivery.release_spools()
        self.spool.stop()
        self.transport.close()

    def after_fork_in_child(self) -> None:
        """The parent's threads do not exist here and its calls are not ours: start clean.

        A lock some parent thread held at the fork stays held forever in the child, so every
        lock is replaced before anything else, never acquired.
        """
        self.stats.after_fork()
        self.spool.after_fork()
        self.delivery.abandon()
        self._start()

    def _recover(self) -> None:
        try:
            with self.stats.guard("recovering calls left in the spool"):
                recover(self.spool, self.delivery, self._closing, self.settings.chunk_bytes)
        finally:
            self.recovered.set()

    def _make_room(self, needed: int) -> None:
        self.delivery.make_room(self.spool, needed)

    # -- processor thread ----------------------------------------------------------------

    def _process(self) -> None:
        # intervals on the monotonic clock: a test clock that freezes time.time() must not
        # stop the cuts; each call reads its own clock for the recording
        next_cut = time.monotonic() + CUT_INTERVAL
        last_spool_check = 0.0
        pace = _Pacer()
        while not self._closing.is_set():
            batch = self.handoff.collect(max(0.0, next_cut - time.monotonic()))
            now = time.monotonic()
            pace.start()
            for envelope in batch:
                self._handle(envelope.channel, envelope.record)
                pace.check()
            self._take_audio(pace)
            if now >= next_cut:
                # on the beat; a pass that ran long starts the next beat from now
                next_cut = max(next_cut + CUT_INTERVAL, time.monotonic())
                self._cut_recordings(pace)
                with self.stats.guard("waking calls due a retry"):
                    self.delivery.wake_retries()
            if now - last_spool_check >= SPOOL_CHECK_INTERVAL:
                last_spool_check = now
                with self.stats.guard("looking after the spool"):
                    self._look_after_spool()

    def _look_after_spool(self) -> None:
        """Retry removals that failed, see what other processes wrote, hold the cap."""
        self.spool.retry_removals()
        self.spool.rescan()
        if self.spool.over_by() > 0:
            self.delivery.make_room(self.spool, 0)

    def _handle(self, channel: CallChannel | None, record: Record) -> None:
        if channel is None:
            assert isinstance(record, Barrier)
            record.passed.set()
            return
        with self._record_guard:
            call = self.calls.get(channel)
            if call is None:
                if not isinstance(record, Begin):
                    return  # the call has ended (or never began): nothing is listening
                call = self.calls[channel] = self._new_call(channel)
            try:
                call.handle(record)
            finally:
                if call.ended:
                    del self.calls[channel]
                    if call.discarded and not channel.delivered.done():
                        channel.delivered.set_result(True)  # nothing to deliver

    def _take_audio(self, pace: _Pacer) -> None:
        # what the taps appended since is newer than anything queued for the call
        for channel in list(self.calls):
            with self._record_guard:
                for audio in channel.take_audio():
                    self._handle(channel, audio)
            pace.check()

    def _cut_recordings(self, pace: _Pacer) -> None:
        for call in list(self.calls.values()):
            with self._cut_guard:
                call.cut()
            pace.check()

    def _new_call(self, channel: CallChannel) -> CallAssembler:
        key = channel.key
        opened = False

        def spooled(call: CallAssembler, item: Spooled) -> None:
            nonlocal opened
            if not opened:
                # delivery learns of the call with its first item: one that ends empty
                # (discarded by its assembler) never had an outbox
                opened = True
                self.delivery.open(key, channel.delivered)
            self.delivery.put(key, item, spool=call.spool, call_id=call.call_id)

        return CallAssembler(
            key=key,
            clock=channel.clock,
            settings=self.settings,
            spool=self.spool.new_call(key),
            stats=self.stats,
            on_spooled=spooled,
        )


class _Pacer:
    """Lets the event loop in between stretches of processing.

    Python hands the GIL to a waiting thread only after a 5 ms switch interval, and the
    event loop waits for it again after each of its own releases (every socket or FFI call):
    a processor busy for tens of ms with many calls would stall the loop. Sleeping briefly
    after each ~2 ms of work hands the GIL over at once.
    """

    SLICE = 0.002
    PAUSE = 0.0002

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        self._since = time.perf_counter()

    def check(self) -> None:
        if time.perf_counter() - self._since >= self.SLICE:
            time.sleep(self.PAUSE)
            self._since = time.perf_counter()
