"""FolderStore: calls kept in a folder with an SQLite index, so they survive a restart.

The layout of the folder (``.roark/`` by default)::

    index.sqlite3                the index: one row per call, its chunks, events, violations
    lock                         held by the process serving the folder (one at a time)
    calls/<call>/events/0001-call-started.json   every accepted event, byte for byte
    calls/<call>/chunks/000000.pcm               every chunk as PUT
    calls/<call>/recording.wav                   the chunks stitched (when the call ends)
    calls/<call>/peaks.u8                        the waveform: see ``analysis.py``
    calls/<call>/analysis.json                   speech, latency and alignment

Files are written to a temporary name and renamed, so a crash never leaves half a file
under a real name. Stitching and analysis run outside the lock: a long call does not hold
up other calls. One process serves a folder at a time: a second one would keep its own
upload URLs and ended-times, and answer the same call differently (``FolderInUseError``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
import wave
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..testing.server.contract import safe_name
from ..testing.server.records import ReceivedCall
from ..testing.server.storage import CallProgress, CallStore, call_summary
from . import analysis

try:
    import fcntl
except ImportError:  # Windows: no lock, as the spool
    fcntl = None  # type: ignore[assignment]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    folder TEXT NOT NULL,
    first_seen REAL NOT NULL,
    agent_id TEXT,
    agent_name TEXT,
    is_test INTEGER,
    started_at TEXT,
    reason TEXT,
    call_started_at TEXT,
    call_ended_at TEXT,
    turns INTEGER,
    tool_calls INTEGER,
    tool_errors INTEGER,
    interruptions INTEGER,
    spoken_to_ms INTEGER,
    started_count INTEGER NOT NULL DEFAULT 0,
    ended_count INTEGER NOT NULL DEFAULT 0,
    sample_rate INTEGER,
    frames INTEGER,
    stitched TEXT,
    finished_seq INTEGER
);
CREATE TABLE IF NOT EXISTS events (
    call_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, file TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);
CREATE TABLE IF NOT EXISTS chunk_puts (call_id TEXT NOT NULL, idx INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS upload_requests (call_id TEXT NOT NULL, idx INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS violations (call_id TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunk_puts_call ON chunk_puts (call_id);
CREATE INDEX IF NOT EXISTS upload_requests_call ON upload_requests (call_id);
CREATE INDEX IF NOT EXISTS violations_call ON violations (call_id);
"""

# a call-ended received before this run started: any chunk request now is after it
_ENDED_BEFORE_THIS_RUN = float("-inf")


class FolderInUseError(RuntimeError):
    """Another process (or another server in this one) already serves the folder."""


def _lock_folder(folder: Path) -> int:
    """An fd holding the folder's lock (with this process's id written in it); raises
    :class:`FolderInUseError` naming the holder when another has it."""
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        who = f"process {holder}" if holder.isdigit() else "another process"
        raise FolderInUseError(
            f"{folder} is already served by {who} (another roark dev?); stop it, or give this "
            "one another folder (--dir)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _ended_columns(payload: dict[str, Any]) -> tuple[Any, ...]:
    transcript = payload.get("transcript") or []
    tools = payload.get("toolCalls") or []
    return (
        payload.get("callEndedReason"),
        payload.get("callStartedAt"),
        payload.get("callEndedAt"),
        len(transcript),
        sum(1 for t in tools if t.get("kind") == "tool_call"),
        sum(1 for t in tools if t.get("kind") == "tool_result" and t.get("isError")),
        sum(1 for t in transcript if t.get("interrupted")),
        max((t.get("endAudioOffsetMs", 0) for t in transcript), default=None),
    )


class ChunkFiles(Mapping[int, bytes]):
    """A call's chunks by index, read from their files when asked for."""

    def __init__(self, folder: Path, indices: list[int]) -> None:
        self._folder = folder
        self._indices = indices

    def __getitem__(self, index: int) -> bytes:
        if index not in self._indices:
            raise KeyError(index)
        return (self._folder / f"{index:06d}.pcm").read_bytes()

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices)

    def __len__(self) -> int:
        return len(self._indices)


def read_recording(path: Path) -> tuple[np.ndarray, int]:
    """A stitched WAV as a read-only memory map of int16 ``(frames, 2)``, and its rate."""
    with wave.open(str(path), "rb") as wav:
        rate, frames = wav.getframerate(), wav.getnframes()
    # the data chunk is the last thing in the files written here
    offset = path.stat().st_size - frames * 4
    if frames == 0:
        return np.zeros((0, 2), np.int16), rate
    return np.memmap(path, dtype="<i2", mode="r", offset=offset, shape=(frames, 2)), rate


