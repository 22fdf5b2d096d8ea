"""The Roark wire contract: its records as TypedDicts, and the functions that build them.

The only place on either side that spells the contract's JSON keys: everything else builds
these records through the functions below and hands them on whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Literal, TypedDict, Union

from typing_extensions import NotRequired

from .._handoff.records import CallDetails

EVENTS_PATH = "/v1/integrations/livekit-sdk"
UPLOAD_URL_PATH = "/v1/integrations/livekit-sdk/chunk-upload-url"
PCM_CONTENT_TYPE = "audio/pcm"
NUM_CHANNELS = 2


class CallStarted(TypedDict):
    event: Literal["call-started"]
    livekitCallId: str
    eventTimestamp: str
    agentId: str
    isTest: bool
    agentName: NotRequired[str]
    agentPrompt: NotRequired[str]
    roomSid: NotRequired[str]
    roomName: NotRequired[str]
    participantIdentity: NotRequired[str]
    jobId: NotRequired[str]
    metadata: NotRequired[dict[str, Any]]


class TranscriptEntry(TypedDict):
    role: Literal["user", "assistant", "system"]
    content: str
    timestamp: str
    endTimestamp: str
    audioOffsetMs: int
    endAudioOffsetMs: int
    interrupted: NotRequired[bool]
    language: NotRequired[str]
    # an extra field (the contract tolerates them): the LiveKit agent that spoke (Agent.id)
    livekitAgentId: NotRequired[str]


class ToolCallRecord(TypedDict):
    kind: Literal["tool_call"]
    toolCallId: str
    name: str
    arguments: str
    timestamp: str
    audioOffsetMs: int
    livekitAgentId: NotRequired[str]


class ToolResultRecord(TypedDict):
    kind: Literal["tool_result"]
    toolCallId: str
    content: str
    isError: bool
    timestamp: str
    audioOffsetMs: int
    livekitAgentId: NotRequired[str]


ToolRecord = Union[ToolCallRecord, ToolResultRecord]


class MetricRecord(TypedDict, total=False):
    kind: str
    timestamp: str
    audioOffsetMs: int
    endOfUtteranceDelay: float
    transcriptionDelay: float
    onConversationItemAddedDelay: float
    ttft: float
    duration: float
    ttfb: float
    audioDuration: float
    promptTokens: int
    completionTokens: int
    totalTokens: int
    cachedTokens: int
    tokensPerSecond: float
    streamed: bool
    extra: dict[str, Any]


class CallEnded(TypedDict):
    event: Literal["call-ended"]
    livekitCallId: str
    eventTimestamp: str
    callStartedAt: str
    callEndedAt: str
    callEndedReason: str
    transcript: list[TranscriptEntry]
    toolCalls: list[ToolRecord]
    metrics: list[MetricRecord]
    agentSpokeFirst: NotRequired[bool]
    recordingSampleRate: NotRequired[int]
    recordingNumChannels: NotRequired[int]


class UploadUrlRequest(TypedDict):
    livekitCallId: str
    chunkIndex: int
    contentType: str


def iso(ts: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-11-25T12:00:00.123Z``."""
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def finite(value: Any) -> float | int | None:
    """``value`` as a JSON-safe number, or None for NaN, infinities and non-numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


# Metric fields named by the contract; everything else scalar goes into ``extra``.
METRIC_FIELDS: dict[str, str] = {
    "end_of_utterance_delay": "endOfUtteranceDelay",
    "end_of_turn_delay": "endOfUtteranceDelay",
    "transcription_delay": "transcriptionDelay",
    "on_conversation_item_added_delay": "onConversationItemAddedDelay",
    "ttft": "ttft",
    "duration": "duration",
    "ttfb": "ttfb",
    "audio_duration": "audioDuration",
    "prompt_tokens": "promptTokens",
    "input_tokens": "promptTokens",
    "completion_tokens": "completionTokens",
    "output_tokens": "completionTokens",
    "total_tokens": "totalTokens",
    "prompt_cached_tokens": "cachedTokens",
    "input_cached_tokens": "cachedTokens",
    "tokens_per_second": "tokensPerSecond",
    "streamed": "streamed",
}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# -- building records ---------------------------------------------------------------------


def call_started(call_id: str, at: float, details: CallDetails) -> CallStarted:
    record: CallStarted = {
        "event": "call-started",
        "livekitCallId": call_id,
        "eventTimestamp": iso(at),
        "agentId": details.agent_id,
        "isTest": details.is_test,
    }
    optional = {
        "agentName": details.agent_name,
        "agentPrompt": details.agent_prompt,
        "roomSid": details.room_sid,
        "roomName": details.room_name,
        "participantIdentity": details.participant_identity,
        "jobId": details.job_id,
    }
    record.update({k: v for k, v in optional.items() if v})  # type: ignore[typeddict-item]
    if details.metadata:
        record["metadata"] = dict(details.metadata)
    return record


def transcript_entry(
    role: Literal["user", "assistant", "system"],
    content: str,
    *,
    span: tuple[float, float],
    offsets_ms: tuple[int, int],
    interrupted: bool,
    language: str | None,
    agent_id: str | None = None,
) -> TranscriptEntry:
    """One transcript entry spoken over ``span`` (wall times), at ``offsets_ms`` in the audio."""
    entry: TranscriptEntry = {
        "role": role,
        "content": content,
        "timestamp": iso(span[0]),
        "endTimestamp": iso(span[1]),
        "audioOffsetMs": offsets_ms[0],
        "endAudioOffsetMs": offsets_ms[1],
    }
    if role == "assistant":
        entry["interrupted"] = interrupted
    if language:
        entry["language"] = language
    if agent_id:
        entry["livekitAgentId"] = agent_id
    return entry


def tool_call(
    call_id: str, name: str, arguments: str, at: float, offset_ms: int, agent_id: str | None
) -> ToolCallRecord:
    record: ToolCallRecord = {
        "kind": "tool_call",
        "toolCallId": call_id,
        "name": name,
        "arguments": arguments,
        "timestamp": iso(at),
        "audioOffsetMs": offset_ms,
    }
    if agent_id:
        record["livekitAgentId"] = agent_id
    return record


def tool_result(
    call_id: str, content: str, is_error: bool, at: float, offset_ms: int, agent_id: str | None
) -> ToolResultRecord:
    record: ToolResultRecord = {
        "kind": "tool_result",
        "toolCallId": call_id,
        "content": content,
        "isError": is_error,
        "timestamp": iso(at),
        "audioOffsetMs": offset_ms,
    }
    if agent_id:
        record["livekitAgentId"] = agent_id
    return record


def metric(kind: str, at: float, offset_ms: int, fields: Mapping[str, Any]) -> MetricRecord:
    """A metric record: the contract's named fields, other finite scalars under ``extra``."""
    record: MetricRecord = {"kind": kind, "timestamp": iso(at), "audioOffsetMs": offset_ms}
    extra: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, bool):
            if name == "streamed":
                record["streamed"] = value
            else:
                extra[camel(name)] = value
            continue
        if isinstance(value, (int, float)):
            number = finite(value)
            if number is None:
                continue  # NaN and infinities are not JSON; drop the field
            target = METRIC_FIELDS.get(name)
            if target and target not in record:
                record[target] = number  # type: ignore[literal-required]
            else:
                extra[camel(name)] = number
        elif isinstance(value, str) and value:
            extra[camel(name)] = value
    if extra:
        record["extra"] = extra
    return record


