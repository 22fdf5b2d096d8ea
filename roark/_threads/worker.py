"""The thread side: one processor thread, a pool of sender threads, and spool recovery.

Threading invariants:

- The processor thread is the only one that touches a ``CallAssembler`` (recording, records,
  spool writes). It also serves as the clock that re-schedules calls waiting out a failure.
- A call is drained by at most one sender at a time (``_Outbox.scheduled``), so its items go out
  in order: call-started, chunks by index, call-ended.
- All threads are daemons owned by ``Worker``: ``stop()`` asks them to finish and joins them
  with a timeout; a Roark that hangs can delay process exit by at most the shutdown budget.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .._config import Settings
from .._handoff.channel import CallChannel, HandOff
from .._handoff.records import Barrier, Begin, Record
from . import wire
from .assembler import CallAssembler
from .spool import CallMeta, CallSpool, Spool, Spooled
from .transport import AuthError, RejectedError, Transport

logger = logging.getLogger("roark.worker")

TICK = 0.5
# how often the processor takes what the loop handed over (sooner for a call's end)
DRAIN_INTERVAL = 0.5
SPOOL_CHECK_INTERVAL = 5.0
# a call whose sending failed for a whole retry window is tried again after this, doubling
RESEND_AFTER = (2.0, 60.0)
AUTH_PROBE_INTERVAL = 60.0
# a call's next items to send also kept in memory (beyond them, only on disk)
KEEP_IN_MEMORY = 4
PROCESS_DIED = "process-died"


@dataclass(eq=False)
class _Outbox:
    """What one call still has to send, in order, and who is sending it."""

    key: str
    spool: CallSpool | None = None
    call_id: str | None = None
    items: deque[Spooled] = field(default_factory=deque)
    scheduled: bool = False
    retry_at: float = 0.0
    failures: int = 0
    chunks_sent: int = 0
    chunk_lost: bool = False
    ended_queued: bool = False
    done: concurrent.futures.Future[bool] = field(default_factory=concurrent.futures.Future)


class Worker:
    """Owns the hand-off queue, the threads, the transport and the spool of one client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.handoff = HandOff()
        self.spool = Spool(settings.spool_dir, settings.spool_max_bytes)
        self._abort = threading.Event()
        self._closing = threading.Event()
        self.transport = Transport(settings, self._abort)
        self._lock = threading.Lock()
        self._outboxes: dict[str, _Outbox] = {}
        self._ready: queue.SimpleQueue[_Outbox | None] = queue.SimpleQueue()
        self._auth_failed_logged = False
        self._auth_blocked_until = 0.0
        self._log_once: set[str] = set()
        self.stats: dict[str, int] = {"calls": 0, "chunks": 0, "events": 0, "failures": 0}
        self._threads: list[threading.Thread] = []
        #: the calls the processor is assembling (its thread only; others read it after sync())
        self.calls: dict[CallChannel, CallAssembler] = {}
        #: set once the start-up pass over the spool has adopted every orphaned call
        self.recovered = threading.Event()
        self._start_threads()

    # -- lifecycle -----------------------------------------------------------------------

    def _start_threads(self) -> None:
        self._threads = [
            threading.Thread(target=self._process, name="roark-processor", daemon=True)
        ]
        for i in range(self.settings.worker_threads):
            self._threads.append(
                threading.Thread(target=self._send_loop, name=f"roark-sender-{i}", daemon=True)
            )
        self._threads.append(
            threading.Thread(target=self._recover, name="roark-recovery", daemon=True)
        )
        for thread in self._threads:
            thread.start()

    def open_call(self) -> CallChannel:
        """A new call's channel. Called on the loop, so it only builds objects: the
        processor makes the call's state (and its spool folder) when its first record arrives.
        """
        self.stats["calls"] += 1
        return CallChannel(self.handoff)

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
        with self._lock:
            waiting = [o.done for o in self._outboxes.values() if o.ended_queued]
        _, not_done = concurrent.futures.wait(
            waiting, timeout=max(0.0, deadline - time.monotonic())
        )
        return not not_done

    def stop(self, timeout: float) -> None:
        """Deliver what can be within ``timeout``, then stop; undelivered calls stay spooled."""
        self.flush(timeout)
        self._closing.set()
        self._abort.set()
        self.handoff.wake()
        for _ in range(self.settings.worker_threads):
            self._ready.put(None)
        deadline = time.monotonic() + 1.0
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            for outbox in self._outboxes.values():
                if outbox.spool is not None:
                    outbox.spool.release()
        self.transport.close()

    def after_fork_in_child(self) -> None:
        """The parent's threads do not exist here and its calls are not ours: start clean.

        A lock some parent thread held at the fork stays held forever in the child, so every
        lock is replaced before anything else, never acquired.
        """
        self._lock = threading.Lock()
        for outbox in list(self._outboxes.values()):
            if outbox.spool is not None:
                outbox.spool.forget_lock()
        self._outboxes.clear()
        self.calls = {}
        self.handoff = HandOff()
        self._ready = queue.SimpleQueue()
        self._abort = threading.Event()
        self._closing = threading.Event()
        self.transport = Transport(self.settings, self._abort)
        self.recovered = threading.Event()
        self._start_threads()

    # -- processor thread ----------------------------------------------------------------

    def _process(self) -> None:
        last_tick = time.time()
        last_spool_check = 0.0
        pace = _Pacer()
        while not self._closing.is_set():
            batch = self.handoff.collect(DRAIN_INTERVAL)
            now = time.time()
            pace.start()
            for envelope in batch:
                self._handle(envelope.channel, envelope.record, now)
                pace.check()
            # what the taps appended since is newer than anything queued for the call
            for channel in list(self.calls):
                for audio in channel.take_audio():
                    self._handle(channel, audio, now)
                pace.check()
            if now - last_tick >= TICK:
                last_tick = now
                for call in list(self.calls.values()):
                    try:
                        call.tick(now)
                    except Exception:
                        self._failed_once(f"tick:{call.key}", "recording a call failed")
                    pace.check()
                self._wake_retries(time.monotonic())
            if now - last_spool_check >= SPOOL_CHECK_INTERVAL:
                last_spool_check = now
                try:
                    self._enforce_spool_cap({c.key for c in self.calls.values()})
                except Exception:
                    self._failed_once("spool-cap", "checking the spool size failed")

    def _handle(self, channel: CallChannel | None, record: Record, now: float) -> None:
        if channel is None:
            assert isinstance(record, Barrier)
            record.passed.set()
            return
        call = self.calls.get(channel)
        if call is None:
            if not isinstance(record, Begin):
                return  # the call has ended (or never began): nothing is listening
            call = self.calls[channel] = self._new_call(channel)
        try:
            call.handle(record, now)
        except Exception:
            self._failed_once(f"process:{call.key}", "processing a call failed")
        if call.ended:
            del self.calls[channel]

    def _new_call(self, channel: CallChannel) -> CallAssembler:
        key = channel.key
        with self._lock:
            self._outboxes[key] = _Outbox(key=key, done=channel.delivered)
        return CallAssembler(
            key=key,
            clock=channel.clock,
            settings=self.settings,
            spool=self.spool.new_call(key),
            on_spooled=self._queued,
        )

    def _queued(self, call: CallAssembler, item: Spooled) -> None:
        """An item is spooled: hand its call to a sender (processor thread)."""
        with self._lock:
            outbox = self._outboxes.get(call.key)
            if outbox is None:
                return
            outbox.spool = call.spool
            if call.call_id:
                outbox.call_id = call.call_id
            if len(outbox.items) >= KEEP_IN_MEMORY and item.path is not None:
                item.data = None  # Roark is behind: the disk holds it, memory stays bounded
            outbox.items.append(item)
            if item.kind == "ended":
                outbox.ended_queued = True
        self._schedule(outbox)

    def _schedule(self, outbox: _Outbox) -> None:
        with self._lock:
            if outbox.scheduled or not outbox.items or outbox.retry_at > time.monotonic():
                return
            if self._auth_blocked_until > time.monotonic():
                outbox.retry_at = self._auth_blocked_until
                return
            outbox.scheduled = True
        self._ready.put(outbox)

    def _wake_retries(self, now: float) -> None:
        with self._lock:
            due = [o for o in self._outboxes.values() if o.retry_at and o.retry_at <= now]
        for outbox in due:
            outbox.retry_at = 0.0
            self._schedule(outbox)

    # -- sender threads ------------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            outbox = self._ready.get()
            if outbox is None:
                return
            try:
                self._drain(outbox)
            except Exception:
                self._failed_once(f"send:{outbox.key}", "sending a call failed")
                with self._lock:
                    outbox.scheduled = False

    def _drain(self, outbox: _Outbox) -> None:
        while not self._abort.is_set():
            with self._lock:
                if not outbox.items:
                    outbox.scheduled = False
                    return
                item = outbox.items[0]
            deadline = time.monotonic() + self.settings.retry_deadline
            try:
                self._send(outbox, item, deadline)
            except AuthError:
                self._auth_failed()
                self._later(outbox, AUTH_PROBE_INTERVAL)
                return
            except RejectedError as exc:
                self._give_up(outbox, item, f"refused by Roark ({exc})")
                continue
            except FileNotFoundError as exc:
                # its spool file vanished (a cleaner, a removed folder): it is gone for good
                self._give_up(outbox, item, f"lost from the spool ({exc})")
                continue
            except Exception as exc:  # transient failures outlasted the retry window
                self.stats["failures"] += 1
                self._warn_once(
                    f"transient:{outbox.key}",
                    "Roark unreachable for call %s (%s); it stays spooled and is retried",
                    outbox.call_id or outbox.key,
                    exc,
                )
                outbox.failures += 1
                self._later(outbox, min(RESEND_AFTER[1], RESEND_AFTER[0] * 2**outbox.failures))
                return
            with self._lock:
                outbox.items.popleft()
            item.remove()
            if item.kind == "ended":
                self._finish(outbox, delivered=True)
                return

    def _later(self, outbox: _Outbox, delay: float) -> None:
        with self._lock:
            outbox.retry_at = time.monotonic() + delay
            outbox.scheduled = False

    def _send(self, outbox: _Outbox, item: Spooled, deadline: float) -> None:
        if item.kind == "chunk":
            if outbox.chunk_lost:
                return  # the recording is already broken; later chunks would only shift it
            assert outbox.call_id
            self.transport.upload_chunk(outbox.call_id, item.index, item.read(), deadline)
            outbox.chunks_sent += 1
            self.stats["chunks"] += 1
            return
        event = json.loads(item.read())
        if item.kind == "ended" and outbox.chunks_sent == 0:
            # no recording to advertise (after a lost chunk none follows it: the recording
            # Roark builds ends at the hole rather than shifting all that came after)
            event = wire.without_recording(event)
        self.transport.send_event(event, deadline)
        self.stats["events"] += 1
        if item.kind == "ended":
            logger.info(
                "call %s delivered (%d transcript entries, %d chunks)",
                outbox.call_id,
                wire.transcript_length(event),
                outbox.chunks_sent,
            )

    def _give_up(self, outbox: _Outbox, item: Spooled, why: str) -> None:
        self.stats["failures"] += 1
        if item.kind == "chunk":
            outbox.chunk_lost = True
            logger.warning(
                "chunk %d of call %s %s: its recording ends before it",
                item.index,
                outbox.call_id,
                why,
            )
        else:
            logger.warning("the %s of call %s %s", item.kind, outbox.call_id, why)
        with self._lock:
            outbox.items.popleft()
        item.remove()
        if item.kind == "ended":
            self._finish(outbox, delivered=False)

    def _finish(self, outbox: _Outbox, *, delivered: bool) -> None:
        with self._lock:
            self._outboxes.pop(outbox.key, None)
            outbox.scheduled = False
        if outbox.spool is not None:
            outbox.spool.remove()
        if not outbox.done.done():
            outbox.done.set_result(delivered)

    def _auth_failed(self) -> None:
        with self._lock:
            self._auth_blocked_until = time.monotonic() + AUTH_PROBE_INTERVAL
            first = not self._auth_failed_logged
            self._auth_failed_logged = True
        if first:
            logger.error(
                "Roark rejected the API key (HTTP 401/403): check ROARK_API_KEY. Calls stay "
                "spooled and are delivered once the key is fixed."
            )

    def _enforce_spool_cap(self, live: set[str]) -> None:
        """Over ``spool_max_bytes``: drop the oldest whole calls (never one still going on)."""
        if self.spool.root is None:
            return
        sizes = self.spool.call_sizes()
        total = sum(size for _, _, size in sizes)
        if total <= self.spool.max_bytes:
            return
        for _, key, size in sizes:
            if total <= self.spool.max_bytes:
                return
            if key in live:
                continue
            with self._lock:
                outbox = self._outboxes.get(key)
            if outbox is not None:
                if outbox.scheduled:
                    continue  # being sent right now; it will leave the spool by itself
                with self._lock:
                    self._outboxes.pop(key, None)
                outbox.items.clear()
                if outbox.spool is not None:
                    outbox.spool.remove()
                if not outbox.done.done():
                    outbox.done.set_result(False)
            elif not self.spool.drop_if_unowned(key):
                continue  # another live process owns it
            total -= size
            logger.warning(
                "spool over its %d-byte cap: dropped undelivered call %s (%d bytes)",
                self.spool.max_bytes,
                outbox.call_id if outbox else key,
                size,
            )
        if total > self.spool.max_bytes:
            self._warn_once(
                "spool-full", "spool over its cap with calls still going on; keeping them"
            )

    # -- recovery ------------------------------------------------------------------------

    def _recover(self) -> None:
        """Deliver calls left in the spool by processes that died (one pass at start)."""
        try:
            with self._lock:
                live = set(self._outboxes)
            for spool in self.spool.orphans(live):
                if self._closing.is_set():
                    spool.release()
                    return
                self._adopt(spool)
        except Exception:
            logger.exception("recovering spooled calls failed")
        finally:
            self.recovered.set()

    def _adopt(self, spool: CallSpool) -> None:
        meta = spool.read_meta() or CallMeta()
        items = spool.pending()
        call_id = meta.call_id or spool.key
        if not spool.has_ended():
            buckets: dict[str, list[Any]] = {"transcript": [], "tools": [], "metrics": []}
            for bucket, record in spool.read_records():
                if bucket in buckets:
                    buckets[bucket].append(record)
            started_at = float(meta.started_at or time.time())
            ended = wire.call_ended(
                call_id=call_id,
                started_at=started_at,
                ended_at=max(started_at, _newest_mtime(spool)),
                reason=PROCESS_DIED,
                transcript=buckets["transcript"],
                tools=buckets["tools"],
                metrics=buckets["metrics"],
                sample_rate=meta.sample_rate,
                chunks=meta.chunks,
            )
            items.append(spool.put("ended", json.dumps(ended, ensure_ascii=False).encode()))
        outbox = _Outbox(key=spool.key, spool=spool, call_id=call_id, ended_queued=True)
        outbox.items.extend(items)
        # chunks acknowledged before the crash were deleted: the first one left says how many
        pending = [i.index for i in items if i.kind == "chunk"]
        outbox.chunks_sent = min(pending) if pending else meta.chunks
        with self._lock:
            self._outboxes[spool.key] = outbox
        logger.info("delivering call %s left behind by a process that stopped", call_id)
        self._schedule(outbox)

    # -- logging -------------------------------------------------------------------------

    def _failed_once(self, key: str, message: str) -> None:
        self.stats["failures"] += 1
        if key not in self._log_once:
            self._log_once.add(key)
            logger.exception("%s (further errors of this kind are not logged)", message)

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._log_once:
            self._log_once.add(key)
            logger.warning(message, *args)


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


def _newest_mtime(spool: CallSpool) -> float:
    newest = 0.0
    if spool.dir is not None:
        for entry in os.scandir(spool.dir):
            try:
                newest = max(newest, entry.stat().st_mtime)
            except OSError:
                continue
    return newest