class FolderStore(CallStore):
    """Calls in ``folder``, indexed in ``folder/index.sqlite3``; survives a restart.

    Example::

        store = FolderStore(".roark")
        server = LocalRoark(store=store)   # or roark dev's server
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        super().__init__()
        self.folder = Path(folder).resolve()
        (self.folder / "calls").mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = _lock_folder(self.folder)
        try:
            # one connection, used under the store's lock from whichever thread holds it
            self._db = sqlite3.connect(
                self.folder / "index.sqlite3", check_same_thread=False, isolation_level=None
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # safe in WAL; a lost tail is fine
            self._db.executescript(_SCHEMA)
        except BaseException:
            self._unlock()
            raise
        self._ended_mono: dict[str, float] = {}

    def close(self) -> None:
        """Close the index and release the folder. Idempotent."""
        with self.changed:
            self._db.close()
            self._unlock()

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the fd releases the flock

    @property
    def recordings_dir(self) -> Path:
        return self.folder / "calls"

    def call_folder(self, call_id: str) -> Path:
        """The folder of one call's files."""
        return self.recordings_dir / safe_name(call_id)

    # ---------------------------------------------------------------- index helpers

    def _row(self, call_id: str) -> sqlite3.Row | None:
        return self._db.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()

    def _ensure(self, call_id: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO calls (call_id, folder, first_seen) VALUES (?, ?, ?)",
            (call_id, safe_name(call_id), time.time()),
        )

    def _indices(self, table: str, call_id: str) -> list[int]:
        rows = self._db.execute(
            f"SELECT idx FROM {table} WHERE call_id = ? ORDER BY rowid", (call_id,)
        )
        return [r[0] for r in rows]

    def _ended_mono_of(self, call_id: str, row: sqlite3.Row | None) -> float | None:
        if call_id in self._ended_mono:
            return self._ended_mono[call_id]
        return _ENDED_BEFORE_THIS_RUN if row is not None and row["ended_count"] else None

    def _save_event(self, call_id: str, kind: str, raw: bytes) -> None:
        folder = self.call_folder(call_id) / "events"
        folder.mkdir(parents=True, exist_ok=True)
        (seq,) = self._db.execute(
            "SELECT COUNT(*) + 1 FROM events WHERE call_id = ?", (call_id,)
        ).fetchone()
        name = f"{seq:04d}-{kind}.json"
        _write_atomically(folder / name, raw)
        self._db.execute(
            "INSERT INTO events (call_id, seq, kind, file) VALUES (?, ?, ?, ?)",
            (call_id, seq, kind, name),
        )

    # ---------------------------------------------------------------- the contract's side

    def progress(self, call_id: str) -> CallProgress:
        with self.changed:
            row = self._row(call_id)
            if row is None:
                return CallProgress()
            chunks = tuple(sorted(set(self._indices("chunk_puts", call_id))))
            return CallProgress(row["started_count"] > 0, chunks, self._ended_mono_of(call_id, row))

    def add_started(self, call_id: str, payload: dict[str, Any], raw: bytes) -> None:
        with self.changed:
            self._ensure(call_id)
            self._save_event(call_id, "call-started", raw)
            self._db.execute(
                "UPDATE calls SET started_count = started_count + 1,"
                " agent_id = COALESCE(agent_id, ?), agent_name = COALESCE(agent_name, ?),"
                " is_test = COALESCE(is_test, ?), started_at = COALESCE(started_at, ?)"
                " WHERE call_id = ?",
                (
                    payload.get("agentId"),
                    payload.get("agentName"),
                    payload.get("isTest"),
                    payload.get("eventTimestamp"),
                    call_id,
                ),
            )
            self.changed.notify_all()

    def add_ended(self, call_id: str, payload: dict[str, Any], raw: bytes, mono: float) -> bool:
        with self.changed:
            self._ensure(call_id)
            first = not self._row(call_id)["ended_count"]
            self._save_event(call_id, "call-ended", raw)
            self._db.execute(
                "UPDATE calls SET ended_count = ended_count + 1 WHERE call_id = ?", (call_id,)
            )
            if first:
                self._ended_mono[call_id] = mono
                self._db.execute(
                    "UPDATE calls SET reason = ?, call_started_at = ?, call_ended_at = ?,"
                    " turns = ?, tool_calls = ?, tool_errors = ?, interruptions = ?,"
                    " spoken_to_ms = ? WHERE call_id = ?",
                    (*_ended_columns(payload), call_id),
                )
            self.changed.notify_all()
            return first

    def add_upload_request(self, call_id: str, index: int) -> float | None:
        with self.changed:
            self._ensure(call_id)
            self._db.execute(
                "INSERT INTO upload_requests (call_id, idx) VALUES (?, ?)", (call_id, index)
            )
            self.changed.notify_all()
            return self._ended_mono_of(call_id, self._row(call_id))

    def add_chunk(self, call_id: str, index: int, data: bytes) -> float | None:
        folder = self.call_folder(call_id) / "chunks"
        folder.mkdir(parents=True, exist_ok=True)
        with self.changed:
            self._ensure(call_id)
            _write_atomically(folder / f"{index:06d}.pcm", data)
            self._db.execute(
                "INSERT INTO chunk_puts (call_id, idx) VALUES (?, ?)", (call_id, index)
            )
            self.changed.notify_all()
            return self._ended_mono_of(call_id, self._row(call_id))

    def add_violation(self, call_id: str, message: str) -> None:
        with self.changed:
            self._ensure(call_id)
            self._db.execute(
                "INSERT INTO violations (call_id, message) VALUES (?, ?)", (call_id, message)
            )
            self.changed.notify_all()

    def finish(self, call_id: str, sample_rate: int | None) -> ReceivedCall:
        with self.changed:
            row = self._row(call_id)
            rate = sample_rate if sample_rate is not None else row["sample_rate"]
            indices = sorted(set(self._indices("chunk_puts", call_id)))
            ended = self._first_event(call_id, "call-ended")
        folder = self.call_folder(call_id)
        frames, stitched = None, f"{rate}:{','.join(map(str, indices))}"
        # a resent call-ended (a client that timed out waiting) finds the work done
        if indices and rate and stitched != row["stitched"]:
            frames = self._stitch(folder, indices, int(rate))
            self._analyze(folder, ended or {})
        with self.changed:
            self._db.execute(
                "UPDATE calls SET sample_rate = COALESCE(?, sample_rate),"
                " frames = COALESCE(?, frames), stitched = COALESCE(?, stitched),"
                " finished_seq = COALESCE(finished_seq,"
                " (SELECT COALESCE(MAX(finished_seq), 0) + 1 FROM calls)) WHERE call_id = ?",
                (rate if frames is not None else None, frames, frames and stitched, call_id),
            )
            self.changed.notify_all()
            return self._received(call_id)

    def _stitch(self, folder: Path, indices: list[int], rate: int) -> int:
        """Concatenate the chunks into recording.wav, a chunk at a time; its frame count."""
        tmp = folder / "recording.wav.tmp"
        frames = 0
        with wave.open(str(tmp), "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            for index in indices:
                data = (folder / "chunks" / f"{index:06d}.pcm").read_bytes()
                wav.writeframesraw(data)
                frames += len(data) // 4
        os.replace(tmp, folder / "recording.wav")
        return frames

    def _analyze(self, folder: Path, ended: dict[str, Any]) -> dict[str, Any]:
        recording, rate = read_recording(folder / "recording.wav")
        scanned = analysis.scan(recording, rate)
        _write_atomically(folder / "peaks.u8", scanned.peaks.tobytes())
        result = analysis.analyze(
            ended.get("transcript") or [], ended.get("metrics") or [], scanned
        )
        _write_atomically(folder / "analysis.json", json.dumps(result).encode())
        return result

    def analysis_of(self, call_id: str) -> dict[str, Any] | None:
        """The call's analysis (None without a stitched recording); one made by an older
        viewer is made again, so a folder kept across upgrades shows what this one shows."""
        folder = self.call_folder(call_id)
        try:
            result = json.loads((folder / "analysis.json").read_text())
        except (OSError, ValueError):
            result = None
        if isinstance(result, dict) and result.get("version") == analysis.VERSION:
            return result
        if not (folder / "recording.wav").is_file():
            return None
        return self._analyze(folder, self.first_event(call_id, "call-ended") or {})

    # ---------------------------------------------------------------- readers

    def _events(self, call_id: str) -> list[tuple[str, bytes]]:
        folder = self.call_folder(call_id) / "events"
        rows = self._db.execute(
            "SELECT kind, file FROM events WHERE call_id = ? ORDER BY seq", (call_id,)
        )
        return [(r["kind"], (folder / r["file"]).read_bytes()) for r in rows]

    def _first_event(self, call_id: str, kind: str) -> dict[str, Any] | None:
        for found, raw in self._events(call_id):
            if found == kind:
                return json.loads(raw)
        return None

    def raw_event(self, call_id: str, kind: str) -> Path | None:
        """The file holding the call's first ``kind`` event exactly as received."""
        with self.changed:
            row = self._db.execute(
                "SELECT file FROM events WHERE call_id = ? AND kind = ? ORDER BY seq LIMIT 1",
                (call_id, kind),
            ).fetchone()
        return None if row is None else self.call_folder(call_id) / "events" / row["file"]

    def _received(self, call_id: str) -> ReceivedCall | None:
        row = self._row(call_id)
        if row is None:
            return None
        events = [json.loads(raw) for _, raw in self._events(call_id)]
        started = [e for e in events if e.get("event") == "call-started"]
        ended = [e for e in events if e.get("event") == "call-ended"]
        folder = self.call_folder(call_id)
        recording, path = None, folder / "recording.wav"
        if row["frames"] is not None and path.exists():
            recording, _ = read_recording(path)
        return ReceivedCall(
            livekit_call_id=call_id,
            started=started[0] if started else None,
            started_count=row["started_count"],
            ended=ended[0] if ended else None,
            ended_count=row["ended_count"],
            events=events,
            chunks=ChunkFiles(folder / "chunks", sorted(set(self._indices("chunk_puts", call_id)))),
            chunk_puts=self._indices("chunk_puts", call_id),
            recording_path=path if recording is not None else None,
            recording=recording,
            sample_rate=row["sample_rate"],
            upload_url_requests=self._indices("upload_requests", call_id),
            violations=self.violations_of(call_id),
        )

    def rows(self, agent_id: str | None = None, call_id: str | None = None) -> list[dict[str, Any]]:
        """Index rows, newest first, with each call's stored and asked-for chunk indices
        and its violation count; only one agent's or one call's when given."""
        where, args = [], []
        for column, value in (("agent_id", agent_id), ("call_id", call_id)):
            if value is not None:
                where.append(f"c.{column} = ?")
                args.append(value)
        query = f"""
            SELECT c.*,
              (SELECT GROUP_CONCAT(DISTINCT idx) FROM chunk_puts p
                WHERE p.call_id = c.call_id) AS chunk_list,
              (SELECT GROUP_CONCAT(DISTINCT idx) FROM upload_requests u
                WHERE u.call_id = c.call_id) AS asked_list,
              (SELECT COUNT(*) FROM violations v WHERE v.call_id = c.call_id) AS violation_count
            FROM calls c {"WHERE " + " AND ".join(where) if where else ""}
            ORDER BY c.first_seen DESC, c.rowid DESC"""
        with self.changed:
            return [dict(r) for r in self._db.execute(query, args)]

    def call_id_of(self, folder: str) -> str | None:
        """The call whose folder is named ``folder`` (the viewer's URLs use it)."""
        with self.changed:
            row = self._db.execute("SELECT call_id FROM calls WHERE folder = ?", (folder,))
            found = row.fetchone()
        return None if found is None else found[0]

    def agents(self) -> list[str]:
        with self.changed:
            rows = self._db.execute(
                "SELECT DISTINCT agent_id FROM calls WHERE agent_id IS NOT NULL ORDER BY agent_id"
            )
            return [r[0] for r in rows]

    def first_event(self, call_id: str, kind: str) -> dict[str, Any] | None:
        """The call's first accepted ``kind`` event (``call-started``/``call-ended``)."""
        with self.changed:
            return self._first_event(call_id, kind)

    def violations_of(self, call_id: str) -> list[str]:
        with self.changed:
            rows = self._db.execute(
                "SELECT message FROM violations WHERE call_id = ? ORDER BY rowid", (call_id,)
            )
            return [r[0] for r in rows]

    def received(self, call_id: str) -> ReceivedCall | None:
        with self.changed:
            return self._received(call_id)

    def call_ids(self) -> list[str]:
        with self.changed:
            return [r[0] for r in self._db.execute("SELECT call_id FROM calls ORDER BY rowid")]

    def last_finished(self) -> int:
        """The order number of the call finished last (0: none yet)."""
        with self.changed:
            (seq,) = self._db.execute("SELECT COALESCE(MAX(finished_seq), 0) FROM calls").fetchone()
            return int(seq)

    def finished_after(self, seq: int) -> tuple[int, ReceivedCall] | None:
        """The first call finished after order number ``seq``, with its own number."""
        with self.changed:
            row = self._db.execute(
                "SELECT call_id, finished_seq FROM calls WHERE finished_seq > ?"
                " ORDER BY finished_seq LIMIT 1",
                (seq,),
            ).fetchone()
            call = None if row is None else self._received(row["call_id"])
            return None if call is None else (row["finished_seq"], call)

    def ended_ids(self) -> list[str]:
        with self.changed:
            rows = self._db.execute(
                "SELECT call_id FROM calls WHERE finished_seq IS NOT NULL ORDER BY finished_seq"
            )
            return [r[0] for r in rows]

    def summaries(self) -> list[str]:
        with self.changed:
            return [call_summary(c) for c in map(self._received, self.call_ids()) if c]

    def reset(self) -> None:
        """Forget every call: the index rows and the call folders."""
        with self.changed:
            for table in ("calls", "events", "chunk_puts", "upload_requests", "violations"):
                self._db.execute(f"DELETE FROM {table}")
            shutil.rmtree(self.recordings_dir, ignore_errors=True)
            self.recordings_dir.mkdir(parents=True, exist_ok=True)
            self._ended_mono.clear()
            self.changed.notify_all()