def call_ended(
    *,
    call_id: str,
    started_at: float,
    ended_at: float,
    reason: str,
    transcript: Iterable[TranscriptEntry],
    tools: Iterable[ToolRecord],
    metrics: list[MetricRecord],
    sample_rate: int | None,
    chunks: int,
) -> CallEnded:
    """The call-ended event; its recording is advertised only when chunks were made."""
    ordered = sorted(transcript, key=lambda e: (e["audioOffsetMs"], e["endAudioOffsetMs"]))
    record: CallEnded = {
        "event": "call-ended",
        "livekitCallId": call_id,
        "eventTimestamp": iso(ended_at),
        "callStartedAt": iso(started_at),
        "callEndedAt": iso(ended_at),
        "callEndedReason": reason,
        "transcript": ordered,
        "toolCalls": sorted(tools, key=lambda r: r["timestamp"]),
        "metrics": metrics,
    }
    spoken = [e for e in ordered if e["role"] in ("user", "assistant")]
    if spoken:
        record["agentSpokeFirst"] = spoken[0]["role"] == "assistant"
    if chunks and sample_rate:
        record["recordingSampleRate"] = sample_rate
        record["recordingNumChannels"] = NUM_CHANNELS
    return record


def without_recording(ended: CallEnded) -> CallEnded:
    """``ended`` advertising no recording (none of its chunks reached Roark)."""
    ended.pop("recordingSampleRate", None)
    ended.pop("recordingNumChannels", None)
    return ended


