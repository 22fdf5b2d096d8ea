"""The durable outbox: each call's records and chunks on disk until Roark acknowledges them.

Layout (every folder 0700, every file 0600; ``spool_files`` says why and how)::

    <spool_dir>/<call key>/  one folder per call
        lock               flock held by the process that owns the call while it lives
        meta.json          where the call goes, its id, start, agent, rate, next chunk index
        records.jsonl      transcript, tool and metric records, appended as they happen
        000-started.json   the call-started event
        c0000000.pcm ...   audio chunks by index
        t0000003.pcm       the recording's tail: its audio after the last chunk, as it grows
        zzz-ended.json     the call-ended event, written last
    <spool_dir>/.quarantine/   what a recovery could not read, moved aside (kept 7 days)
    <spool_dir>/.<key>.new/, .<key>.del-*/   a call folder being made, or being removed

A call belongs to its destination (``Destination``: the API's scheme, host and port and a
hash of the key): only a process sending there delivers it. Every data file is written to a
new name and renamed, or (the tail) appended to and renamed into a chunk once complete, so a
crash never leaves a torn file that looks like data; a torn last line of ``records.jsonl``
is skipped on recovery. When the spool folder cannot be written, or holds ``max_bytes``
already, a call's items stay in memory (a ``CallSpool`` without a folder): calls are still
delivered, they just do not survive the process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._handoff.text import encodable_or_none
from . import spool_files as files

if TYPE_CHECKING:
    from .spool_folder import Spool

logger = logging.getLogger("roark.spool")

STARTED = "000-started.json"
ENDED = "zzz-ended.json"
META = "meta.json"
RECORDS = "records.jsonl"
LOCK = "lock"
QUARANTINE = ".quarantine"
# what a record in records.jsonl is: the buckets of the call-ended event it goes into
TRANSCRIPT, TOOLS, METRICS = "transcript", "tools", "metrics"


# a call folder is named by its call's key, a uuid4's hex; nothing else in the spool folder is
# a call (a folder of the user's own there is theirs: never sent, moved or counted)
_CALL_KEY = re.compile(r"[0-9a-f]{32}")
# a call folder being made, or being removed (``CallSpool.create``, ``remove_call_folder``)
_MAKING = re.compile(r"\.[0-9a-f]{32}\.new")
_REMOVING = re.compile(r"\.[0-9a-f]{32}\.del-[0-9a-f]{8}")


def is_call_key(name: str) -> bool:
    return _CALL_KEY.fullmatch(name) is not None


def leftover_kind(name: str) -> str | None:
    """``"making"`` or ``"removing"`` for the hidden name of a call folder being made or
    removed; None for any other name."""
    if _MAKING.fullmatch(name):
        return "making"
    if _REMOVING.fullmatch(name):
        return "removing"
    return None


def chunk_name(index: int) -> str:
    return f"c{index:07d}.pcm"


def tail_name(index: int) -> str:
    return f"t{index:07d}.pcm"


def _numbered(name: str, prefix: str) -> int | None:
    if name.startswith(prefix) and name.endswith(".pcm") and name[1:-4].isdigit():
        return int(name[1:-4])
    return None


def chunk_index(name: str) -> int | None:
    return _numbered(name, "c")


def tail_index(name: str) -> int | None:
    return _numbered(name, "t")


@dataclass(frozen=True)
class Destination:
    """Where a call was going: the API's scheme, host and port, and a hash of the key (never
    the key; not the path, so a call spooled under a wrong path goes once it is fixed)."""

    scheme: str
    host: str
    port: int
    key: str

    @classmethod
    def of(cls, base_url: str, api_key: str | None) -> Destination:
        parts = urlsplit(base_url)
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
        salted = b"roark spool destination\0" + (api_key or "").encode("utf-8", "replace")
        digest = hashlib.sha256(salted).hexdigest()[:32]
        return cls(scheme, (parts.hostname or "").lower(), port, f"sha256:{digest}")

    @classmethod
    def parse(cls, raw: Any) -> Destination:
        if not isinstance(raw, dict):
            raise ValueError("destination is not an object")
        values = [raw.get(name) for name in ("scheme", "host", "port", "key")]
        if not (all(isinstance(v, str) for v in values[:2] + values[3:]) and _int(values[2])):
            raise ValueError("destination has a field of the wrong type")
        return cls(*values)  # type: ignore[arg-type]

    def as_json(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "host": self.host, "port": self.port, "key": self.key}

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class CallMeta:
    """What a call's ``meta.json`` says: what a recovery needs to deliver the call."""

    started_at: float
    call_id: str | None = None
    sample_rate: int | None = None
    #: the next chunk's index: chunks 0..chunks-1 were made (sent or still spooled)
    chunks: int = 0
    agent_id: str | None = None
    is_test: bool = False
    #: None in folders of roark versions that did not record it (taken as this process's)
    destination: Destination | None = None

    @classmethod
    def parse(cls, raw: Any) -> CallMeta:
        """The meta of a ``meta.json``'s JSON; ``ValueError`` naming what is wrong."""
        if not isinstance(raw, dict):
            raise ValueError("not an object")
        started = raw.get("startedAt")
        if not isinstance(started, (int, float)) or isinstance(started, bool):
            raise ValueError("startedAt is not a number")
        if not math.isfinite(started):
            raise ValueError("startedAt is not finite")
        checks = {
            "callId": lambda v: isinstance(v, str) and v,
            "agentId": lambda v: isinstance(v, str) and v,
            "sampleRate": lambda v: _int(v) and v > 0,
            "chunks": _int,
            "isTest": lambda v: isinstance(v, bool),
        }
        for name, ok in checks.items():
            if raw.get(name) is not None and not ok(raw[name]):
                raise ValueError(f"{name} has the wrong type")
        where = raw.get("destination")
        return cls(
            started_at=float(started),
            # text from a file goes on the wire: what UTF-8 cannot encode becomes U+FFFD
            call_id=encodable_or_none(raw.get("callId")),
            sample_rate=raw.get("sampleRate"),
            chunks=raw.get("chunks") or 0,
            agent_id=encodable_or_none(raw.get("agentId")),
            is_test=bool(raw.get("isTest")),
            destination=None if where is None else Destination.parse(where),
        )


