"""The Roark wire contract as checks: paths, field tables, and what is wrong with a body.

Everything here is a pure function of its input; the endpoints (``ingest.py``) decide what to
answer and what to keep. Error messages are the ones a client sees in a 400's body.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime
from typing import Any

EVENT_PATH = "/v1/integrations/livekit-sdk"
UPLOAD_URL_PATH = "/v1/integrations/livekit-sdk/chunk-upload-url"
STORAGE_PREFIX = "/_storage/"

ENDPOINTS = frozenset({"event", "upload_url", "put"})
KEY_HEADERS = ("x-roark-api-key", "authorization")
MAX_BODY = 256 * 1024 * 1024
MAX_ERRORS = 20
CHUNKED_REFUSED = "chunked Transfer-Encoding is refused; send Content-Length"

_ISO_UTC = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|[+-]00:?00)$"
)

# field -> (kind, required); the kinds are checked by kind_problem()
Spec = dict[str, tuple[str, bool]]

_STARTED_SPEC: Spec = {
    "livekitCallId": ("str", True),
    "eventTimestamp": ("ts", True),
    "agentId": ("str", True),
    "agentName": ("str", False),
    "agentPrompt": ("str", False),
    "isTest": ("bool", True),
    "roomSid": ("str", False),
    "roomName": ("str", False),
    "participantIdentity": ("str", False),
    "jobId": ("str", False),
    "metadata": ("obj", False),
}
_ENDED_SPEC: Spec = {
    "livekitCallId": ("str", True),
    "eventTimestamp": ("ts", True),
    "callStartedAt": ("ts", True),
    "callEndedAt": ("ts", True),
    "callEndedReason": ("str", True),
    "agentSpokeFirst": ("bool", False),
    "transcript": ("list", True),
    "toolCalls": ("list", True),
    "metrics": ("list", True),
}
_TRANSCRIPT_SPEC: Spec = {
    "content": ("text", True),
    "timestamp": ("ts", True),
    "endTimestamp": ("ts", True),
    "audioOffsetMs": ("int", True),
    "endAudioOffsetMs": ("int", True),
    "interrupted": ("bool", False),
    "language": ("str", False),
    # an extra field roark adds (the service tolerates extra fields): the LiveKit agent
    "livekitAgentId": ("str", False),
}
_TOOL_CALL_SPEC: Spec = {
    "toolCallId": ("str", True),
    "name": ("str", True),
    "arguments": ("text", True),
    "timestamp": ("ts", True),
    "audioOffsetMs": ("int", True),
    "livekitAgentId": ("str", False),
}
_TOOL_RESULT_SPEC: Spec = {
    "toolCallId": ("str", True),
    "content": ("text", True),
    "isError": ("bool", True),
    "timestamp": ("ts", True),
    "audioOffsetMs": ("int", True),
    "livekitAgentId": ("str", False),
}
_METRIC_NUMBERS = (
    "endOfUtteranceDelay",
    "transcriptionDelay",
    "onConversationItemAddedDelay",
    "ttft",
    "duration",
    "ttfb",
    "audioDuration",
    "promptTokens",
    "completionTokens",
    "totalTokens",
    "cachedTokens",
    "tokensPerSecond",
)
_METRIC_SPEC: Spec = {
    "kind": ("str", True),
    "timestamp": ("ts", True),
    "audioOffsetMs": ("int", True),
    "streamed": ("bool", False),
    "extra": ("obj", False),
    **{name: ("num", False) for name in _METRIC_NUMBERS},
}
_UPLOAD_REQUEST_SPEC: Spec = {"livekitCallId": ("str", True), "chunkIndex": ("int", True)}
_ROLES = ("user", "assistant", "system")
MAX_CHUNK_INDEX = 2**31 - 1
MAX_SAMPLE_RATE = 384_000  # the highest rate audio hardware uses


# --------------------------------------------------------------------------- values


def parse_iso_utc(value: str) -> datetime | None:
    """Parse an ISO 8601 UTC timestamp (``Z`` or ``+00:00``), or return None."""
    m = _ISO_UTC.match(value)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac = m.groups()
    micros = int((frac or "0")[:6].ljust(6, "0"))
    try:
        # naive on purpose: every timestamp here is UTC, and only order comparisons matter
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros
        )
    except ValueError:
        return None


def describe(value: Any) -> str:
    """A short JSON rendering of ``value`` for an error message."""
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def kind_problem(kind: str, value: Any) -> str | None:
    """What is wrong with ``value`` for a field of ``kind`` (None when it fits)."""
    if kind == "str":
        ok, want = isinstance(value, str) and value != "", "a non-empty string"
    elif kind == "text":
        ok, want = isinstance(value, str), "a string"
    elif kind == "bool":
        ok, want = isinstance(value, bool), "a boolean"
    elif kind == "int":
        ok, want = _is_int(value), "an integer"
    elif kind == "num":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok, want = ok and math.isfinite(value), "a finite number"
    elif kind == "obj":
        ok, want = isinstance(value, dict), "an object"
    elif kind == "list":
        ok, want = isinstance(value, list), "a list"
    elif kind == "ts":
        ok = isinstance(value, str) and parse_iso_utc(value) is not None
        want = "an ISO 8601 UTC timestamp"
    else:  # pragma: no cover - programming error
        raise ValueError(kind)
    return None if ok else f"must be {want}, got {describe(value)}"


def _check_fields(obj: dict[str, Any], spec: Spec, where: str, errs: list[str]) -> None:
    for key, (kind, required) in spec.items():
        if key not in obj:
            if required:
                errs.append(f"{where}missing required field {key!r}")
            continue
        problem = kind_problem(kind, obj[key])
        if problem is not None:
            errs.append(f"{where}{key!r} {problem}")


def non_finite(value: Any, path: str, errs: list[str]) -> None:
    """Append an error for every NaN or infinity anywhere in ``value``."""
    if isinstance(value, float) and not math.isfinite(value):
        errs.append(f"{path or 'body'} is not a finite number ({value!r})")
    elif isinstance(value, dict):
        for k, v in value.items():
            non_finite(v, f"{path}.{k}" if path else str(k), errs)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            non_finite(v, f"{path}[{i}]", errs)


def _ts(obj: dict[str, Any], key: str) -> datetime | None:
    value = obj.get(key)
    return parse_iso_utc(value) if isinstance(value, str) else None


# --------------------------------------------------------------------------- bodies


def validate_started(body: dict[str, Any]) -> list[str]:
    """Every problem of a call-started body."""
    errs: list[str] = []
    _check_fields(body, _STARTED_SPEC, "", errs)
    return errs


def validate_ended(body: dict[str, Any], has_chunks: bool) -> list[str]:
    """Every problem of a call-ended body; ``has_chunks``: chunks of the call were PUT."""
    errs: list[str] = []
    _check_fields(body, _ENDED_SPEC, "", errs)
    started_at, ended_at = _ts(body, "callStartedAt"), _ts(body, "callEndedAt")
    if started_at and ended_at and ended_at < started_at:
        errs.append("'callEndedAt' is before 'callStartedAt'")
    _validate_recording_fields(body, has_chunks, errs)

    transcript = body.get("transcript")
    if isinstance(transcript, list):
        for i, entry in enumerate(transcript):
            _validate_transcript_entry(entry, f"transcript[{i}]: ", errs)
    tool_calls = body.get("toolCalls")
    if isinstance(tool_calls, list):
        _validate_tool_calls(tool_calls, errs)
    metrics = body.get("metrics")
    if isinstance(metrics, list):
        for i, record in enumerate(metrics):
            _validate_metric(record, f"metrics[{i}]: ", errs)
    return errs


def _validate_recording_fields(body: dict[str, Any], has_chunks: bool, errs: list[str]) -> None:
    keys = ("recordingSampleRate", "recordingNumChannels")
    if not has_chunks:
        errs.extend(
            f"{key!r} present although no audio chunk was uploaded" for key in keys if key in body
        )
        return
    for key in keys:
        if key not in body:
            errs.append(f"missing {key!r} although audio chunks were uploaded")
    rate = body.get("recordingSampleRate")
    if "recordingSampleRate" in body and not (_is_int(rate) and 0 < rate <= MAX_SAMPLE_RATE):
        errs.append(
            f"'recordingSampleRate' must be a positive integer up to {MAX_SAMPLE_RATE}, "
            f"got {describe(rate)}"
        )
    channels = body.get("recordingNumChannels")
    if "recordingNumChannels" in body and not (_is_int(channels) and channels == 2):
        errs.append(f"'recordingNumChannels' must be 2, got {describe(channels)}")


def _validate_transcript_entry(entry: Any, where: str, errs: list[str]) -> None:
    if not isinstance(entry, dict):
        errs.append(f"{where}must be an object, got {describe(entry)}")
        return
    if entry.get("role") not in _ROLES:
        errs.append(
            f"{where}'role' must be one of {list(_ROLES)}, got {describe(entry.get('role'))}"
        )
    _check_fields(entry, _TRANSCRIPT_SPEC, where, errs)
    start, end = entry.get("audioOffsetMs"), entry.get("endAudioOffsetMs")
    if _is_int(start) and _is_int(end) and end < start:
        errs.append(f"{where}'endAudioOffsetMs' ({end}) is before 'audioOffsetMs' ({start})")
    onset, offset = _ts(entry, "timestamp"), _ts(entry, "endTimestamp")
    if onset and offset and offset < onset:
        errs.append(f"{where}'endTimestamp' is before 'timestamp'")


def _validate_tool_calls(records: list[Any], errs: list[str]) -> None:
    # only string ids can pair (a list or an object as an id is reported as a wrong type)
    call_ids = {
        r["toolCallId"]
        for r in records
        if isinstance(r, dict)
        and r.get("kind") == "tool_call"
        and isinstance(r.get("toolCallId"), str)
    }
    for i, record in enumerate(records):
        where = f"toolCalls[{i}]: "
        if not isinstance(record, dict):
            errs.append(f"{where}must be an object, got {describe(record)}")
            continue
        kind = record.get("kind")
        if kind == "tool_call":
            _check_fields(record, _TOOL_CALL_SPEC, where, errs)
            arguments = record.get("arguments")
            if isinstance(arguments, str):
                try:
                    json.loads(arguments, parse_constant=_reject_constant)
                except ValueError:
                    errs.append(f"{where}'arguments' is not a JSON string: {describe(arguments)}")
        elif kind == "tool_result":
            _check_fields(record, _TOOL_RESULT_SPEC, where, errs)
            if isinstance(record.get("toolCallId"), str) and record["toolCallId"] not in call_ids:
                errs.append(f"{where}tool_result {record['toolCallId']!r} has no tool_call")
        else:
            errs.append(f"{where}'kind' must be 'tool_call' or 'tool_result', got {describe(kind)}")


def _validate_metric(record: Any, where: str, errs: list[str]) -> None:
    if not isinstance(record, dict):
        errs.append(f"{where}must be an object, got {describe(record)}")
        return
    _check_fields(record, _METRIC_SPEC, where, errs)
    extra = record.get("extra")
    if isinstance(extra, dict):
        for key, value in extra.items():
            if value is not None and not isinstance(value, (str, int, float, bool)):
                errs.append(f"{where}'extra.{key}' must be a scalar, got {describe(value)}")


def validate_upload_request(body: dict[str, Any]) -> list[str]:
    """Every problem of a chunk-upload-url request body."""
    errs: list[str] = []
    _check_fields(body, _UPLOAD_REQUEST_SPEC, "", errs)
    index = body.get("chunkIndex")
    if _is_int(index) and index < 0:
        errs.append(f"'chunkIndex' must be >= 0, got {index}")
    elif _is_int(index) and index > MAX_CHUNK_INDEX:
        # a 32-bit index: 2**31 chunks of 256 KiB would be a call of years
        errs.append(f"'chunkIndex' must be <= {MAX_CHUNK_INDEX}, got {index}")
    if body.get("contentType") != "audio/pcm":
        errs.append(f"'contentType' must be 'audio/pcm', got {describe(body.get('contentType'))}")
    return errs


def index_gaps(indices: list[int]) -> list[tuple[int, int]]:
    """The runs ``(first, last)`` missing from ``0..max(indices)``, in order; computed from
    the indices themselves, so an index far out costs nothing."""
    gaps, expected = [], 0
    for index in sorted(set(indices)):
        if index > expected:
            gaps.append((expected, index - 1))
        expected = index + 1
    return gaps


def format_runs(runs: list[tuple[int, int]]) -> str:
    """``[(1, 1), (3, 5)]`` -> ``'1, 3-5'``."""
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def shown_errors(errs: list[str]) -> str:
    """The first ``MAX_ERRORS`` errors joined, with a count of the rest."""
    shown = errs[:MAX_ERRORS]
    if len(errs) > MAX_ERRORS:
        shown.append(f"... {len(errs) - MAX_ERRORS} more")
    return "; ".join(shown)


# --------------------------------------------------------------------------- requests


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def parse_json(body: bytes) -> tuple[Any, str | None]:
    """``(value, None)``, or ``(None, why)`` when ``body`` is not UTF-8 strict JSON."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant), None
    except UnicodeDecodeError as exc:
        return None, f"body is not UTF-8: {exc}"
    except ValueError as exc:
        return None, f"body is not valid JSON: {exc}"


