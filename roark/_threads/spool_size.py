"""How many bytes of roark's a spool folder holds, counted often and cheaply.

Several processes write to one spool folder (LiveKit runs each job in its own process), and
each keeps the spool under its cap from its own count: what the others wrote since it last
looked is not in it. So a process looks again before writing whenever its count is older
than a processor's pass. A full walk of a spool filled during an outage (thousands of
chunk files) would cost milliseconds each time, so a quick count walks again only the call
folders whose entries changed since (a folder's mtime moves when a file is made, renamed or
removed in it) and, in the others, only re-reads the sizes of the two files that grow in
place: the records and the recording's tail. A full walk still runs every few seconds, for
filesystems whose timestamps are too coarse to show every change.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from . import spool_files as files
from .spool import QUARANTINE, RECORDS, is_call_key, leftover_kind, tail_index
from .spool_notes import NOTES


@dataclass(frozen=True)
class _Folder:
    mtime_ns: int
    #: the bytes of the files written once (chunks, events, meta)
    fixed: int
    #: the files that grow in place
    growing: tuple[str, ...]


class SpoolSize:
    """The bytes of roark's entries in folder ``root`` (not of anything else there)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._folders: dict[str, _Folder] = {}
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def count(self, *, full: bool = True) -> int:
        """The bytes now; ``full=False`` trusts what it saw of the folders that did not
        change since."""
        with self._lock:
            if full:
                self._folders = {}
            total = 0
            seen = {}
            with contextlib.suppress(OSError):
                for entry in os.scandir(self.root):
                    name = entry.name
                    if not files.is_own_dir(entry):
                        continue
                    if is_call_key(name):
                        size, seen[name] = self._call_folder(entry)
                        total += size
                    elif name in (QUARANTINE, NOTES) or leftover_kind(name):
                        total += tree_size(Path(entry.path))
            self._folders = seen
            return total

    def _call_folder(self, entry: os.DirEntry[str]) -> tuple[int, _Folder]:
        folder = Path(entry.path)
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime_ns
        except OSError:
            return 0, _Folder(0, 0, ())
        known = self._folders.get(entry.name)
        if known is None or known.mtime_ns != mtime:
            known = _scan_call_folder(folder, mtime)
        growing = 0
        for name in known.growing:
            with contextlib.suppress(OSError):
                growing += os.lstat(folder / name).st_size
        return known.fixed + growing, known


def _scan_call_folder(folder: Path, mtime_ns: int) -> _Folder:
    fixed, growing = 0, []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.name == RECORDS or tail_index(entry.name) is not None:
                growing.append(entry.name)
            else:
                with contextlib.suppress(OSError):
                    if entry.is_file(follow_symlinks=False):
                        fixed += entry.stat(follow_symlinks=False).st_size
    return _Folder(mtime_ns, fixed, tuple(growing))


def tree_size(folder: Path) -> int:
    """The bytes of the regular files under ``folder`` (links are not followed)."""
    total = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    total += tree_size(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total