@dataclass
class Spooled:
    """One thing to send: a lifecycle event or a chunk, on disk (``path``) or in memory."""

    kind: str  # "started", "chunk", "ended"
    index: int = -1
    path: Path | None = None
    data: bytes | None = None
    #: the spool that keeps the file (counts its bytes, retries a removal that failed)
    spool: Spool | None = field(default=None, repr=False)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return files.read_own(self.path)

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        try:
            return os.lstat(self.path).st_size if self.path else 0
        except OSError:
            return 0

    def remove(self) -> None:
        """Delete it once sent; a failure is logged once and retried later, never raised."""
        self.data = None
        if self.path is not None:
            remove_file(self.path, self.spool)


def remove_file(path: Path, spool: Spool | None) -> None:
    try:
        size = os.lstat(path).st_size
        files.remove(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        if spool is not None:
            spool.remove_later(path, exc)
        return
    if spool is not None:
        spool.count(-size)


@dataclass
class Contents:
    """What a call folder holds, by kind (names only; nothing read yet)."""

    started: Path | None = None
    ended: Path | None = None
    chunks: dict[int, Path] = field(default_factory=dict)
    tails: dict[int, Path] = field(default_factory=dict)
    meta: Path | None = None
    records: Path | None = None


class CallSpool:
    """One call's folder (or memory). Written by the processor thread, drained by a sender."""

    def __init__(
        self,
        root: Path | None,
        key: str,
        lock_fd: int | None = None,
        *,
        spool: Spool | None = None,
    ) -> None:
        self.key = key
        self.dir = root / key if root is not None else None
        self.spool = spool
        self._lock_fd = lock_fd
        self._records: list[bytes] = []  # memory mode only
        self._meta: dict[str, Any] = {}
        self._memory_only = self.dir is None
        self._records_fd: int | None = None  # kept open: a call appends a record per event
        self._tail: files.GrowingFile | None = None
        self._tail_index = -1

    @property
    def durable(self) -> bool:
        return not self._memory_only

    def _disk_failed(self, exc: OSError) -> None:
        # a full or vanished disk must not lose the call: what follows stays in memory
        if not self._memory_only:
            logger.warning(
                "cannot write the spool of call %s (%s): keeping it in memory", self.key, exc
            )
        self._go_to_memory()

    def _go_to_memory(self) -> None:
        self._memory_only = True
        self._close_files()

    def _room(self, size: int) -> bool:
        """Whether ``size`` more bytes may go to disk (within the spool's cap)."""
        if self.spool is None or self.spool.reserve(size):
            return True
        if not self._memory_only:
            logger.warning(
                "spool at its %d-byte cap, holding only calls still going on: call %s is "
                "kept in memory from now on (delivered while this process lives)",
                self.spool.max_bytes,
                self._meta.get("callId") or self.key,
            )
        self._go_to_memory()
        return False

    # -- making the folder -----------------------------------------------------------------

    def create(self) -> None:
        if self.dir is None:
            return
        # locked before it is visible under its name, so no recovery can take it for an orphan
        hidden = self.dir.with_name(f".{self.dir.name}.new")
        files.make_private_dir(hidden)
        self._lock_fd = files.create_lock(hidden / LOCK)
        os.rename(hidden, self.dir)

    def _close_files(self) -> None:
        if self._records_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._records_fd)
            self._records_fd = None
        if self._tail is not None:
            self._tail.close()  # the file stays: a recovery sends it
            self._tail = None

    def release(self) -> None:
        """Drop the folder lock (the call stays spooled if anything is left in it)."""
        self._close_files()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    # -- meta --------------------------------------------------------------------------------

    def note_start(
        self, started_at: float, call_id: str | None, agent_id: str, is_test: bool
    ) -> None:
        meta = {"startedAt": started_at, "callId": call_id, "agentId": agent_id}
        meta["isTest"] = is_test
        if self.spool is not None and self.spool.destination is not None:
            meta["destination"] = self.spool.destination.as_json()
        self._write_meta(meta)

    def note_call_id(self, call_id: str, sample_rate: int | None) -> None:
        self._write_meta({**self._meta, "callId": call_id, "sampleRate": sample_rate})

    def note_chunk(self, index: int) -> None:
        """Chunk ``index`` is made: what Roark will hold counts from here after a crash."""
        if index + 1 > int(self._meta.get("chunks") or 0):
            self._write_meta({**self._meta, "chunks": index + 1})

    def _write_meta(self, meta: dict[str, Any]) -> None:
        self._meta = meta
        if self.durable and self.dir is not None:
            try:
                files.write_atomic(self.dir / META, json.dumps(meta).encode())
            except OSError as exc:
                self._disk_failed(exc)

    def read_meta(self) -> CallMeta:
        """The call's meta (``FileNotFoundError`` without one, ``ValueError`` when corrupt)."""
        if self._meta:
            return CallMeta.parse(self._meta)
        if self.dir is None:
            raise FileNotFoundError(f"call {self.key} has no meta")
        raw = json.loads(files.read_own(self.dir / META))
        meta = CallMeta.parse(raw)
        self._meta = raw
        return meta

    # -- records -----------------------------------------------------------------------------

    def append_record(self, bucket: str, record: Any) -> None:
        """Keep a transcript, tool or metric record of the call (``bucket`` says which)."""
        entry = {"bucket": bucket, "record": record}
        line = json.dumps(entry, ensure_ascii=False, allow_nan=False).encode() + b"\n"
        if self.durable and self.dir is not None and self._room(len(line)):
            try:
                if self._records_fd is None:
                    # each record reaches the file at once (one write), so a crash keeps it
                    self._records_fd = files.create(self.dir / RECORDS, append=True)
                assert self._records_fd is not None
                files.write_all(self._records_fd, line)
                return
            except OSError as exc:
                self._disk_failed(exc)
        self._records.append(line)

    def record_lines(self) -> tuple[list[bytes], bytes]:
        """The whole lines of the records kept so far, oldest first, and what follows the
        last whole line (a line a crash cut short)."""
        lines = [b""]
        if self.dir is not None:
            with contextlib.suppress(FileNotFoundError):
                lines = files.read_own(self.dir / RECORDS).split(b"\n")
        whole = [line for line in lines[:-1] + self._records if line.strip()]
        return whole, lines[-1]

    def read_records(self) -> list[tuple[str, Any]]:
        """The records kept so far as (bucket, record), oldest first; unreadable lines skipped."""
        records = []
        for line in self.record_lines()[0]:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line from a crash
            if isinstance(entry, dict) and isinstance(entry.get("bucket"), str):
                records.append((entry["bucket"], entry.get("record")))
        return records

    # -- items -------------------------------------------------------------------------------

    def put(self, kind: str, data: bytes, index: int = -1) -> Spooled:
        name = {"started": STARTED, "ended": ENDED}.get(kind) or chunk_name(index)
        if self.durable and self.dir is not None:
            path = self.dir / name
            try:
                if kind == "chunk" and self._tail is not None and self._tail_index == index:
                    self._seal_tail(path, data)
                elif self._room(len(data)):
                    files.write_atomic(path, data)
                else:
                    return Spooled(kind, index, data=data)
                # the bytes stay at hand too: the sender need not read them back, and they
                # survive the folder vanishing (the worker drops them when its queue is long)
                return Spooled(kind, index, path=path, data=data, spool=self.spool)
            except OSError as exc:
                self._disk_failed(exc)
        return Spooled(kind, index, data=data)

    def write_tail(self, index: int, keep: int, data: bytes | memoryview) -> None:
        """The recording's audio after chunk ``index - 1``: the tail file keeps its first
        ``keep`` bytes, then holds ``data`` (written only where it changed)."""
        if not self.durable or self.dir is None:
            return
        try:
            if self._tail is None or self._tail_index != index:
                self._drop_tail()
                self._tail = files.GrowingFile(self.dir / tail_name(index))
                self._tail_index = index
            grows = max(0, min(keep, self._tail.size) + len(data) - self._tail.size)
            if self._room(grows):
                self._tail.update(keep, data)
        except OSError as exc:
            self._disk_failed(exc)

    def _seal_tail(self, path: Path, data: bytes) -> None:
        assert self._tail is not None
        tail, self._tail = self._tail, None
        grows = max(0, len(data) - tail.size)
        if not self._room(grows):
            tail.close()
            raise OSError("no room for the chunk")
        tail.seal(path, data)

    def _drop_tail(self) -> None:
        """The tail of an earlier chunk, never sealed (a chunk written whole instead)."""
        if self._tail is not None:
            self._tail.close()
            remove_file(self._tail.path, self.spool)
            self._tail = None

    def end_recording(self) -> None:
        """The recording is complete (its last chunk made): no tail is left to keep."""
        with contextlib.suppress(OSError):
            self._drop_tail()

    def contents(self) -> Contents:
        """What the folder holds, by kind (for a recovery)."""
        found = Contents()
        if self.dir is None:
            return found
        for entry in os.scandir(self.dir):
            name, path = entry.name, Path(entry.path)
            if (index := chunk_index(name)) is not None:
                found.chunks[index] = path
            elif (index := tail_index(name)) is not None:
                found.tails[index] = path
            elif name in (STARTED, ENDED, META, RECORDS):
                attr = {STARTED: "started", ENDED: "ended", META: "meta", RECORDS: "records"}
                setattr(found, attr[name], path)
        return found

    def quarantine(self, path: Path, reason: str) -> None:
        """Move one unreadable file of this call aside (``Spool.quarantine``)."""
        if self.spool is not None:
            self.spool.quarantine(path, f"{self.key}.{path.name}", reason)

    def remove(self) -> None:
        """Delete the folder once everything in it was delivered (or given up).

        When that fails (a read-only spool), the folder stays locked by this process, so no
        other one sends the call again while it lives, and its removal is retried later."""
        self._close_files()
        if self.dir is not None:
            try:
                remove_call_folder(self.dir)
            except OSError as exc:
                if self.spool is not None:
                    self.spool.remove_later(self.dir, exc, holder=self)
                    return
        self.release()


def remove_call_folder(folder: Path) -> None:
    """Rename a call folder to a hidden name, then delete it: a removal cut short leaves
    nothing a recovery would take for a call to send (again)."""
    gone = folder.with_name(f".{folder.name}.del-{secrets.token_hex(4)}")
    try:
        os.rename(folder, gone)
    except FileNotFoundError:
        return
    remove_tree(gone)


def remove_tree(folder: Path) -> None:
    """Delete a folder and what it holds (links are removed, never followed)."""
    failures: list[BaseException] = []

    def failed(*args: Any) -> None:
        if not isinstance(args[2][1], FileNotFoundError):  # removed by someone else meanwhile
            failures.append(args[2][1])

    shutil.rmtree(folder, onerror=failed)
    if failures and os.path.lexists(folder):
        raise failures[0]
