"""Crash recovery: calls left in the spool by processes that stopped, delivered by this one.

One pass over the spool at start-up, on its own thread. A folder whose lock no live process
holds is an orphan. One spooled for this process's destination is locked for this process
and handed to delivery as it stands: its call-started if it was not sent, its chunks, the
recording's tail as the last chunks, and a call-ended built from its records when the
process died before writing one. Orphans of other destinations are left to the programs
sending there.

Everything is checked as it is read: a record that cannot be read or has the wrong shape
is moved to the spool's quarantine with a warning naming it, and whatever of the call can
still be delivered is. An orphan that fails in any other way is quarantined whole; the pass
goes on with the next.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .._handoff.records import CallDetails
from .._handoff.text import encodable_value
from . import spool_files as files
from . import wire
from .delivery import Delivery, Outbox
from .spool import (
    METRICS,
    RECORDS,
    TOOLS,
    TRANSCRIPT,
    CallMeta,
    CallSpool,
    Contents,
    Spooled,
    remove_file,
)
from .spool_folder import Adoption, Spool

logger = logging.getLogger("roark.recovery")

PROCESS_DIED = "process-died"
_RECORD_CHECKS = {
    TRANSCRIPT: wire.is_transcript_entry,
    TOOLS: wire.is_tool_record,
    METRICS: wire.is_metric,
}


class Unrecoverable(Exception):
    """Nothing of the call can be delivered (its folder goes to the quarantine)."""


def recover(spool: Spool, delivery: Delivery, closing: threading.Event, chunk_bytes: int) -> None:
    """Hand every orphaned call of this destination to ``delivery`` (stops once ``closing``)."""
    found: Counter[Adoption] = Counter()
    for key in spool.orphan_keys(delivery.keys()):
        if closing.is_set():
            return
        status, outbox = _adopt(spool, key, chunk_bytes)
        found[status] += 1
        if outbox is not None:
            logger.info("delivering call %s left behind by a process that stopped", outbox.call_id)
            delivery.adopt(outbox)
    if found[Adoption.FOREIGN]:
        logger.info(
            "left %d spooled calls for other destinations (other keys or hosts) to the "
            "programs that send there",
            found[Adoption.FOREIGN],
        )


def _adopt(spool: Spool, key: str, chunk_bytes: int) -> tuple[Adoption, Outbox | None]:
    """One orphan: whatever goes wrong with it, the pass goes on with the next."""
    call = None
    try:
        status, call = spool.adopt(key)
        if call is None:
            return status, None
        return status, orphan_outbox(call, chunk_bytes)
    except Exception as exc:
        if not isinstance(exc, Unrecoverable):
            spool.failed("recovering a spooled call (moved to the quarantine)")
        assert spool.root is not None
        spool.quarantine(spool.root / key, key, f"it cannot be recovered ({exc})")
        if call is not None:
            call.release()
        return Adoption.QUARANTINED, None


def orphan_outbox(call: CallSpool, chunk_bytes: int) -> Outbox:
    """What an orphaned call still has to send, ending with its call-ended."""
    meta = call.read_meta()
    found = call.contents()
    call_id = meta.call_id or call.key
    items: list[Spooled] = []
    started = _started(call, meta, found, call_id)
    if started is not None:
        items.append(started)
    chunks, sent = _chunks(call, meta, found, call_id, chunk_bytes)
    items += chunks
    items.append(_ended(call, meta, found, call_id, sent + len(chunks)))
    outbox = Outbox(key=call.key, spool=call, call_id=call_id, ended_queued=True)
    outbox.items.extend(items)
    outbox.chunks_sent = sent
    return outbox


def _read_event(call: CallSpool, path: Path, kind: str) -> Spooled | None:
    """The spooled call-``kind`` event at ``path`` if it reads as one; else it goes to the
    quarantine (and is rebuilt by the caller)."""
    check = wire.is_call_started if kind == "started" else wire.is_call_ended
    try:
        data = files.read_own(path)
        if check(json.loads(data)):
            return Spooled(kind, path=path, data=data, spool=call.spool)
        problem = "not the contract's shape"
    except (OSError, ValueError) as exc:
        problem = str(exc)
    call.quarantine(path, f"the call-{kind} of call {call.key} is unreadable ({problem})")
    return None


def _started(call: CallSpool, meta: CallMeta, found: Contents, call_id: str) -> Spooled | None:
    if found.started is not None:
        event = _read_event(call, found.started, "started")
        if event is not None:
            return event
    elif meta.call_id is not None:
        return None  # sent before the process stopped (it is deleted once Roark has it)
    # unreadable, or never made (the process died before the call's id was known)
    if meta.agent_id is None:
        raise Unrecoverable("its call-started is missing and its meta cannot rebuild it")
    details = CallDetails(agent_id=meta.agent_id, is_test=meta.is_test)
    started = wire.call_started(call_id, meta.started_at, details)
    return call.put("started", _json(started))


def _chunks(
    call: CallSpool, meta: CallMeta, found: Contents, call_id: str, chunk_bytes: int
) -> tuple[list[Spooled], int]:
    """The chunks to send, in order from the first Roark does not hold, and how many it holds.

    Roark holds the chunks acknowledged (and deleted) before the crash: those below the
    first one left, or all the meta counts when none is left."""
    made = max([meta.chunks, *(index + 1 for index in found.chunks)])
    sent = min(found.chunks, default=made)
    items: list[Spooled] = []
    for index in range(sent, made):
        path = found.chunks.get(index)
        problem = "it is missing" if path is None else _chunk_problem(path)
        if problem is not None:
            if path is not None:
                call.quarantine(path, f"chunk {index} of call {call_id}: {problem}")
            _recording_ends(call_id, index, made)
            return items, sent
        items.append(Spooled("chunk", index, path=path, spool=call.spool))
    if found.ended is None:
        items += _tail_chunks(call, found, made, chunk_bytes)
    else:
        _drop_tails(call, found, made + 1)  # the recording was finished: tails are stale
    return items, sent


def _chunk_problem(path: Path) -> str | None:
    try:
        size = files.size_own(path)
    except OSError as exc:
        return str(exc)
    return None if size and size % 4 == 0 else f"{size} bytes, not whole stereo frames"


def _recording_ends(call_id: str, index: int, made: int) -> None:
    logger.warning(
        "call %s: its recording ends before chunk %d (chunks %d to %d are not sent: Roark "
        "would shift all that follows a hole)",
        call_id,
        index,
        index,
        made - 1,
    )


def _tail_chunks(call: CallSpool, found: Contents, made: int, chunk_bytes: int) -> list[Spooled]:
    """The recording's tail (its audio after the last chunk made) as the last chunks."""
    path = found.tails.get(made)
    _drop_tails(call, found, made)
    if path is None:
        return []
    try:
        data = files.read_own(path)
    except OSError as exc:
        call.quarantine(path, f"the recording's tail of call {call.key} is unreadable ({exc})")
        return []
    data = data[: len(data) - len(data) % 4]  # whole stereo frames
    items = []
    for n, start in enumerate(range(0, len(data), chunk_bytes)):
        items.append(call.put("chunk", data[start : start + chunk_bytes], made + n))
        call.note_chunk(made + n)
    remove_file(path, call.spool)
    return items


