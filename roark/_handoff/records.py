"""The typed records the loop side posts through a call's channel (one dataclass each)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Union


@dataclass(slots=True)
class Begin:
    at: float
    started: dict[str, Any]  # call-started fields except the call id and timestamp
    sample_rate: int | None
    call_id: str | None


@dataclass(slots=True)
class CallId:
    call_id: str


@dataclass(slots=True)
class Message:
    role: str
    text: str
    started_at: float
    stopped_at: float
    interrupted: bool
    language: str | None


@dataclass(slots=True)
class Tools:
    at: float
    calls: list[tuple[str, str, str, float]]  # call_id, name, arguments, created_at
    outputs: list[tuple[str, Any, bool, float]]  # call_id, output, is_error, created_at


@dataclass(slots=True)
class Metric:
    kind: str
    at: float
    fields: dict[str, Any]


@dataclass(slots=True)
class Usage:
    at: float
    models: list[dict[str, Any]]


@dataclass(slots=True)
class InputFrame:
    at: float
    data: bytes | bytearray
    rate: int
    channels: int


@dataclass(slots=True)
class OutputFrame:
    segment: int
    at: float
    data: bytes | bytearray
    rate: int
    channels: int


@dataclass(slots=True)
class Playback:
    segment: int
    what: str  # "started", "progressed", "finished"
    at: float
    position: float = 0.0
    offset: float = 0.0
    interrupted: bool = False


@dataclass(slots=True)
class End:
    at: float
    reason: str


@dataclass(slots=True)
class Barrier:
    """Set once the processor has handled everything put before it (for ``flush``)."""

    passed: threading.Event


Record = Union[
    Begin, CallId, Message, Tools, Metric, Usage, InputFrame, OutputFrame, Playback, End, Barrier
]
AUDIO_RECORDS = (InputFrame, OutputFrame, Playback)
