"""Delivery: each call's outbox, and the sender threads that empty them in order.

What the transport's answer means for a call (``action_for``): sent, go on; the key was
refused or the base URL does not lead to Roark's API, pause every call and probe again later;
the data refused (400, 413, 422) or lost from the spool, give that item up and go on; Roark
unreachable for a whole retry window (or an answer that says nothing about the data), try the
call again later, backing off.

Threading invariants:

- An outbox is emptied by at most one sender at a time (``Outbox.scheduled``), so a call's
  items go out in order: call-started, chunks by index, call-ended.
- The processor thread appends to outboxes (``put``), wakes those due a retry and enforces
  the spool cap; the recovery thread adds outboxes; senders pop what they sent. An outbox's
  fields are read and written under ``Delivery._lock``, except a sender's own progress
  (``chunks_sent``, ``chunk_lost``, ``failures``) while it holds the outbox scheduled.
- Scheduling reads ``now`` (the monotonic clock; a test gives its own), never the wall clock.
"""

from __future__ import annotations

import concurrent.futures
import enum
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .._config import Settings
from .._failures import Stats
from .._handoff.text import encodable_value
from . import wire
from .spool import CallSpool, Spooled
from .spool_files import NotOurs
from .spool_folder import Entry, Spool
from .transport import AuthError, DestinationError, RejectedError, Transport

logger = logging.getLogger("roark.delivery")

# a call whose sending failed for a whole retry window is tried again after this, doubling
RESEND_AFTER = (2.0, 60.0)
# after Roark refused the key (or the base URL led elsewhere), every call waits this long
# before the next try
AUTH_PROBE_INTERVAL = 60.0
# a call's next items to send also kept in memory (beyond them, only on disk)
KEEP_IN_MEMORY = 4


_EVENTS = {"started": "call-started", "ended": "call-ended"}


class Unreadable(Exception):
    """A spooled item that cannot be sent as it is: not JSON, or not roark's own file."""


class Action(enum.Enum):
    """What a sender does after trying to send an item."""

    NEXT = "send the next item"
    PAUSE_ALL = "pause every call, probe later"
    GIVE_UP = "give the item up, send the next"
    RETRY_LATER = "try the call again later"


def action_for(error: BaseException | None) -> Action:
    """The sender's next step after sending an item ended with ``error`` (None: accepted)."""
    if error is None:
        return Action.NEXT
    if isinstance(error, (AuthError, DestinationError)):
        return Action.PAUSE_ALL
    # the data refused for good, its spool file vanished (a cleaner, a removed folder) or
    # is unreadable
    if isinstance(error, (RejectedError, FileNotFoundError, Unreadable)):
        return Action.GIVE_UP
    return Action.RETRY_LATER  # transient failures outlasted the retry window


@dataclass(eq=False)
class Outbox:
    """What one call still has to send, in order, and who is sending it."""

    key: str
    done: concurrent.futures.Future[bool] = field(default_factory=concurrent.futures.Future)
    spool: CallSpool | None = None
    call_id: str | None = None
    items: deque[Spooled] = field(default_factory=deque)
    scheduled: bool = False
    retry_at: float = 0.0
    failures: int = 0
    chunks_sent: int = 0
    chunk_lost: bool = False
    ended_queued: bool = False
    #: dropped by the spool cap while a sender may hold it: that sender stops there
    dropped: bool = False


