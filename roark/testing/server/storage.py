"""Where the local Roark keeps what it accepted: one interface, and the in-memory store.

The endpoints (``ingest.py``) only talk to :class:`CallStore`; they neither know nor care
whether calls live in memory for one test (:class:`MemoryStore`) or in a folder that
survives a restart (``roark.dev.store.FolderStore``).

Threading: every method may be called from any server thread. A store guards its state
with ``changed`` (a condition over a re-entrant lock) and notifies it on every change; the
server uses the same condition for its own state, so a waiter wakes on any change at all.
Long work (stitching a recording) runs outside the lock.
"""

from __future__ import annotations

import abc
import copy
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile as sf

from .contract import safe_name
from .records import ReceivedCall

_T = TypeVar("_T")


@dataclass(frozen=True)
class CallProgress:
    """What the contract's checks need to know about a call so far."""

    started: bool = False
    chunk_indices: tuple[int, ...] = ()
    ended_mono: float | None = None
    """Monotonic receipt time of the first accepted call-ended; a chunk request received
    after it breaks "call-ended is sent after every chunk"."""


class CallStore(abc.ABC):
    """The calls a local Roark received, by ``livekitCallId``. Thread-safe."""

    def __init__(self) -> None:
        self.changed = threading.Condition(threading.RLock())

    @property
    @abc.abstractmethod
    def recordings_dir(self) -> Path:
        """Where stitched recordings are written."""

    # ------------------------------------------------------------ what the contract reads

    @abc.abstractmethod
    def progress(self, call_id: str) -> CallProgress:
        """The call's progress (an empty one for a call never seen)."""

    # ------------------------------------------------------------ what it keeps

    @abc.abstractmethod
    def add_started(self, call_id: str, payload: dict[str, Any], raw: bytes) -> None:
        """Keep an accepted call-started (the first one is the call's)."""

    @abc.abstractmethod
    def add_ended(self, call_id: str, payload: dict[str, Any], raw: bytes, mono: float) -> bool:
        """Keep a call-ended (the first one is the call's); True for the first."""

    @abc.abstractmethod
    def add_upload_request(self, call_id: str, index: int) -> float | None:
        """Note that an upload URL was handed out for chunk ``index``; returns ``ended_mono``."""

    @abc.abstractmethod
    def add_chunk(self, call_id: str, index: int, data: bytes) -> float | None:
        """Keep a chunk PUT (a later PUT of the same index replaces it); returns
        ``ended_mono`` as it was when the chunk was kept."""

    @abc.abstractmethod
    def add_violation(self, call_id: str, message: str) -> None:
        """Keep a contract violation of the call."""

    @abc.abstractmethod
    def finish(self, call_id: str, sample_rate: int | None) -> ReceivedCall:
        """Stitch the call's chunks (after a call-ended) and return the call.

        ``sample_rate`` is the call-ended's ``recordingSampleRate`` (None: keep the one
        known). The first finish of a call puts it in :meth:`ended_ids`.
        """

    # ------------------------------------------------------------ what readers get

    @abc.abstractmethod
    def received(self, call_id: str) -> ReceivedCall | None:
        """A snapshot of the call, or None if nothing was received for it."""

    @abc.abstractmethod
    def call_ids(self) -> list[str]:
        """Every call seen, in order of first sight."""

    @abc.abstractmethod
    def ended_ids(self) -> list[str]:
        """The calls finished at least once, in the order they were first finished."""

    @abc.abstractmethod
    def summaries(self) -> list[str]:
        """One line per call, for error messages."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget every call."""

    # ------------------------------------------------------------ waiting

    def finished_call(self, call_id: str | None = None) -> ReceivedCall | None:
        """The call once finished (the first finished call if None), else None."""
        with self.changed:
            ended = self.ended_ids()
            if call_id is None:
                return self.received(ended[0]) if ended else None
            return self.received(call_id) if call_id in ended else None

    def wait(self, ready: Callable[[], _T | None], timeout: float) -> _T | None:
        """Block until ``ready()`` returns something (re-checked on every change); None
        if it has not within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                result = ready()
                if result is not None:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.changed.wait(remaining)


def stitch(chunks: dict[int, bytes]) -> np.ndarray:
    """The chunks concatenated in index order, as read-only int16 ``(frames, 2)``."""
    data = b"".join(chunks[i] for i in sorted(chunks))
    recording = np.frombuffer(data, dtype="<i2").astype(np.int16).reshape(-1, 2)
    recording.flags.writeable = False
    return recording


_DEEP_COPIED = ("started", "ended", "events")


@dataclass(eq=False)
class _MemoryCall(ReceivedCall):
    chunks: dict[int, bytes] = field(default_factory=dict)
    ended_mono: float | None = None

    def snapshot(self) -> ReceivedCall:
        values: dict[str, Any] = {}
        for f in fields(ReceivedCall):
            value = getattr(self, f.name)
            if f.name in _DEEP_COPIED:
                value = copy.deepcopy(value)
            elif isinstance(value, (list, dict)):
                value = copy.copy(value)  # the recording array is read-only: shared
            values[f.name] = value
        return ReceivedCall(**values)


def call_summary(call: ReceivedCall) -> str:
    """``'RM_x' (started x1, ended x1, chunks PUT [0, 1])``."""
    return (
        f"{call.livekit_call_id!r} (started x{call.started_count}, "
        f"ended x{call.ended_count}, chunks PUT {sorted(call.chunks)})"
    )


class MemoryStore(CallStore):
    """Calls kept in memory for the life of the server (a test); WAVs in ``recordings_dir``.

    Example::

        server = LocalRoark(store=MemoryStore(recordings_dir=tmp_path))
    """

    def __init__(self, recordings_dir: str | Path | None = None) -> None:
        super().__init__()
        self._recordings_dir = Path(recordings_dir) if recordings_dir is not None else None
        self._calls: dict[str, _MemoryCall] = {}
        self._ended_order: list[str] = []

    @property
    def recordings_dir(self) -> Path:
        """Where stitched WAVs go (a fresh temporary directory unless given)."""
        with self.changed:
            if self._recordings_dir is None:
                self._recordings_dir = Path(tempfile.mkdtemp(prefix="local-roark-"))
            self._recordings_dir.mkdir(parents=True, exist_ok=True)
            return self._recordings_dir

    def _call(self, call_id: str) -> _MemoryCall:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _MemoryCall(call_id)
        return call

    def progress(self, call_id: str) -> CallProgress:
        with self.changed:
            call = self._calls.get(call_id)
            if call is None:
                return CallProgress()
            return CallProgress(
                call.started is not None, tuple(sorted(call.chunks)), call.ended_mono
            )

    def add_started(self, call_id: str, payload: dict[str, Any], raw: bytes) -> None:
        with self.changed:
            call = self._call(call_id)
            call.events.append(payload)
            call.started_count += 1
            if call.started is None:
                call.started = payload
            self.changed.notify_all()

    def add_ended(self, call_id: str, payload: dict[str, Any], raw: bytes, mono: float) -> bool:
        with self.changed:
            call = self._call(call_id)
            call.events.append(payload)
            call.ended_count += 1
            first = call.ended is None
            if first:
                call.ended, call.ended_mono = payload, mono
            self.changed.notify_all()
            return first

    def add_upload_request(self, call_id: str, index: int) -> float | None:
        with self.changed:
            call = self._call(call_id)
            call.upload_url_requests.append(index)
            self.changed.notify_all()
            return call.ended_mono

    def add_chunk(self, call_id: str, index: int, data: bytes) -> float | None:
        with self.changed:
            call = self._call(call_id)
            call.chunks[index] = data
            call.chunk_puts.append(index)
            self.changed.notify_all()
            return call.ended_mono

    def add_violation(self, call_id: str, message: str) -> None:
        with self.changed:
            self._call(call_id).violations.append(message)
            self.changed.notify_all()

    def finish(self, call_id: str, sample_rate: int | None) -> ReceivedCall:
        with self.changed:
            call = self._call(call_id)
            chunks = dict(call.chunks)
            rate = sample_rate if sample_rate is not None else call.sample_rate
        recording, path = None, None
        if chunks:
            recording = stitch(chunks)
            if rate:
                path = self.recordings_dir / f"{safe_name(call_id)}.wav"
                sf.write(str(path), recording, int(rate), subtype="PCM_16", format="WAV")
        with self.changed:
            if recording is not None:
                call.recording, call.recording_path, call.sample_rate = recording, path, rate
            if call_id not in self._ended_order:
                self._ended_order.append(call_id)
            self.changed.notify_all()
            return call.snapshot()

    def received(self, call_id: str) -> ReceivedCall | None:
        with self.changed:
            call = self._calls.get(call_id)
            return None if call is None else call.snapshot()

    def call_ids(self) -> list[str]:
        with self.changed:
            return list(self._calls)

    def ended_ids(self) -> list[str]:
        with self.changed:
            return list(self._ended_order)

    def summaries(self) -> list[str]:
        with self.changed:
            return [call_summary(c.snapshot()) for c in self._calls.values()]

    def reset(self) -> None:
        with self.changed:
            self._calls.clear()
            self._ended_order.clear()
            self.changed.notify_all()