def parse_json_object(body: bytes) -> tuple[dict[str, Any], str | None]:
    """Like :func:`parse_json`, and the value must be an object."""
    payload, error = parse_json(body)
    if error is None and not isinstance(payload, dict):
        error = f"body must be a JSON object, got {describe(payload)}"
    return (payload if error is None else {}), error


def framing_problem(
    method: str, content_length: str | None, transfer_encoding: str | None
) -> tuple[int, str] | None:
    """Why a request's body framing is refused, as ``(status, reason)``, or None.

    Like a strict storage host or API gateway: Content-Length is required on a body,
    chunked uploads are refused, and bodies are capped at ``MAX_BODY``.
    """
    if (transfer_encoding or "identity").lower() != "identity":
        return 411, CHUNKED_REFUSED
    if content_length is None:
        return (411, "Content-Length is required") if method in ("POST", "PUT", "PATCH") else None
    raw = content_length.strip()
    if not (raw.isascii() and raw.isdigit()):
        return 400, f"bad Content-Length {content_length!r}"
    if int(raw) > MAX_BODY:
        return 413, f"body of {int(raw)} bytes is too large"
    return None


def media_type(headers: dict[str, str]) -> str:
    """The lower-cased media type of ``content-type`` (headers keyed in lower case)."""
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def classify(method: str, path: str) -> str:
    """Which endpoint a request is for: ``event``, ``upload_url``, ``put`` or ``unknown``."""
    if path == EVENT_PATH and method == "POST":
        return "event"
    if path == UPLOAD_URL_PATH and method == "POST":
        return "upload_url"
    if path.startswith(STORAGE_PREFIX) and method == "PUT":
        return "put"
    return "unknown"


def safe_name(call_id: str) -> str:
    """A file name for ``call_id``; distinct ids stay distinct."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", call_id)[:120].lstrip(".") or "call"
    if safe != call_id:
        safe += "-" + hashlib.sha1(call_id.encode("utf-8")).hexdigest()[:8]
    return safe
