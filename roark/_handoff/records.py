"""The typed records the loop posts through a call's channel, one small dataclass each.

Every time is on the call's clock (``CallClock``), in seconds since the epoch. The records
carry what LiveKit said, already copied; turning them into the contract's JSON is the thread
side's job (``roark._threads.wire``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal, Union

Role = Literal["user", "assistant", "system"]


@dataclass(frozen=True, slots=True)
class CallDetails:
    """What call-started tells about the call besides its id and start (empty: unknown)."""

    agent_id: str
    is_test: bool
    agent_name: str | None = None
    agent_prompt: str | None = None
    room_sid: str | None = None
    room_name: str | None = None
    participant_identity: str | None = None
    job_id: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(slots=True)
class Begin:
    at: float
    details: CallDetails
    #: the agent output's rate; None when the call is observed without audio
    sample_rate: int | None
    #: None while it is being resolved (a ``CallId`` follows)
    call_id: str | None


@dataclass(slots=True)
class CallId:
    call_id: str


@dataclass(slots=True)
class Message:
    role: Role
    text: str
    started_at: float
    stopped_at: float
    interrupted: bool
    language: str | None
    #: the id of the LiveKit agent active when it was said (``Agent.id``)
    agent_id: str | None = None


@dataclass(slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments: Any
    at: float
    agent_id: str | None = None


@dataclass(slots=True)
class ToolOutput:
    call_id: str
    output: Any
    is_error: bool
    at: float
    agent_id: str | None = None


@dataclass(slots=True)
class Tools:
    """Tool calls and what they returned: one ``function_tools_executed``, or the items of
    the session's history that no event announced (async tools' updates and final results)."""

    calls: list[ToolCall]
    outputs: list[ToolOutput]


@dataclass(slots=True)
class AgentConfig:
    """An agent's configuration as it started or changed (LiveKit's ``AgentConfigUpdate``)."""

    at: float
    #: the id of the LiveKit agent it configures (``Agent.id``)
    agent_id: str | None
    instructions: str | None
    tools_added: tuple[str, ...] = ()
    tools_removed: tuple[str, ...] = ()


@dataclass(slots=True)
class Metric:
    kind: str
    at: float
    fields: dict[str, Any]


@dataclass(slots=True)
class Usage:
    """The session's cumulative usage, per model (the last one posted counts)."""

    at: float
    models: list[dict[str, Any]]


@dataclass(slots=True)
class CallerAudio:
    """A run of the caller's frames: int16 PCM from ``at`` on, as the tap received it."""

    at: float
    data: bytes | bytearray
    rate: int
    channels: int


@dataclass(slots=True)
class AgentAudio:
    """A run of one agent segment's frames as the session captured them (``at``: captured),
    placed on the recording by the segment's playback records."""

    segment: int
    at: float
    data: bytes | bytearray
    rate: int
    channels: int


@dataclass(slots=True)
class PlaybackStarted:
    segment: int
    at: float
    #: said when the segment was captured, not when it began to play (an avatar that does not
    #: report its start): the segment is placed by where its playback finished
    provisional: bool = False


@dataclass(slots=True)
class PlaybackProgressed:
    """A stretch of the segment played: from ``offset`` s into it, ``duration`` s long,
    starting at ``at``."""

    segment: int
    at: float
    offset: float
    duration: float


@dataclass(slots=True)
class PlaybackFinished:
    segment: int
    at: float
    #: how much of the segment played, in seconds (less than captured when interrupted)
    played: float


@dataclass(slots=True)
class End:
    at: float
    reason: str


@dataclass(slots=True)
class Barrier:
    """Set once the processor has handled everything put before it (``Worker.sync``)."""

    passed: threading.Event


Record = Union[
    Begin,
    CallId,
    Message,
    Tools,
    AgentConfig,
    Metric,
    Usage,
    CallerAudio,
    AgentAudio,
    PlaybackStarted,
    PlaybackProgressed,
    PlaybackFinished,
    End,
    Barrier,
]
