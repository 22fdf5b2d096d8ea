"""Safe file primitives for the spool: private, never through a symlink, only our own files.

The spool holds transcripts and audio (personal data), and its folder may sit where other
users can write (``/tmp``). So:

- folders are made 0700 and files 0600 whatever the umask (``fchmod`` after creating);
- a file roark creates is opened ``O_CREAT | O_EXCL | O_NOFOLLOW``: a link planted at its
  name makes the creation fail instead of truncating or overwriting the link's target;
- a file roark reads or appends to is opened ``O_NOFOLLOW`` (``O_NONBLOCK`` for a planted
  FIFO) and accepted only when it is a regular file owned by this process's user.

On platforms without ``O_NOFOLLOW`` or user ids (Windows) the checks that cannot be made are
skipped; the spool works the same.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process locks, the spool still works
    fcntl = None  # type: ignore[assignment]

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_UID = os.geteuid() if hasattr(os, "geteuid") else None


class NotOurs(OSError):
    """A spool entry roark must not trust: a link, not a regular file (or folder), or a
    file of another user."""


def is_owned(st: os.stat_result) -> bool:
    return _UID is None or st.st_uid == _UID


def check_file(st: os.stat_result, path: Path) -> None:
    """Raise ``NotOurs`` unless ``st`` is a regular file of this user."""
    if not stat.S_ISREG(st.st_mode):
        raise NotOurs(f"{path} is not a regular file")
    if not is_owned(st):
        raise NotOurs(f"{path} belongs to another user")


def is_own_dir(entry: os.DirEntry[str]) -> bool:
    """Whether a scanned entry is a real folder (not a link to one) of this user."""
    try:
        return entry.is_dir(follow_symlinks=False) and is_owned(entry.stat(follow_symlinks=False))
    except OSError:
        return False


def make_private_dir(path: Path) -> None:
    """Create folder ``path`` 0700; fails if anything (a link too) is at that name."""
    os.mkdir(path, PRIVATE_DIR)
    fd = os.open(path, os.O_RDONLY | _DIRECTORY | _NOFOLLOW)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, PRIVATE_DIR)
    finally:
        os.close(fd)


def ensure_private_dir(path: Path) -> None:
    """Folder ``path`` made 0700, or already there as a real folder of this user."""
    try:
        make_private_dir(path)
    except FileExistsError:
        st = os.lstat(path)
        if not (stat.S_ISDIR(st.st_mode) and is_owned(st)):
            raise NotOurs(f"{path} is not a folder of this user") from None


def ensure_root(path: Path) -> bool:
    """The spool folder: created 0700 when missing; else it must be a folder of this user.
    True when it had to be made private (others could write in it: now they cannot)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        make_private_dir(path)
        return False
    except FileExistsError:
        pass
    # the configured path may itself be a link (to a mounted volume), but only one this
    # user or root made: a link another user planted (in /tmp) would choose the folder
    link = os.lstat(path)
    if stat.S_ISLNK(link.st_mode) and not (is_owned(link) or link.st_uid == 0):
        raise NotOurs(f"{path} is a link that belongs to another user")
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"{path} is not a folder")
    if not is_owned(st):
        raise NotOurs(f"{path} belongs to another user")
    # others who may write in it (and it is not sticky, like /tmp) could rename the calls
    # waiting there away, or put a link in their place
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o022)
        return True
    return False


def create(path: Path, data: bytes = b"", *, append: bool = False) -> int | None:
    """Create file ``path`` 0600 holding ``data``; with ``append``, return it open (read and
    append)."""
    mode = os.O_RDWR | os.O_APPEND if append else os.O_WRONLY
    flags = os.O_CREAT | os.O_EXCL | _NOFOLLOW | mode
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, PRIVATE_FILE)
        write_all(fd, data)
    except BaseException:
        os.close(fd)
        raise
    if append:
        return fd
    os.close(fd)
    return None


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``, never torn: a new file, then a rename."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    create(tmp, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def open_own(path: Path, flags: int = os.O_RDONLY) -> int:
    """An fd of an existing regular file of this user at ``path`` (never through a link)."""
    fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK)
    try:
        check_file(os.fstat(fd), path)
        if _NONBLOCK and hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_own(path: Path) -> bytes:
    """The bytes of a regular file of this user (``NotOurs`` for anything else)."""
    fd = open_own(path)
    try:
        parts = []
        while chunk := os.read(fd, 1 << 20):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def size_own(path: Path) -> int:
    """The size of a regular file of this user, without following a link."""
    st = os.lstat(path)
    check_file(st, path)
    return st.st_size


def remove(path: Path) -> None:
    """Delete a file; one already gone is fine, any other failure raises."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def create_lock(path: Path) -> int:
    """Create the lock file ``path`` (0600) and hold an exclusive ``flock`` on it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, PRIVATE_FILE)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, PRIVATE_FILE)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def take_lock(path: Path) -> int | None:
    """An fd holding the ``flock`` on an existing lock file of this user; None when another
    process holds it. Never creates the file: a folder without its lock is not adopted."""
    fd = open_own(path, os.O_RDWR)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def common_prefix(a: bytes | memoryview, b: bytes | memoryview) -> int:
    """How many leading bytes ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    differ = np.frombuffer(a, np.uint8, n) != np.frombuffer(b, np.uint8, n)
    return int(np.argmax(differ))


class GrowingFile:
    """A file that grows by appending and is rewritten only where its content changed; once
    complete it is *sealed*: renamed to its final name, so its bytes are written only once.

    Used for a recording's tail: what a kill would otherwise lose, kept on disk as it grows.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._fd: int | None = None

    def update(self, keep: int, data: bytes | memoryview) -> int:
        """Make the file hold its first ``keep`` bytes, then ``data``; returns the bytes it
        had to write (the part of ``data`` it did not hold already)."""
        if self._fd is None:
            self._fd = create(self.path, append=True)
            self.size = 0
        assert self._fd is not None
        keep = min(keep, self.size)
        overlap = min(self.size - keep, len(data))
        if overlap:
            same = common_prefix(os.pread(self._fd, overlap, keep), memoryview(data)[:overlap])
            keep, data = keep + same, memoryview(data)[same:]
        if keep < self.size:
            os.ftruncate(self._fd, keep)
            self.size = keep
        write_all(self._fd, data)  # appended: the fd is O_APPEND
        self.size += len(data)
        return len(data)

    def seal(self, final: Path, data: bytes) -> int:
        """Make the file hold exactly ``data`` and rename it to ``final``."""
        written = self.update(0, data)
        if self.size > len(data):
            assert self._fd is not None
            os.ftruncate(self._fd, len(data))
            self.size = len(data)
        self.close()
        os.replace(self.path, final)
        return written

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
