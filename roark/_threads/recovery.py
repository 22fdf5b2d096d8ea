"""Crash recovery: calls left in the spool by processes that stopped, delivered by this one.

One pass over the spool at start-up, on its own thread. A folder whose lock no live process
holds is an orphan: it is locked for this process and handed to delivery as it stands, with
a call-ended built from its records when the process died before writing one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from . import wire
from .delivery import Delivery, Outbox
from .spool import METRICS, TOOLS, TRANSCRIPT, CallMeta, CallSpool, Spool

logger = logging.getLogger("roark.recovery")

PROCESS_DIED = "process-died"


def recover(spool: Spool, delivery: Delivery, closing: threading.Event) -> None:
    """Hand every orphaned call in ``spool`` to ``delivery`` (stops early once ``closing``)."""
    for orphan in spool.orphans(delivery.keys()):
        if closing.is_set():
            orphan.release()
            return
        outbox = orphan_outbox(orphan)
        logger.info("delivering call %s left behind by a process that stopped", outbox.call_id)
        delivery.adopt(outbox)


def orphan_outbox(spool: CallSpool) -> Outbox:
    """What an orphaned call still has to send, ending with its call-ended."""
    meta = spool.read_meta() or CallMeta()
    items = spool.pending()
    call_id = meta.call_id or spool.key
    if not spool.has_ended():
        ended = _ended_by_death(spool, meta, call_id)
        items.append(spool.put("ended", json.dumps(ended, ensure_ascii=False).encode()))
    outbox = Outbox(key=spool.key, spool=spool, call_id=call_id, ended_queued=True)
    outbox.items.extend(items)
    # chunks acknowledged before the crash were deleted: the first one left says how many
    pending = [item.index for item in items if item.kind == "chunk"]
    outbox.chunks_sent = min(pending) if pending else meta.chunks
    return outbox


def _ended_by_death(spool: CallSpool, meta: CallMeta, call_id: str) -> wire.CallEnded:
    """The call-ended its process did not live to write, from what it had spooled."""
    buckets: dict[str, list[Any]] = {TRANSCRIPT: [], TOOLS: [], METRICS: []}
    for bucket, record in spool.read_records():
        if bucket in buckets:
            buckets[bucket].append(record)
    started_at = float(meta.started_at or time.time())
    return wire.call_ended(
        call_id=call_id,
        started_at=started_at,
        # the call lasted at least until the last thing its process wrote
        ended_at=max(started_at, _newest_mtime(spool)),
        reason=PROCESS_DIED,
        transcript=buckets[TRANSCRIPT],
        tools=buckets[TOOLS],
        metrics=buckets[METRICS],
        sample_rate=meta.sample_rate,
        chunks=meta.chunks,
    )


def _newest_mtime(spool: CallSpool) -> float:
    newest = 0.0
    if spool.dir is not None:
        for entry in os.scandir(spool.dir):
            try:
                newest = max(newest, entry.stat().st_mtime)
            except OSError:
                continue
    return newest