class Delivery:
    """The outboxes of one worker and the loop its sender threads run."""

    def __init__(
        self,
        settings: Settings,
        transport: Transport,
        stats: Stats,
        abort: threading.Event,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._retry_deadline = settings.retry_deadline
        self._base_url = settings.base_url
        self._transport = transport
        self._stats = stats
        # set when the process gives up on delivering: senders stop, what is left stays spooled
        self._abort = abort
        self._now = now
        self._lock = threading.Lock()
        self._outboxes: dict[str, Outbox] = {}
        self._ready: queue.SimpleQueue[Outbox | None] = queue.SimpleQueue()
        self._paused_until = 0.0
        #: told whether the destination refused (404, 405, 3xx) or accepted (set by the
        #: worker: the spool notes it, for whoever recovers this process's calls)
        self.on_destination: Callable[..., None] | None = None
        self._accepted = False  # the destination accepted something since it last refused

    # -- the calls -----------------------------------------------------------------------

    def open(self, key: str, done: concurrent.futures.Future[bool]) -> None:
        """A new call, whose items ``put`` adds; ``done`` resolves when it is retired."""
        with self._lock:
            self._outboxes[key] = Outbox(key=key, done=done)

    def adopt(self, outbox: Outbox) -> None:
        """A call someone else spooled (a recovery), with its items already in the outbox."""
        with self._lock:
            self._outboxes[outbox.key] = outbox
        self._schedule(outbox)

    def put(self, key: str, item: Spooled, *, spool: CallSpool, call_id: str | None) -> None:
        """``item`` of call ``key`` is spooled: send it after the call's earlier items."""
        with self._lock:
            outbox = self._outboxes.get(key)
            if outbox is None:
                return  # retired meanwhile (the spool cap dropped it)
            outbox.spool = spool
            outbox.call_id = call_id or outbox.call_id
            if len(outbox.items) >= KEEP_IN_MEMORY and item.path is not None:
                item.data = None  # Roark is behind: the disk holds it, memory stays bounded
            outbox.items.append(item)
            if item.kind == "ended":
                outbox.ended_queued = True
        self._schedule(outbox)

    def keys(self) -> set[str]:
        with self._lock:
            return set(self._outboxes)

    def ended_calls(self) -> list[concurrent.futures.Future[bool]]:
        """The delivery futures of the calls whose end is queued."""
        with self._lock:
            return [o.done for o in self._outboxes.values() if o.ended_queued]

    def release_spools(self) -> None:
        """Drop the folder locks of the calls left (at stop; they stay spooled)."""
        with self._lock:
            spools = [o.spool for o in self._outboxes.values() if o.spool is not None]
        for spool in spools:
            spool.release()

    def abandon(self) -> None:
        """In a forked child: the parent's calls are not ours. Closes our copies of their folder
        locks (the parent's stay held) without taking the lock a parent thread may have held."""
        for outbox in list(self._outboxes.values()):
            if outbox.spool is not None:
                outbox.spool.release()

    def _retire(self, outbox: Outbox, *, delivered: bool, dropped: bool = False) -> None:
        """The call leaves delivery: delivered, given up, or dropped by the spool cap."""
        with self._lock:
            self._outboxes.pop(outbox.key, None)
            outbox.items.clear()
            outbox.scheduled = False
            outbox.dropped = dropped
        if outbox.spool is not None:
            outbox.spool.remove()
        if not outbox.done.done():
            outbox.done.set_result(delivered)

    # -- scheduling ----------------------------------------------------------------------

    def _schedule(self, outbox: Outbox) -> None:
        with self._lock:
            now = self._now()
            if outbox.scheduled or not outbox.items or outbox.retry_at > now:
                return
            if self._paused_until > now:
                outbox.retry_at = self._paused_until
                return
            outbox.scheduled = True
        self._ready.put(outbox)

    def wake_retries(self) -> None:
        """Schedule the calls whose retry time has come (the processor calls it every pass)."""
        with self._lock:
            now = self._now()
            due = [o for o in self._outboxes.values() if o.retry_at and o.retry_at <= now]
            for outbox in due:
                outbox.retry_at = 0.0
        for outbox in due:
            self._schedule(outbox)

    def _later(self, outbox: Outbox, delay: float) -> None:
        with self._lock:
            outbox.retry_at = self._now() + delay
            outbox.scheduled = False

    def _pause_all(self, error: BaseException | None) -> None:
        with self._lock:
            self._paused_until = self._now() + AUTH_PROBE_INTERVAL
        if isinstance(error, DestinationError):
            self._accepted = False
            if self.on_destination is not None:
                self.on_destination(refused=True)
            if self._stats.add("destination_refused") == 1:
                logger.error(
                    "Roark's API is not at ROARK_BASE_URL=%s (%s): check ROARK_BASE_URL and any "
                    "proxy in between. Calls stay spooled and are delivered once it is fixed.",
                    self._base_url,
                    error,
                )
        elif self._stats.add("key_refused") == 1:
            logger.error(
                "Roark rejected the API key (HTTP 401/403): check ROARK_API_KEY. Calls stay "
                "spooled and are delivered once the key is fixed."
            )

    # -- senders -------------------------------------------------------------------------

    def run_sender(self) -> None:
        """A sender thread's loop: empty the outboxes handed to it until ``stop_senders``."""
        while self.send_next(block=True):
            pass

    def stop_senders(self, count: int) -> None:
        for _ in range(count):
            self._ready.put(None)

    def send_next(self, block: bool = False) -> bool:
        """Empty the next scheduled outbox; False when there is none (or senders stop)."""
        try:
            outbox = self._ready.get(block=block)
        except queue.Empty:
            return False
        if outbox is None:
            return False
        try:
            self._send_outbox(outbox)
        except Exception:
            self._stats.failed("sending a call")
            with self._lock:
                outbox.scheduled = False
        return True

    def _send_outbox(self, outbox: Outbox) -> None:
        while not self._abort.is_set():
            with self._lock:
                if not outbox.items:
                    outbox.scheduled = False
                    return
                if self._paused_until > self._now():
                    # a probe failed meanwhile: only the probe goes while delivery is paused
                    outbox.retry_at = self._paused_until
                    outbox.scheduled = False
                    return
                item = outbox.items[0]
            error = self._try(outbox, item)
            action = action_for(error)
            if outbox.dropped:
                return  # the spool cap dropped the call meanwhile
            if action is Action.PAUSE_ALL:
                self._pause_all(error)
                self._later(outbox, AUTH_PROBE_INTERVAL)
                return
            if action is Action.RETRY_LATER:
                self._retry_later(outbox, error)
                return
            if action is Action.NEXT and not self._accepted:
                self._accepted = True
                if self.on_destination is not None:
                    self.on_destination(refused=False)
            with self._lock:
                if outbox.dropped:
                    return  # the spool cap dropped the call meanwhile: nothing left to do
                outbox.items.popleft()
            if action is Action.GIVE_UP:
                self._give_up(outbox, item, error)
            item.remove()
            if item.kind == "ended":
                self._retire(outbox, delivered=action is Action.NEXT)
                return

    def _try(self, outbox: Outbox, item: Spooled) -> Exception | None:
        deadline = time.monotonic() + self._retry_deadline
        try:
            self._send(outbox, item, deadline)
        except Exception as exc:
            return exc
        return None

    def _send(self, outbox: Outbox, item: Spooled, deadline: float) -> None:
        if item.kind == "chunk":
            if outbox.chunk_lost:
                return  # the recording is already broken; later chunks would only shift it
            assert outbox.call_id
            self._transport.upload_chunk(outbox.call_id, item.index, _read(item), deadline)
            outbox.chunks_sent += 1
            self._stats.add("chunks")
            return
        try:
            # a spooled file may hold text UTF-8 cannot encode (as JSON escapes): it would
            # fail the same way on every try
            event = encodable_value(json.loads(_read(item)))
        except ValueError as exc:
            raise Unreadable(f"not JSON ({exc})") from None
        if item.kind == "ended" and outbox.chunks_sent == 0:
            # no recording to advertise (after a lost chunk none follows it: the recording
            # Roark builds ends at the hole rather than shifting all that came after)
            event = wire.without_recording(event)
        self._transport.send_event(event, deadline)
        self._stats.add("events")
        if item.kind == "ended":
            logger.info(
                "call %s delivered (%d transcript entries, %d chunks)",
                outbox.call_id,
                wire.transcript_length(event),
                outbox.chunks_sent,
            )

    def _retry_later(self, outbox: Outbox, error: BaseException | None) -> None:
        first = self._stats.add("retried_later") == 1
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "call %s not delivered yet (%s); it stays spooled and is retried",
            outbox.call_id or outbox.key,
            error,
        )
        outbox.failures += 1
        self._later(outbox, min(RESEND_AFTER[1], RESEND_AFTER[0] * 2**outbox.failures))

    def _give_up(self, outbox: Outbox, item: Spooled, error: BaseException | None) -> None:
        lost = isinstance(error, (FileNotFoundError, Unreadable))
        self._stats.add("lost_from_spool" if lost else "refused")
        if lost:
            why = f"lost from the spool ({error})"
        else:
            # a quoted name in Roark's message may be the call's id, not a field of it
            fields = [f for f in getattr(error, "fields", ()) if f != outbox.call_id]
            named = f"field {', '.join(fields)}; " if fields else ""
            why = f"refused by Roark ({named}{error})"
        if isinstance(error, Unreadable) and item.path is not None and outbox.spool is not None:
            outbox.spool.quarantine(item.path, f"call {outbox.call_id}: {error}")
        if item.kind == "chunk":
            outbox.chunk_lost = True
            logger.warning(
                "chunk %d of call %s %s: its recording ends before it",
                item.index,
                outbox.call_id,
                why,
            )
        else:
            logger.warning("the %s of call %s %s", _EVENTS.get(item.kind), outbox.call_id, why)

    # -- the spool cap -------------------------------------------------------------------

    def make_room(self, spool: Spool, needed: int) -> None:
        """Drop whole calls, oldest first, until ``needed`` more bytes fit in the spool: calls
        being retried too, never one still going on in this process (nor in another)."""
        for entry in spool.entries():
            if spool.over_by(needed) <= 0:
                return
            dropped = self._drop(spool, entry)
            if dropped is None:
                continue
            spool.count(-entry.size)
            self._stats.add("dropped_over_spool_cap")
            logger.warning(
                "spool over its %d-byte cap: dropped %s (%d bytes)",
                spool.max_bytes,
                dropped,
                entry.size,
            )

    def _drop(self, spool: Spool, entry: Entry) -> str | None:
        """Drop one call folder or quarantined item; what it was, or None when it must stay."""
        if entry.quarantined:
            return f"{entry.name} from the quarantine" if spool.drop(entry) else None
        with self._lock:
            outbox = self._outboxes.get(entry.name)
            if outbox is not None and not outbox.ended_queued:
                return None  # still going on
        if outbox is None:
            # not one of ours: a call of a process that stopped (or of another destination)
            name = spool.call_id_of(entry.name)
            return f"undelivered call {name}" if spool.drop(entry) else None
        self._retire(outbox, delivered=False, dropped=True)
        return f"undelivered call {outbox.call_id or outbox.key}"


def _read(item: Spooled) -> bytes:
    try:
        return item.read()
    except NotOurs as exc:
        raise Unreadable(str(exc)) from None
