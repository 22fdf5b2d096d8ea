"""The Roark wire contract as plain typed records; the only place that spells its JSON keys."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Literal, TypedDict

from typing_extensions import NotRequired

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


class ToolCallRecord(TypedDict):
    kind: Literal["tool_call"]
    toolCallId: str
    name: str
    arguments: str
    timestamp: str
    audioOffsetMs: int


class ToolResultRecord(TypedDict):
    kind: Literal["tool_result"]
    toolCallId: str
    content: str
    isError: bool
    timestamp: str
    audioOffsetMs: int


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
    toolCalls: list[ToolCallRecord | ToolResultRecord]
    metrics: list[MetricRecord]
    agentSpokeFirst: NotRequired[bool]
    recordingSampleRate: NotRequired[int]
    recordingNumChannels: NotRequired[int]


class UploadUrlRequest(TypedDict):
    livekitCallId: str
    chunkIndex: int
    contentType: str


class UploadTarget(TypedDict):
    uploadUrl: str
    chunkIndex: int


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


def parse_upload_target(body: Any) -> UploadTarget:
    """The upload URL answer, with or without its ``{"data": ...}`` envelope."""
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = body["data"]
    if not isinstance(body, dict) or not isinstance(body.get("uploadUrl"), str):
        raise ValueError("upload URL answer carries no uploadUrl")
    return {"uploadUrl": body["uploadUrl"], "chunkIndex": int(body.get("chunkIndex", -1))}


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
