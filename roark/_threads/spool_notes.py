"""What the spool remembers about itself for the processes that come after this one.

Two kinds of notes, one small file each in ``<spool_dir>/.notes`` (0700, files 0600):

- ``delivered.<call key>``: the call was delivered (or given up), but its folder could not be
  removed (a read-only spool, permission lost). Without the note the next process would take
  the folder for an orphan and send what is left in it a second time.
- ``refused.<digest>``: a destination (scheme, host, port, key hash) answered that it is not
  Roark's API (404, 405, a redirect). Calls spooled for it go, once the base URL is fixed,
  with the same key to the new host.

A note is removed once it no longer holds (the folder removed, the destination answering),
and after 7 days in any case.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

from . import spool_files as files
from .spool import Destination

NOTES = ".notes"
DELIVERED = "delivered."
REFUSED = "refused."


def refused_name(destination: Destination) -> str:
    text = json.dumps(destination.as_json(), sort_keys=True).encode()
    return REFUSED + hashlib.sha256(text).hexdigest()[:32]


class Notes:
    """The notes of one spool folder (none when the spool is in memory only)."""

    def __init__(self, root: Path | None) -> None:
        self.dir = root / NOTES if root is not None else None

    def add(self, name: str, data: bytes = b"") -> None:
        """Write note ``name`` (kept as it is when it exists); failures are ignored: a note
        only spares work or duplicates, it never holds a call."""
        if self.dir is None:
            return
        with contextlib.suppress(OSError):
            files.ensure_private_dir(self.dir)
            files.create(self.dir / name, data)

    def has(self, name: str) -> bool:
        if self.dir is None:
            return False
        try:
            files.size_own(self.dir / name)
        except OSError:
            return False
        return True

    def remove(self, name: str) -> None:
        if self.dir is not None:
            with contextlib.suppress(OSError):
                files.remove(self.dir / name)

    def names(self, prefix: str) -> list[str]:
        if self.dir is None:
            return []
        try:
            return [e.name for e in os.scandir(self.dir) if e.name.startswith(prefix)]
        except OSError:
            return []

    def expire(self, age: float) -> None:
        """Remove the notes older than ``age`` seconds."""
        for name in self.names(""):
            assert self.dir is not None
            with contextlib.suppress(OSError):
                if time.time() - os.lstat(self.dir / name).st_mtime > age:
                    files.remove(self.dir / name)