def transcript_length(ended: CallEnded) -> int:
    return len(ended["transcript"])


def event_name(event: Mapping[str, Any]) -> str:
    return str(event.get("event", "event"))


def upload_url_request(call_id: str, index: int) -> UploadUrlRequest:
    return {"livekitCallId": call_id, "chunkIndex": index, "contentType": PCM_CONTENT_TYPE}


def upload_url(answer: Any) -> str:
    """The presigned URL of an upload URL answer, with or without its ``{"data": ...}``."""
    if isinstance(answer, dict) and isinstance(answer.get("data"), dict):
        answer = answer["data"]
    if not isinstance(answer, dict) or not isinstance(answer.get("uploadUrl"), str):
        raise ValueError("upload URL answer carries no uploadUrl")
    return answer["uploadUrl"]


# -- checking records read back (from the spool) -------------------------------------------

_JSON = Union[type, "tuple[type, ...]"]
_NUMBER = (int, float)
# (required, optional) fields of each record and the JSON type of each
_SHAPES: dict[str, tuple[dict[str, _JSON], dict[str, _JSON]]] = {
    "call-started": (
        {"event": str, "livekitCallId": str, "eventTimestamp": str, "agentId": str},
        {
            "isTest": bool,
            "agentName": str,
            "agentPrompt": str,
            "roomSid": str,
            "roomName": str,
            "participantIdentity": str,
            "jobId": str,
            "metadata": dict,
        },
    ),
    "call-ended": (
        {
            "event": str,
            "livekitCallId": str,
            "eventTimestamp": str,
            "callStartedAt": str,
            "callEndedAt": str,
            "callEndedReason": str,
            "transcript": list,
            "toolCalls": list,
            "metrics": list,
        },
        {"agentSpokeFirst": bool, "recordingSampleRate": int, "recordingNumChannels": int},
    ),
    "transcript": (
        {
            "role": str,
            "content": str,
            "timestamp": str,
            "endTimestamp": str,
            "audioOffsetMs": int,
            "endAudioOffsetMs": int,
        },
        {"interrupted": bool, "language": str},
    ),
    "tool_call": (
        {
            "kind": str,
            "toolCallId": str,
            "name": str,
            "arguments": str,
            "timestamp": str,
            "audioOffsetMs": int,
        },
        {},
    ),
    "tool_result": (
        {
            "kind": str,
            "toolCallId": str,
            "content": str,
            "isError": bool,
            "timestamp": str,
            "audioOffsetMs": int,
        },
        {},
    ),
    "metric": ({"kind": str, "timestamp": str, "audioOffsetMs": int}, {"extra": dict}),
}


def _has_shape(value: Any, shape: str) -> bool:
    if not isinstance(value, dict):
        return False
    required, optional = _SHAPES[shape]
    for fields, needed in ((required, True), (optional, False)):
        for name, kind in fields.items():
            if name not in value:
                if needed:
                    return False
                continue
            got = value[name]
            # JSON has no int/bool distinction in Python's sense: a bool is never a number
            if isinstance(got, bool) and kind is not bool:
                return False
            if not isinstance(got, kind):
                return False
    return True


def is_transcript_entry(value: Any) -> bool:
    return _has_shape(value, "transcript") and value["role"] in ("user", "assistant", "system")


def is_tool_record(value: Any) -> bool:
    kind = value.get("kind") if isinstance(value, dict) else None
    return kind in ("tool_call", "tool_result") and _has_shape(value, kind)


def is_metric(value: Any) -> bool:
    if not _has_shape(value, "metric"):
        return False
    return all(
        isinstance(v, (str, bool)) or (isinstance(v, _NUMBER) and finite(v) is not None)
        for k, v in value.items()
        if k != "extra"
    )


def is_call_started(value: Any) -> bool:
    return _has_shape(value, "call-started") and value["event"] == "call-started"


def is_call_ended(value: Any) -> bool:
    if not (_has_shape(value, "call-ended") and value["event"] == "call-ended"):
        return False
    return (
        all(map(is_transcript_entry, value["transcript"]))
        and all(map(is_tool_record, value["toolCalls"]))
        and all(map(is_metric, value["metrics"]))
    )