def _drop_tails(call: CallSpool, found: Contents, keep: int) -> None:
    for index, path in found.tails.items():
        if index != keep:
            remove_file(path, call.spool)


def _ended(call: CallSpool, meta: CallMeta, found: Contents, call_id: str, chunks: int) -> Spooled:
    if found.ended is not None:
        event = _read_event(call, found.ended, "ended")
        if event is not None:
            return event
    ended = _ended_by_death(call, meta, call_id, chunks)
    return call.put("ended", _json(ended))


def _ended_by_death(call: CallSpool, meta: CallMeta, call_id: str, chunks: int) -> wire.CallEnded:
    """The call-ended its process did not live to write, from what it had spooled."""
    buckets = _records(call, call_id)
    started_at = meta.started_at
    return wire.call_ended(
        call_id=call_id,
        started_at=started_at,
        # the call lasted at least until the last thing its process wrote
        ended_at=max(started_at, _newest_mtime(call)),
        reason=PROCESS_DIED,
        transcript=buckets[TRANSCRIPT],
        tools=buckets[TOOLS],
        metrics=buckets[METRICS],
        sample_rate=meta.sample_rate,
        chunks=chunks,
    )


def _records(call: CallSpool, call_id: str) -> dict[str, list[Any]]:
    """The call's records by bucket; lines that are not records go to the quarantine, and
    so does a records file that cannot be read (the call goes without its records)."""
    buckets: dict[str, list[Any]] = {bucket: [] for bucket in _RECORD_CHECKS}
    try:
        lines, _torn = call.record_lines()  # a torn last line: the crash cut its write short
    except OSError as exc:
        assert call.dir is not None
        call.quarantine(call.dir / RECORDS, f"the records of call {call_id} are unreadable ({exc})")
        return buckets
    bad = []
    for line in lines:
        try:
            # text from a file goes on the wire: what UTF-8 cannot encode becomes U+FFFD
            entry = encodable_value(json.loads(line))
        except ValueError:
            entry = None
        bucket = entry.get("bucket") if isinstance(entry, dict) else None
        check = _RECORD_CHECKS.get(bucket)  # type: ignore[arg-type]
        if check is not None and check(entry.get("record")):  # type: ignore[union-attr]
            buckets[bucket].append(entry["record"])  # type: ignore[index]
        else:
            bad.append(line)
    if bad and call.spool is not None:
        reason = f"call {call_id} is delivered without them"
        call.spool.quarantine_lines(call.key, RECORDS, bad, reason)
    return buckets


def _newest_mtime(call: CallSpool) -> float:
    newest = 0.0
    if call.dir is not None:
        for entry in os.scandir(call.dir):
            try:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
            except OSError:
                continue
    return newest or time.time()


def _json(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
