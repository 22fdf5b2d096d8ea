"""The durable outbox: each call's records and chunks on disk until Roark acknowledges them.

Layout, one folder per call (``<spool_dir>/<call key>/``)::

    lock              flock held by the process that owns the call while it lives
    meta.json         call id and start time (what a recovery needs to end the call)
    records.jsonl     transcript, tool and metric records, appended as they happen
    000-started.json  the call-started event
    c000000.pcm ...   audio chunks by index
    zzz-ended.json    the call-ended event, written last

Every data file is written to a temporary name and renamed, so a crash never leaves a torn
file that looks like data; a torn last line of ``records.jsonl`` is skipped on recovery.
When the spool folder cannot be written, a call's items stay in memory (a ``CallSpool``
without a folder): calls are still delivered, they just do not survive the process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process locks, spool still works
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("roark.spool")

STARTED = "000-started.json"
ENDED = "zzz-ended.json"
META = "meta.json"
RECORDS = "records.jsonl"
LOCK = "lock"
# what a record in records.jsonl is: the buckets of the call-ended event it goes into
TRANSCRIPT, TOOLS, METRICS = "transcript", "tools", "metrics"


def chunk_name(index: int) -> str:
    return f"c{index:07d}.pcm"


def chunk_index(name: str) -> int | None:
    if name.startswith("c") and name.endswith(".pcm") and name[1:-4].isdigit():
        return int(name[1:-4])
    return None


@dataclass(frozen=True)
class CallMeta:
    """What a call's ``meta.json`` says: what a recovery needs to end the call."""

    started_at: float | None = None
    call_id: str | None = None
    sample_rate: int | None = None
    #: 1 once the recording's first chunk was made (the chunks left say how many followed)
    chunks: int = 0


@dataclass
class Spooled:
    """One thing to send: a lifecycle event or a chunk, on disk (``path``) or in memory."""

    kind: str  # "started", "chunk", "ended"
    index: int = -1
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        try:
            return self.path.stat().st_size if self.path else 0
        except OSError:
            return 0

    def remove(self) -> None:
        self.data = None
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


