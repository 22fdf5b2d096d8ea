"""The spool folder of a process: its call folders, its size cap, the adoption of calls that
stopped processes left (for ``recovery``), and the quarantine.

Several processes share one spool folder (LiveKit runs each job in its own process): each
holds a ``flock`` on the folders of its live calls, and adopts an orphan only by taking
that lock, never by making one. What cannot be read is moved to ``.quarantine`` with a
warning, never deleted unsaid; it is removed after 7 days, or first when the cap needs room.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._failures import Stats
from . import spool_files as files
from .spool import (
    LOCK,
    META,
    QUARANTINE,
    CallMeta,
    CallSpool,
    Destination,
    is_call_key,
    leftover_kind,
    remove_call_folder,
    remove_tree,
)
from .spool_notes import DELIVERED, NOTES, Notes, refused_name
from .spool_size import SpoolSize, tree_size

logger = logging.getLogger("roark.spool")

# a call spooled for another destination that nobody claims this long is removed (as is
# what sits in the quarantine)
UNCLAIMED_FOR = 7 * 24 * 3600.0
# a hidden call folder (being made, or being removed) this old was left by a process that
# stopped midway (either takes milliseconds); a younger one may be another process's at work
LEFTOVER_AFTER = 60.0
# other processes write to the same folder: what they wrote is counted again before a write
# when the last count is older than this (a processor's pass), so that together they stay
# within the cap (``spool_size``)
RECOUNT_AFTER = 0.4


class Adoption(enum.Enum):
    """What a recovery found in a call folder."""

    ADOPTED = "an orphan of this destination, locked for this process"
    LIVE = "locked by a process that lives"
    FOREIGN = "an orphan of another destination, left to its program"
    EXPIRED = "an orphan of another destination nobody claimed for 7 days, removed"
    EMPTY = "a call that never began, removed"
    QUARANTINED = "unreadable, moved to the quarantine"


@dataclass(frozen=True)
class Entry:
    """A call folder or a quarantined item, as the spool cap sees it."""

    name: str
    size: int
    age: float  # when it was made (a call folder: its lock file's time)
    quarantined: bool = False


class Spool:
    """The spool folder of this process; falls back to memory when it cannot be used.

    Its size is kept under ``max_bytes``: every write reserves its bytes first, and a write
    that does not fit asks ``make_room`` (set by the worker) to drop whole calls, oldest
    first. The count of bytes is this process's own writes since the last ``rescan``, which
    also sees what other processes sharing the folder wrote.
    """

    def __init__(
        self,
        root: Path,
        max_bytes: int,
        destination: Destination | None = None,
        stats: Stats | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.destination = destination
        self._stats = stats
        self._lock = threading.Lock()
        self._bytes = 0
        self._scanned_at = 0.0
        self._removals: dict[Path, CallSpool | None] = {}
        #: called with the bytes a write needs when the spool is full: drops whole calls
        self.make_room: Callable[[int], None] | None = None
        self.root: Path | None = root
        self._size = SpoolSize(root)
        try:
            if files.ensure_root(root):
                logger.info("spool folder %s was writable by others: made it private", root)
            probe = root / f".probe.{secrets.token_hex(6)}"
            files.create(probe)
            files.remove(probe)
        except OSError as exc:
            logger.warning(
                "spool folder %s is not usable (%s): calls are kept in memory only", root, exc
            )
            self.root = None
        else:
            self.rescan()
        self.notes = Notes(self.root)

    def after_fork(self) -> None:
        """In a forked child: the lock may have been held at the fork; the parent's pending
        removals are the parent's (our copies of their folder locks are closed: the parent's
        stay held)."""
        self._lock = threading.Lock()
        self._size.after_fork()
        removals, self._removals = self._removals, {}
        for holder in removals.values():
            if holder is not None:
                holder.release()

    def new_call(self, key: str) -> CallSpool:
        call = CallSpool(self.root, key, spool=self)
        try:
            call.create()
        except OSError as exc:
            logger.warning("cannot spool call %s to disk (%s): keeping it in memory", key, exc)
            call = CallSpool(None, key)
        return call

    # -- the cap -----------------------------------------------------------------------------

    def count(self, delta: int) -> None:
        with self._lock:
            self._bytes = max(0, self._bytes + delta)

    def reserve(self, size: int) -> bool:
        """Count ``size`` more bytes about to be written; False when they do not fit."""
        if size <= 0:
            return True
        if self._stale():
            self.rescan(full=False)
        for attempt in range(3):
            with self._lock:
                if self._bytes + size <= self.max_bytes:
                    self._bytes += size
                    return True
            if attempt == 0:
                self.rescan()  # the count may be stale: others removed what they delivered
            elif attempt == 1 and self.make_room is not None:
                self.make_room(size)
        return False

    def _stale(self) -> bool:
        """Whether the count may miss what other processes wrote since a pass ago."""
        with self._lock:
            return time.monotonic() - self._scanned_at > RECOUNT_AFTER

    def over_by(self, size: int = 0) -> int:
        with self._lock:
            return self._bytes + size - self.max_bytes

    def rescan(self, *, full: bool = True) -> None:
        """Count what the folder really holds of roark's (every process's calls, the
        quarantine, the notes); ``full=False`` reads again only what changed."""
        if self.root is not None:
            total = self._size.count(full=full)
            with self._lock:
                self._bytes = total
                self._scanned_at = time.monotonic()

    def entries(self) -> list[Entry]:
        """Every call folder and quarantined item, oldest first."""
        if self.root is None:
            return []
        found = []
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.root):
                if entry.name == QUARANTINE and files.is_own_dir(entry):
                    found += self._quarantined()
                elif is_call_key(entry.name) and files.is_own_dir(entry):
                    with contextlib.suppress(OSError):
                        made = os.lstat(Path(entry.path) / LOCK).st_mtime
                        found.append(Entry(entry.name, tree_size(Path(entry.path)), made))
        return sorted(found, key=lambda e: e.age)

    def _quarantined(self) -> list[Entry]:
        assert self.root is not None
        found = []
        with contextlib.suppress(OSError):
            for item in os.scandir(self.root / QUARANTINE):
                with contextlib.suppress(OSError):
                    st = item.stat(follow_symlinks=False)
                    is_dir = item.is_dir(follow_symlinks=False)
                    size = tree_size(Path(item.path)) if is_dir else st.st_size
                    found.append(Entry(item.name, size, st.st_mtime, quarantined=True))
        return found

    def call_id_of(self, key: str) -> str:
        """The call id a call folder's meta gives (its key when the meta says none)."""
        assert self.root is not None
        try:
            meta = json.loads(files.read_own(self.root / key / META))
            call_id = meta.get("callId") if isinstance(meta, dict) else None
        except (OSError, ValueError):
            call_id = None
        return call_id if isinstance(call_id, str) and call_id else key

    def drop(self, entry: Entry) -> bool:
        """Remove a call folder no live process holds, or a quarantined item."""
        assert self.root is not None
        try:
            if entry.quarantined:
                remove_tree_or_file(self.root / QUARANTINE / entry.name)
            else:
                fd = files.take_lock(self.root / entry.name / LOCK)
                if fd is None:
                    return False  # a live process owns it
                CallSpool(self.root, entry.name, lock_fd=fd, spool=self).remove()
        except OSError:
            return False
        return True

    # -- recovery ----------------------------------------------------------------------------

    def orphan_keys(self, live: set[str]) -> list[str]:
        """The call folders no process of this one holds, oldest first; what removals cut
        short left behind is cleared on the way. Only roark's own names are looked at."""
        if self.root is None:
            return []
        try:
            entries = sorted(os.scandir(self.root), key=_mtime)
        except OSError:
            return []
        delivered = {n[len(DELIVERED) :] for n in self.notes.names(DELIVERED)}
        keys = []
        for entry in entries:
            if entry.name.startswith("."):
                self._clear_leftover(entry)
            elif not (is_call_key(entry.name) and files.is_own_dir(entry)):
                continue  # not a call: someone else's, or the user's own
            elif entry.name in delivered:
                self._clear_delivered(entry.name)
            elif entry.name not in live:
                keys.append(entry.name)
        return keys

    def _clear_leftover(self, entry: os.DirEntry[str]) -> None:
        folder = Path(entry.path)
        if not files.is_own_dir(entry):
            return
        with contextlib.suppress(OSError):
            if entry.name == QUARANTINE:
                self._expire_quarantine(folder)
            elif entry.name == NOTES:
                self._expire_notes()
            elif time.time() - _mtime(entry) < LEFTOVER_AFTER:
                return  # maybe being made or removed right now
            elif leftover_kind(entry.name) == "removing":
                remove_tree(folder)  # delivered; its removal was cut short
            elif leftover_kind(entry.name) == "making":
                fd = files.take_lock(folder / LOCK)
                if fd is not None:  # its maker died before the call was visible
                    remove_tree(folder)
                    os.close(fd)

    def _clear_delivered(self, key: str) -> None:
        """A call delivered (or given up) whose folder could not be removed: never sent
        again; removed now if it can be and no live process holds it."""
        assert self.root is not None
        with contextlib.suppress(OSError):
            fd = files.take_lock(self.root / key / LOCK)
            if fd is None:
                return  # its process lives, and retries the removal itself
            try:
                remove_call_folder(self.root / key)
            finally:
                os.close(fd)
            self.notes.remove(DELIVERED + key)

    def _expire_notes(self) -> None:
        self.notes.expire(UNCLAIMED_FOR)
        for name in self.notes.names(DELIVERED):
            assert self.root is not None
            if not os.path.lexists(self.root / name[len(DELIVERED) :]):
                self.notes.remove(name)

    def adopt(self, key: str) -> tuple[Adoption, CallSpool | None]:
        """Lock call folder ``key`` for this process if it is an orphan of its destination."""
        assert self.root is not None
        folder = self.root / key
        try:
            fd = files.take_lock(folder / LOCK)
        except FileNotFoundError:
            if not folder.exists():
                return Adoption.EMPTY, None  # delivered meanwhile by another process
            self.quarantine(folder, key, "it has no lock file (a removal cut short?)")
            return Adoption.QUARANTINED, None
        except OSError as exc:
            self.quarantine(folder, key, f"its lock is not roark's ({exc})")
            return Adoption.QUARANTINED, None
        if fd is None:
            return Adoption.LIVE, None
        call = CallSpool(self.root, key, lock_fd=fd, spool=self)
        try:
            meta = call.read_meta()
        except FileNotFoundError:
            if {e.name for e in os.scandir(folder) if not e.name.startswith(".")} <= {LOCK}:
                call.remove()  # the process died before the call began: nothing to send
                return Adoption.EMPTY, None
            self.quarantine(folder, key, f"its {META} is missing")
            call.release()
            return Adoption.QUARANTINED, None
        except (OSError, ValueError) as exc:
            self.quarantine(folder, key, f"its {META} is unreadable ({exc})")
            call.release()
            return Adoption.QUARANTINED, None
        return self._claim(call, meta)

    def _claim(self, call: CallSpool, meta: CallMeta) -> tuple[Adoption, CallSpool | None]:
        where = meta.destination
        if where is None or self.destination is None or where == self.destination:
            return Adoption.ADOPTED, call
        if where.key == self.destination.key and self.notes.has(refused_name(where)):
            # spooled with this key for a base URL that was not Roark's API: the URL was
            # fixed since (to another host, as a redirect's fix often is)
            logger.info(
                "call %s was spooled for %s, which answered it is not Roark's API: "
                "delivering it to %s",
                meta.call_id or call.key,
                where,
                self.destination,
            )
            return Adoption.ADOPTED, call
        assert call.dir is not None
        if time.time() - _newest_mtime(call.dir) > UNCLAIMED_FOR:
            logger.warning(
                "removed call %s spooled for %s: unclaimed for 7 days",
                meta.call_id or call.key,
                where,
            )
            call.remove()
            return Adoption.EXPIRED, None
        call.release()
        return Adoption.FOREIGN, None

    # -- quarantine --------------------------------------------------------------------------

    def quarantine(self, path: Path, name: str, reason: str) -> None:
        """Move ``path`` (a file or a whole call folder) aside, with a warning naming it."""
        try:
            target = self._quarantine_place(name)
            os.rename(path, target)
            os.utime(target, follow_symlinks=False)  # kept 7 days from now
        except FileNotFoundError:
            return  # gone meanwhile (delivered and removed by the process that owned it)
        except OSError as exc:
            logger.warning("%s is unreadable (%s); cannot move it aside: %s", path, reason, exc)
            return
        self._counted("quarantined")
        logger.warning("moved %s to the spool's quarantine as %s: %s", path, target, reason)

    def quarantine_lines(self, key: str, name: str, lines: list[bytes], reason: str) -> None:
        """Keep unreadable lines of a call's file aside (the readable ones are used)."""
        try:
            target = self._quarantine_place(f"{key}.{name}")
            files.create(target, b"".join(line + b"\n" for line in lines))
        except OSError as exc:
            logger.warning("%d lines of %s/%s are unreadable (%s)", len(lines), key, name, exc)
            return
        self._counted("quarantined")
        logger.warning(
            "moved %d unreadable lines of %s/%s to the spool's quarantine as %s: %s",
            len(lines),
            key,
            name,
            target,
            reason,
        )

    def _quarantine_place(self, name: str) -> Path:
        assert self.root is not None
        folder = self.root / QUARANTINE
        files.ensure_private_dir(folder)
        target = folder / name
        while os.path.lexists(target):
            target = folder / f"{name}.{secrets.token_hex(3)}"
        return target

    def _expire_quarantine(self, folder: Path) -> None:
        for item in os.scandir(folder):
            with contextlib.suppress(OSError):
                if time.time() - item.stat(follow_symlinks=False).st_mtime > UNCLAIMED_FOR:
                    remove_tree_or_file(Path(item.path))
                    logger.warning("removed %s from the spool's quarantine after 7 days", item.name)

    # -- the destination -----------------------------------------------------------------------

    def note_destination(self, *, refused: bool) -> None:
        """This process's destination answered that it is not Roark's API (``refused``), or
        it accepted something: noted for the processes that recover its calls later."""
        if self.destination is None:
            return
        name = refused_name(self.destination)
        if refused:
            self.notes.add(name, json.dumps(self.destination.as_json()).encode())
        else:
            self.notes.remove(name)

    # -- removals that failed ------------------------------------------------------------------

    def remove_later(self, path: Path, exc: OSError, holder: CallSpool | None = None) -> None:
        """``path`` could not be removed: counted and warned once, retried by
        ``retry_removals`` (a call folder stays locked by ``holder`` meanwhile)."""
        with self._lock:
            self._removals[path] = holder
        if holder is not None:
            # if this process stops first, the next must not send the call again
            self.notes.add(DELIVERED + holder.key)
        if self._stats is not None:
            self._stats.failed("removing delivered files from the spool (retried later)", exc)

    def retry_removals(self) -> None:
        with self._lock:
            pending, self._removals = self._removals, {}
        for path, holder in pending.items():
            try:
                if holder is not None:
                    remove_call_folder(path)
                    holder.release()
                    self.notes.remove(DELIVERED + holder.key)
                else:
                    remove_tree_or_file(path)
            except OSError:
                with self._lock:
                    self._removals[path] = holder

    def stop(self) -> None:
        """This process is done with the spool: one last try at the removals that failed;
        the folders left stay noted as delivered, their locks released."""
        self.retry_removals()
        with self._lock:
            pending, self._removals = self._removals, {}
        for holder in pending.values():
            if holder is not None:
                holder.release()

    def failed(self, kind: str) -> None:
        """Count an internal failure of ``kind`` (from an ``except`` block)."""
        if self._stats is not None:
            self._stats.failed(kind)

    def _counted(self, name: str) -> None:
        if self._stats is not None:
            self._stats.add(name)


def remove_tree_or_file(path: Path) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        remove_tree(path)
    else:
        files.remove(path)


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return 0.0


def _newest_mtime(folder: Path) -> float:
    newest = os.lstat(folder).st_mtime
    for entry in os.scandir(folder):
        newest = max(newest, _mtime(entry))
    return newest