class CallSpool:
    """One call's folder (or memory). Written by the processor thread, drained by a sender."""

    def __init__(self, root: Path | None, key: str, lock_fd: int | None = None) -> None:
        self.key = key
        self.dir = root / key if root is not None else None
        self._lock_fd = lock_fd
        self._records: list[bytes] = []  # memory mode only
        self._meta: dict[str, Any] = {}
        self._memory_only = self.dir is None
        self._records_file: Any = None  # kept open: a call appends a record per turn event

    @property
    def durable(self) -> bool:
        return not self._memory_only

    def _disk_failed(self, exc: OSError) -> None:
        # a full or vanished disk must not lose the call: what follows stays in memory
        if not self._memory_only:
            logger.warning(
                "cannot write the spool of call %s (%s): keeping it in memory", self.key, exc
            )
        self._memory_only = True

    def create(self) -> None:
        if self.dir is None:
            return
        # locked before it is visible under its name, so no recovery can take it for an orphan
        hidden = self.dir.with_name(f".{self.dir.name}.new")
        hidden.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _try_lock(hidden / LOCK)
        os.rename(hidden, self.dir)

    def release(self) -> None:
        """Drop the folder lock (the call stays spooled if anything is left in it)."""
        if self._records_file is not None:
            with contextlib.suppress(OSError):
                self._records_file.close()
            self._records_file = None
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def note_start(self, started_at: float, call_id: str | None) -> None:
        self._write_meta({"startedAt": started_at, "callId": call_id})

    def note_call_id(self, call_id: str, sample_rate: int | None) -> None:
        self._write_meta({**self._meta, "callId": call_id, "sampleRate": sample_rate})

    def note_recording(self) -> None:
        self._write_meta({**self._meta, "chunks": 1})

    def _write_meta(self, meta: dict[str, Any]) -> None:
        self._meta = meta
        if self.durable and self.dir is not None:
            try:
                _atomic_write(self.dir / META, json.dumps(meta).encode())
            except OSError as exc:
                self._disk_failed(exc)

    def read_meta(self) -> CallMeta | None:
        """The call's meta; None when it has none (it never really started)."""
        meta = self._meta
        if self.dir is not None and not meta:
            try:
                meta = json.loads((self.dir / META).read_text())
            except (OSError, ValueError):
                return None
        if not isinstance(meta, dict) or not meta:
            return None
        return CallMeta(
            started_at=meta.get("startedAt"),
            call_id=meta.get("callId"),
            sample_rate=meta.get("sampleRate"),
            chunks=int(meta.get("chunks") or 0),
        )

    def append_record(self, bucket: str, record: Any) -> None:
        """Keep a transcript, tool or metric record of the call (``bucket`` says which)."""
        entry = {"bucket": bucket, "record": record}
        line = json.dumps(entry, ensure_ascii=False, allow_nan=False).encode() + b"\n"
        if self.durable and self.dir is not None:
            try:
                if self._records_file is None:
                    # unbuffered: each record reaches the file at once, so a crash keeps it
                    self._records_file = open(self.dir / RECORDS, "ab", buffering=0)  # noqa: SIM115
                self._records_file.write(line)
                return
            except OSError as exc:
                self._disk_failed(exc)
        self._records.append(line)

    def read_records(self) -> list[tuple[str, Any]]:
        """The records kept so far as (bucket, record), oldest first."""
        lines = list(self._records)
        if self.dir is not None:
            try:
                lines = (self.dir / RECORDS).read_bytes().split(b"\n") + lines
            except OSError:
                pass
        records = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line from a crash
            if isinstance(entry, dict) and isinstance(entry.get("bucket"), str):
                records.append((entry["bucket"], entry.get("record")))
        return records

    def put(self, kind: str, data: bytes, index: int = -1) -> Spooled:
        name = {"started": STARTED, "ended": ENDED}.get(kind) or chunk_name(index)
        if self.durable and self.dir is not None:
            path = self.dir / name
            try:
                _atomic_write(path, data)
                # the bytes stay at hand too: the sender need not read them back, and they
                # survive the folder vanishing (the worker drops them when its queue is long)
                return Spooled(kind, index, path=path, data=data)
            except OSError as exc:
                self._disk_failed(exc)
        return Spooled(kind, index, data=data)

    def pending(self) -> list[Spooled]:
        """What a recovered folder still holds, in sending order."""
        if self.dir is None:
            return []
        items: list[Spooled] = []
        chunks: list[Spooled] = []
        for entry in os.scandir(self.dir):
            if entry.name == STARTED:
                items.append(Spooled("started", path=Path(entry.path)))
            elif (idx := chunk_index(entry.name)) is not None:
                chunks.append(Spooled("chunk", idx, path=Path(entry.path)))
        chunks.sort(key=lambda item: item.index)
        items.extend(chunks)
        if (self.dir / ENDED).exists():
            items.append(Spooled("ended", path=self.dir / ENDED))
        return items

    def has_ended(self) -> bool:
        return self.dir is not None and (self.dir / ENDED).exists()

    def remove(self) -> None:
        """Delete the folder once everything in it was delivered (or given up)."""
        if self.dir is not None:
            # deleted while still locked, so no other process adopts a call already sent
            shutil.rmtree(self.dir, ignore_errors=True)
        self.release()


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path``, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class Spool:
    """The spool folder of this process; falls back to memory when it cannot be written."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.root: Path | None = root
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".probe.{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            logger.warning(
                "spool folder %s is not writable (%s): calls are kept in memory only", root, exc
            )
            self.root = None

    def new_call(self, key: str) -> CallSpool:
        call = CallSpool(self.root, key)
        try:
            call.create()
        except OSError as exc:
            logger.warning("cannot spool call %s to disk (%s): keeping it in memory", key, exc)
            call = CallSpool(None, key)
        return call

    def orphans(self, live: set[str]) -> Iterator[CallSpool]:
        """Folders of calls whose owning process is gone, each locked for this process."""
        if self.root is None:
            return
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.stat().st_mtime)
        except OSError:
            return
        for entry in entries:
            if not entry.is_dir() or entry.name in live or entry.name.startswith("."):
                continue
            try:
                fd = _try_lock(Path(entry.path) / LOCK)
            except OSError:
                continue
            if fd is None:
                continue  # a live process owns it
            call = CallSpool(self.root, entry.name, lock_fd=fd)
            if call.read_meta() is None:
                # no meta: the process died before the call really started; nothing to send
                call.remove()
                continue
            yield call

    def drop_if_unowned(self, key: str) -> bool:
        """Delete a call folder no live process holds; False when one does."""
        assert self.root is not None
        try:
            fd = _try_lock(self.root / key / LOCK)
        except OSError:
            return False
        if fd is None:
            return False
        CallSpool(self.root, key, lock_fd=fd).remove()
        return True

    def call_sizes(self) -> list[tuple[float, str, int]]:
        """(mtime, key, bytes) of every spooled call, oldest first."""
        if self.root is None:
            return []
        out = []
        for entry in os.scandir(self.root):
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            size = 0
            try:
                for f in os.scandir(entry.path):
                    with contextlib.suppress(OSError):
                        size += f.stat().st_size
                out.append((entry.stat().st_mtime, entry.name, size))
            except OSError:
                continue  # removed meanwhile (delivered, or by someone else)
        return sorted(out)
