"""A local, contract-faithful Roark server for tests, demos and benchmarks.

:class:`LocalRoark` speaks the Roark wire contract for LiveKit Agents calls on 127.0.0.1:
the lifecycle webhook, the presigned chunk-upload-url endpoint and a one-shot "storage
host" that takes the PCM chunks. It validates every request against the contract, keeps
what it received (per call), stitches each call's chunks into a stereo WAV when the call
ends, and records every contract violation it sees. Faults (errors, dropped connections,
latency, hangs) can be injected at any time to exercise a client's retry logic.

Example::

    with LocalRoark() as roark_server:
        # point the client at roark_server.base_url with key roark_server.api_key ...
        call = roark_server.wait_for_call("RM_abc", timeout=10)
        assert call.reason == "participant-disconnected"
        assert call.recording.shape[1] == 2
        assert roark_server.violations == []

Run it by hand with ``python -m roark.testing.server --port 8787 --api-key KEY``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import math
import os
import random
import re
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "EVENT_PATH",
    "STORAGE_PREFIX",
    "UPLOAD_URL_PATH",
    "LocalRoark",
    "ReceivedCall",
    "RequestRecord",
    "main",
]

logger = logging.getLogger("roark.testing.server")

EVENT_PATH = "/v1/integrations/livekit-sdk"
UPLOAD_URL_PATH = "/v1/integrations/livekit-sdk/chunk-upload-url"
STORAGE_PREFIX = "/_storage/"

_ENDPOINTS = frozenset({"event", "upload_url", "put"})
_KEY_HEADERS = ("x-roark-api-key", "authorization")
_REDACTED = "<redacted>"
_MAX_BODY = 256 * 1024 * 1024
_UPLOAD_URL_TTL_S = 900
_T = TypeVar("_T")


# --------------------------------------------------------------------------- records


@dataclass
class RequestRecord:
    """One HTTP request as the server saw it.

    ``endpoint`` is ``"event"``, ``"upload_url"``, ``"put"`` or ``"unknown"``. ``status`` is
    the status answered, or ``None`` while unanswered or when the connection was dropped or
    hung. Header names are lower-cased; API key values are replaced by ``"<redacted>"``.
    ``fault`` names the injected fault that hit the request (``"latency"``, ``"error"``,
    ``"drop"``, ``"hang"``) or is ``None``.
    """

    method: str
    path: str
    endpoint: str
    status: int | None
    headers: dict[str, str]
    received_at: float
    fault: str | None = None
    body_size: int = 0


@dataclass(eq=False)  # holds a numpy array: compare fields, not snapshots
class ReceivedCall:
    """Everything the local Roark received for one ``livekitCallId`` (a snapshot).

    ``recording`` is the stitched stereo recording as int16 with shape ``(frames, 2)``:
    column 0 is the left channel (user), column 1 the right channel (agent). It is set, and
    written to ``recording_path``, when a call-ended arrives and chunks exist.

    Example::

        call = server.wait_for_call("RM_abc")
        assert [t["role"] for t in call.transcript] == ["assistant", "user"]
        assert call.duration_s == pytest.approx(3.2, abs=0.1)
    """

    livekit_call_id: str
    started: dict[str, Any] | None = None
    started_count: int = 0
    ended: dict[str, Any] | None = None
    ended_count: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    chunks: dict[int, bytes] = field(default_factory=dict)
    chunk_puts: list[int] = field(default_factory=list)
    recording_path: Path | None = None
    recording: np.ndarray | None = None
    sample_rate: int | None = None
    upload_url_requests: list[int] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def transcript(self) -> list[dict[str, Any]]:
        """The call-ended transcript entries (``[]`` before call-ended)."""
        return list((self.ended or {}).get("transcript") or [])

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The call-ended tool call and tool result records."""
        return list((self.ended or {}).get("toolCalls") or [])

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The call-ended metric records."""
        return list((self.ended or {}).get("metrics") or [])

    @property
    def metadata(self) -> dict[str, Any]:
        """The call-started ``metadata`` object (``{}`` when absent)."""
        return dict((self.started or {}).get("metadata") or {})

    @property
    def reason(self) -> str | None:
        """``callEndedReason`` of the first call-ended."""
        return None if self.ended is None else self.ended.get("callEndedReason")

    @property
    def agent_id(self) -> str | None:
        """``agentId`` of the first call-started."""
        return None if self.started is None else self.started.get("agentId")

    @property
    def duration_s(self) -> float | None:
        """Length of the stitched recording in seconds."""
        if self.recording is None or not self.sample_rate:
            return None
        return self.recording.shape[0] / self.sample_rate

    @property
    def user_audio(self) -> np.ndarray | None:
        """The left (user) channel of the recording."""
        return None if self.recording is None else self.recording[:, 0]

    @property
    def agent_audio(self) -> np.ndarray | None:
        """The right (agent) channel of the recording."""
        return None if self.recording is None else self.recording[:, 1]


@dataclass
class _Call:
    livekit_call_id: str
    started: dict[str, Any] | None = None
    started_count: int = 0
    ended: dict[str, Any] | None = None
    ended_count: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    chunks: dict[int, bytes] = field(default_factory=dict)
    chunk_puts: list[int] = field(default_factory=list)
    recording_path: Path | None = None
    recording: np.ndarray | None = None
    sample_rate: int | None = None
    upload_url_requests: list[int] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    # monotonic receipt time of the first accepted call-ended; a chunk request received
    # after it breaks "call-ended is sent after every chunk".
    ended_mono: float | None = None
    stitched: bool = False

    def snapshot(self) -> ReceivedCall:
        return ReceivedCall(
            livekit_call_id=self.livekit_call_id,
            started=copy.deepcopy(self.started),
            started_count=self.started_count,
            ended=copy.deepcopy(self.ended),
            ended_count=self.ended_count,
            events=copy.deepcopy(self.events),
            chunks=dict(self.chunks),
            chunk_puts=list(self.chunk_puts),
            recording_path=self.recording_path,
            recording=self.recording,
            sample_rate=self.sample_rate,
            upload_url_requests=list(self.upload_url_requests),
            violations=list(self.violations),
        )

    def summary(self) -> str:
        return (
            f"{self.livekit_call_id!r} (started x{self.started_count}, "
            f"ended x{self.ended_count}, chunks PUT {sorted(self.chunks)})"
        )


@dataclass(frozen=True)
class _Faults:
    error_rate: float = 0.0
    error_status: int = 503
    drop_rate: float = 0.0
    latency: float = 0.0
    hang: bool = False
    endpoints: frozenset[str] = frozenset()
    retry_after: float | None = None


@dataclass(frozen=True)
class _Plan:
    latency: float = 0.0
    hang: threading.Event | None = None
    action: str | None = None  # "drop" or "error"
    status: int = 503
    retry_after: float | None = None


_NO_PLAN = _Plan()


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> _Reply:
    body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    return _Reply(status, body, "application/json", dict(headers or {}))


def _error_reply(status: int, message: str) -> _Reply:
    return _json_reply(status, {"error": {"status": status, "message": message}})


def _s3_error(status: int, code: str, message: str) -> _Reply:
    # The storage host answers like S3 does: an XML error document.
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    return _Reply(status, body, "application/xml")


# --------------------------------------------------------------------------- validation

_ISO_UTC = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|[+-]00:?00)$"
)

_STARTED_SPEC: dict[str, tuple[str, bool]] = {
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
_ENDED_SPEC: dict[str, tuple[str, bool]] = {
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
_TRANSCRIPT_SPEC: dict[str, tuple[str, bool]] = {
    "content": ("text", True),
    "timestamp": ("ts", True),
    "endTimestamp": ("ts", True),
    "audioOffsetMs": ("int", True),
    "endAudioOffsetMs": ("int", True),
    "interrupted": ("bool", False),
    "language": ("str", False),
}
_TOOL_CALL_SPEC: dict[str, tuple[str, bool]] = {
    "toolCallId": ("str", True),
    "name": ("str", True),
    "arguments": ("text", True),
    "timestamp": ("ts", True),
    "audioOffsetMs": ("int", True),
}
_TOOL_RESULT_SPEC: dict[str, tuple[str, bool]] = {
    "toolCallId": ("str", True),
    "content": ("text", True),
    "isError": ("bool", True),
    "timestamp": ("ts", True),
    "audioOffsetMs": ("int", True),
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
_METRIC_SPEC: dict[str, tuple[str, bool]] = {
    "kind": ("str", True),
    "timestamp": ("ts", True),
    "audioOffsetMs": ("int", True),
    "streamed": ("bool", False),
    "extra": ("obj", False),
    **{name: ("num", False) for name in _METRIC_NUMBERS},
}
_ROLES = ("user", "assistant", "system")
_MAX_ERRORS = 20


def _parse_iso_utc(value: str) -> datetime | None:
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


def _describe(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind_problem(kind: str, value: Any) -> str | None:
    """What is wrong with ``value`` for a field of ``kind`` (None when it fits)."""
    if kind == "str":
        ok = isinstance(value, str) and value != ""
        want = "a non-empty string"
    elif kind == "text":
        ok, want = isinstance(value, str), "a string"
    elif kind == "bool":
        ok, want = isinstance(value, bool), "a boolean"
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        want = "an integer"
    elif kind == "num":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
        want = "a finite number"
    elif kind == "obj":
        ok, want = isinstance(value, dict), "an object"
    elif kind == "list":
        ok, want = isinstance(value, list), "a list"
    elif kind == "ts":
        ok = isinstance(value, str) and _parse_iso_utc(value) is not None
        want = "an ISO 8601 UTC timestamp"
    else:  # pragma: no cover - programming error
        raise ValueError(kind)
    return None if ok else f"must be {want}, got {_describe(value)}"


def _check_fields(
    obj: dict[str, Any], spec: dict[str, tuple[str, bool]], where: str, errs: list[str]
) -> None:
    for key, (kind, required) in spec.items():
        if key not in obj:
            if required:
                errs.append(f"{where}missing required field {key!r}")
            continue
        problem = _kind_problem(kind, obj[key])
        if problem is not None:
            errs.append(f"{where}{key!r} {problem}")


def _non_finite(value: Any, path: str, errs: list[str]) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        errs.append(f"{path or 'body'} is not a finite number ({value!r})")
    elif isinstance(value, dict):
        for k, v in value.items():
            _non_finite(v, f"{path}.{k}" if path else str(k), errs)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _non_finite(v, f"{path}[{i}]", errs)


def _ts(obj: dict[str, Any], key: str) -> datetime | None:
    value = obj.get(key)
    return _parse_iso_utc(value) if isinstance(value, str) else None


def _validate_started(body: dict[str, Any]) -> list[str]:
    errs: list[str] = []
    _check_fields(body, _STARTED_SPEC, "", errs)
    return errs


def _validate_ended(body: dict[str, Any], has_chunks: bool) -> list[str]:
    errs: list[str] = []
    _check_fields(body, _ENDED_SPEC, "", errs)
    started_at, ended_at = _ts(body, "callStartedAt"), _ts(body, "callEndedAt")
    if started_at and ended_at and ended_at < started_at:
        errs.append("'callEndedAt' is before 'callStartedAt'")

    if has_chunks:
        for key in ("recordingSampleRate", "recordingNumChannels"):
            if key not in body:
                errs.append(f"missing {key!r} although audio chunks were uploaded")
        rate = body.get("recordingSampleRate")
        if "recordingSampleRate" in body and not (_kind_problem("int", rate) is None and rate > 0):
            errs.append(f"'recordingSampleRate' must be a positive integer, got {_describe(rate)}")
        channels = body.get("recordingNumChannels")
        if "recordingNumChannels" in body and (
            not isinstance(channels, int) or isinstance(channels, bool) or channels != 2
        ):
            errs.append(f"'recordingNumChannels' must be 2, got {_describe(channels)}")
    else:
        for key in ("recordingSampleRate", "recordingNumChannels"):
            if key in body:
                errs.append(f"{key!r} present although no audio chunk was uploaded")

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


def _validate_transcript_entry(entry: Any, where: str, errs: list[str]) -> None:
    if not isinstance(entry, dict):
        errs.append(f"{where}must be an object, got {_describe(entry)}")
        return
    if entry.get("role") not in _ROLES:
        errs.append(
            f"{where}'role' must be one of {list(_ROLES)}, got {_describe(entry.get('role'))}"
        )
    _check_fields(entry, _TRANSCRIPT_SPEC, where, errs)
    start, end = entry.get("audioOffsetMs"), entry.get("endAudioOffsetMs")
    if _kind_problem("int", start) is None and _kind_problem("int", end) is None and end < start:
        errs.append(f"{where}'endAudioOffsetMs' ({end}) is before 'audioOffsetMs' ({start})")
    onset, offset = _ts(entry, "timestamp"), _ts(entry, "endTimestamp")
    if onset and offset and offset < onset:
        errs.append(f"{where}'endTimestamp' is before 'timestamp'")


def _validate_tool_calls(records: list[Any], errs: list[str]) -> None:
    call_ids = {
        r.get("toolCallId") for r in records if isinstance(r, dict) and r.get("kind") == "tool_call"
    }
    for i, record in enumerate(records):
        where = f"toolCalls[{i}]: "
        if not isinstance(record, dict):
            errs.append(f"{where}must be an object, got {_describe(record)}")
            continue
        kind = record.get("kind")
        if kind == "tool_call":
            _check_fields(record, _TOOL_CALL_SPEC, where, errs)
            arguments = record.get("arguments")
            if isinstance(arguments, str):
                try:
                    json.loads(arguments, parse_constant=_reject_constant)
                except ValueError:
                    errs.append(f"{where}'arguments' is not a JSON string: {_describe(arguments)}")
        elif kind == "tool_result":
            _check_fields(record, _TOOL_RESULT_SPEC, where, errs)
            if isinstance(record.get("toolCallId"), str) and record["toolCallId"] not in call_ids:
                errs.append(f"{where}tool_result {record['toolCallId']!r} has no tool_call")
        else:
            errs.append(
                f"{where}'kind' must be 'tool_call' or 'tool_result', got {_describe(kind)}"
            )


def _validate_metric(record: Any, where: str, errs: list[str]) -> None:
    if not isinstance(record, dict):
        errs.append(f"{where}must be an object, got {_describe(record)}")
        return
    _check_fields(record, _METRIC_SPEC, where, errs)
    extra = record.get("extra")
    if isinstance(extra, dict):
        for key, value in extra.items():
            if value is not None and not isinstance(value, (str, int, float, bool)):
                errs.append(f"{where}'extra.{key}' must be a scalar, got {_describe(value)}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def _parse_json(body: bytes) -> tuple[Any, str | None]:
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant), None
    except UnicodeDecodeError as exc:
        return None, f"body is not UTF-8: {exc}"
    except ValueError as exc:
        return None, f"body is not valid JSON: {exc}"


def _media_type(headers: dict[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _safe_name(call_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", call_id)[:120].lstrip(".") or "call"
    if safe != call_id:
        # keep distinct ids distinct after sanitising
        safe += "-" + hashlib.sha1(call_id.encode("utf-8")).hexdigest()[:8]
    return safe


def _classify(method: str, path: str) -> str:
    if path == EVENT_PATH and method == "POST":
        return "event"
    if path == UPLOAD_URL_PATH and method == "POST":
        return "upload_url"
    if path.startswith(STORAGE_PREFIX) and method == "PUT":
        return "put"
    return "unknown"


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: LocalRoark) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver calls this from inside its except block
        logger.debug("error while serving %s: %r", client_address, sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalRoark/1.0"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle plus the client's
        # delayed ACK costs ~40 ms per keep-alive request.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.owner._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_POST(self) -> None:
        self.server.owner._serve(self)

    do_PUT = do_GET = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def read_body(self) -> tuple[bytes | None, tuple[int, str] | None]:
        """Read exactly Content-Length bytes, or return (None, (status, reason)) to refuse."""
        problem: tuple[int, str] | None = None
        raw = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "identity").lower() != "identity":
            # Storage hosts refuse chunked uploads; drain the body so the client reads the 411.
            if self._drain_chunked():
                return None, (411, "chunked Transfer-Encoding is refused; send Content-Length")
            problem = (400, "malformed chunked body")
        elif raw is None:
            if self.command not in ("POST", "PUT", "PATCH"):
                return b"", None
            problem = (411, "Content-Length is required")
        elif not (raw.strip().isascii() and raw.strip().isdigit()):
            problem = (400, f"bad Content-Length {raw!r}")
        elif int(raw) > _MAX_BODY:
            problem = (413, f"body of {int(raw)} bytes is too large")
        if problem is not None or raw is None:
            self.close_connection = True
            return None, problem
        length = int(raw)
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            self.close_connection = True
            return None, None  # the client went away mid-body
        return body, None

    def _drain_chunked(self) -> bool:
        total = 0
        try:
            while True:
                size = int(self.rfile.readline(1024).split(b";", 1)[0].strip(), 16)
                total += size
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return True
                if total > _MAX_BODY or len(self.rfile.read(size)) != size:
                    return False
                self.rfile.readline(1024)
        except ValueError:
            return False

    def send_reply(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True


# --------------------------------------------------------------------------- the server


class LocalRoark:
    """A local Roark that speaks the wire contract on 127.0.0.1, for tests and demos.

    Start it, point a client at :attr:`base_url` with :attr:`api_key`, then inspect what was
    received. All methods are thread-safe; faults and the key can change while it runs.

    Example::

        with LocalRoark(api_key="k") as server:
            requests.post(server.base_url + "/v1/integrations/livekit-sdk", json=..., headers=...)
            call = server.wait_for_call("RM_abc")
            assert server.violations == []

    ``on_call_ended`` (optional) is called with a :class:`ReceivedCall` from a server thread
    after the first accepted call-ended of each call has been stitched.
    """

    def __init__(
        self,
        *,
        api_key: str = "roark-local-key",
        host: str = "127.0.0.1",
        port: int = 0,
        recordings_dir: str | os.PathLike[str] | None = None,
        envelope: bool = True,
        on_call_ended: Callable[[ReceivedCall], None] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._api_key = api_key
        self._revoked = False
        self._host = host
        self._port = port
        self._recordings_dir = Path(recordings_dir) if recordings_dir is not None else None
        self.envelope = envelope
        self.on_call_ended = on_call_ended

        self._calls: dict[str, _Call] = {}
        self._ended_order: list[str] = []
        self._tokens: dict[str, tuple[str, int]] = {}
        self._used_tokens: set[str] = set()
        self._requests: list[RequestRecord] = []
        self._violations: list[str] = []
        self._put_header_violations = 0

        self._faults = _Faults()
        self._rng = random.Random(0)
        self._hang_event = threading.Event()
        self._stopping = threading.Event()

        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._base_url: str | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> LocalRoark:
        """Bind and serve in a daemon thread; returns ``self``. Starting twice is a no-op.

        Example::

            server = LocalRoark(api_key="k").start()
            print(server.base_url)  # http://127.0.0.1:<port>
        """
        with self._lock:
            if self._stopping.is_set():
                raise RuntimeError("LocalRoark cannot be started after stop(); make a new one")
            if self._server is not None:
                return self
            server = _Server((self._host, self._port), self)
            host, port = server.server_address[:2]
            url_host = "127.0.0.1" if host in ("0.0.0.0", "") else str(host)
            self._base_url = f"http://{url_host}:{port}"
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"local-roark-{port}",
                daemon=True,
            )
            self._thread.start()
        logger.debug("local Roark serving on %s", self._base_url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Release hanging requests, stop serving, close connections and join. Idempotent."""
        with self._lock:
            server, thread = self._server, self._thread
            if server is None or self._stopping.is_set():
                self._stopping.set()
                return
            self._stopping.set()
            self._hang_event.set()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        server.shutdown()
        # Idle keep-alive connections would otherwise keep answering after stop().
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            while self._connections and time.monotonic() < deadline:
                self._cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        logger.debug("local Roark on %s stopped", self._base_url)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` once started."""
        if self._base_url is None:
            raise RuntimeError("LocalRoark is not started; call start() first")
        return self._base_url

    @property
    def api_key(self) -> str:
        """The key that requests must carry; settable at any time."""
        with self._lock:
            return self._api_key

    @api_key.setter
    def api_key(self, value: str) -> None:
        with self._lock:
            self._api_key = value

    @property
    def recordings_dir(self) -> Path:
        """Where stitched WAVs go (a fresh temporary directory unless given)."""
        with self._lock:
            if self._recordings_dir is None:
                self._recordings_dir = Path(tempfile.mkdtemp(prefix="local-roark-"))
            self._recordings_dir.mkdir(parents=True, exist_ok=True)
            return self._recordings_dir

    def revoke_key(self) -> None:
        """Answer 401 to every API request until :meth:`restore_key`."""
        with self._lock:
            self._revoked = True

    def restore_key(self) -> None:
        """Accept the key again after :meth:`revoke_key`."""
        with self._lock:
            self._revoked = False

    # ---------------------------------------------------------------- faults

    def set_faults(
        self,
        *,
        error_rate: float = 0.0,
        error_status: int = 503,
        drop_rate: float = 0.0,
        latency: float = 0.0,
        hang: bool = False,
        endpoints: Iterable[str] = ("event", "upload_url", "put"),
        retry_after: float | None = None,
        seed: int | None = 0,
    ) -> None:
        """Inject faults into requests to ``endpoints`` from now on (replacing earlier ones).

        Per request, in order: sleep ``latency`` seconds; with ``hang``, block until
        :meth:`clear_faults` or :meth:`stop` and then close without an answer; with
        probability ``drop_rate``, close the connection without an answer; else with
        probability ``error_rate``, answer ``error_status`` (with ``Retry-After`` when
        ``retry_after`` is set). Draws come from ``random.Random(seed)``. Faulted requests
        change no state.

        Example::

            server.set_faults(error_rate=1.0, error_status=429, retry_after=0.2,
                              endpoints=["event"])
        """
        names = frozenset([endpoints] if isinstance(endpoints, str) else endpoints)
        unknown = names - _ENDPOINTS
        if unknown:
            raise ValueError(f"endpoints: unknown {sorted(unknown)}; use {sorted(_ENDPOINTS)}")
        for name, rate in (("error_rate", error_rate), ("drop_rate", drop_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {rate!r}")
        if not 100 <= error_status <= 599:
            raise ValueError(f"error_status must be an HTTP status, got {error_status!r}")
        if latency < 0 or (retry_after is not None and retry_after < 0):
            raise ValueError("latency and retry_after must not be negative")
        with self._lock:
            self._faults = _Faults(
                error_rate=error_rate,
                error_status=error_status,
                drop_rate=drop_rate,
                latency=latency,
                hang=hang,
                endpoints=names,
                retry_after=retry_after,
            )
            self._rng = random.Random(seed)
            if hang:
                if self._hang_event.is_set():
                    self._hang_event = threading.Event()
            else:
                self._hang_event.set()

    def clear_faults(self) -> None:
        """Remove all faults and release requests that are hanging."""
        with self._lock:
            self._faults = _Faults()
            self._hang_event.set()

    # ---------------------------------------------------------------- observations

    def calls(self) -> dict[str, ReceivedCall]:
        """Snapshot of every call seen so far, by ``livekitCallId``."""
        with self._lock:
            return {cid: c.snapshot() for cid, c in self._calls.items()}

    def call(self, livekit_call_id: str) -> ReceivedCall:
        """Snapshot of one call; ``KeyError`` if nothing was received for it."""
        with self._lock:
            try:
                return self._calls[livekit_call_id].snapshot()
            except KeyError:
                raise KeyError(
                    f"no request for call {livekit_call_id!r}; known: {sorted(self._calls)}"
                ) from None

    def wait_for_call(
        self, livekit_call_id: str | None = None, *, timeout: float = 15.0
    ) -> ReceivedCall:
        """Block until a call-ended for ``livekit_call_id`` (any call if None) is stitched.

        Raises ``TimeoutError`` describing what was received so far.

        Example::

            call = server.wait_for_call("RM_abc", timeout=5)
        """

        def ready() -> ReceivedCall | None:
            if livekit_call_id is None:
                cid = self._ended_order[0] if self._ended_order else None
            else:
                cid = livekit_call_id
            c = self._calls.get(cid) if cid is not None else None
            return c.snapshot() if c is not None and c.stitched else None

        what = "any call" if livekit_call_id is None else repr(livekit_call_id)
        return self._wait(ready, timeout, f"no call-ended for {what}")

    def wait_for_calls(self, n: int, *, timeout: float = 15.0) -> list[ReceivedCall]:
        """Block until ``n`` calls have ended; returns the first ``n`` in order of ending."""

        def ready() -> list[ReceivedCall] | None:
            ids = self._ended_order[:n]
            if len(ids) < n or not all(self._calls[cid].stitched for cid in ids):
                return None
            return [self._calls[cid].snapshot() for cid in ids]

        return self._wait(ready, timeout, f"fewer than {n} ended calls")

    def wait_until(self, predicate: Callable[[LocalRoark], bool], *, timeout: float = 10.0) -> None:
        """Block until ``predicate(self)`` is true, re-checking on every change.

        Example::

            server.wait_until(lambda s: len(s.requests_log) >= 3, timeout=2)
        """
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(self._describe(f"condition not met within {timeout} s"))
            with self._cond:
                self._cond.wait(min(remaining, 0.05))

    @property
    def requests_log(self) -> list[RequestRecord]:
        """Snapshot of every request received, in arrival order."""
        with self._lock:
            return [replace(r, headers=dict(r.headers)) for r in self._requests]

    @property
    def violations(self) -> list[str]:
        """Every contract violation seen, human-readable, in order."""
        with self._lock:
            return list(self._violations)

    @property
    def put_header_violations(self) -> int:
        """Chunk PUTs that arrived carrying ``x-roark-api-key`` or ``Authorization``."""
        with self._lock:
            return self._put_header_violations

    def assert_no_violations(self) -> None:
        """Raise ``AssertionError`` listing the violations, if any."""
        found = self.violations
        if found:
            raise AssertionError(
                f"{len(found)} Roark contract violation(s):\n" + "\n".join(f"- {v}" for v in found)
            )

    def reset(self) -> None:
        """Forget every call, request, violation and upload URL (faults and key stay)."""
        with self._lock:
            self._calls.clear()
            self._ended_order.clear()
            self._tokens.clear()
            self._used_tokens.clear()
            self._requests.clear()
            self._violations.clear()
            self._put_header_violations = 0
            self._cond.notify_all()

    # ---------------------------------------------------------------- internals: waiting

    def _wait(self, ready: Callable[[], _T | None], timeout: float, what: str) -> _T:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = ready()
                if result is not None:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self._describe(f"{what} within {timeout} s"))
                self._cond.wait(remaining)

    def _describe(self, headline: str) -> str:
        with self._lock:
            calls = "; ".join(c.summary() for c in self._calls.values()) or "none"
            recent = ", ".join(
                f"{r.method} {r.path} -> {r.status if r.status is not None else r.fault or '...'}"
                for r in self._requests[-8:]
            )
            parts = [
                f"{headline}.",
                f"Calls received: {calls}.",
                f"{len(self._requests)} request(s)" + (f", last: {recent}." if recent else "."),
            ]
            if self._violations:
                parts.append("Violations: " + " | ".join(self._violations[-10:]))
            if self._base_url is None:
                parts.append("The server was never started.")
            return " ".join(parts)

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._cond:
            self._connections.discard(conn)
            self._cond.notify_all()

    def _violation(self, message: str, call_id: str | None = None) -> None:
        logger.warning("Roark contract violation: %s", message)
        with self._lock:
            self._violations.append(message)
            if call_id is not None:
                self._get_call(call_id).violations.append(message)
            self._cond.notify_all()

    def _get_call(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call(call_id)
        return call

    # ---------------------------------------------------------------- internals: requests

    def _redact(self, headers: dict[str, str]) -> dict[str, str]:
        key = self._api_key
        # a short key would match unrelated header values; the named headers are always hidden
        leaky = len(key) >= 8
        return {
            name: _REDACTED if name in _KEY_HEADERS or (leaky and key in value) else value
            for name, value in headers.items()
        }

    def _draw(self, endpoint: str) -> _Plan:
        with self._lock:
            faults = self._faults
            if endpoint not in faults.endpoints:
                return _NO_PLAN
            action = None
            if faults.drop_rate > 0 and self._rng.random() < faults.drop_rate:
                action = "drop"
            elif faults.error_rate > 0 and self._rng.random() < faults.error_rate:
                action = "error"
            return _Plan(
                latency=faults.latency,
                hang=self._hang_event if faults.hang else None,
                action=action,
                status=faults.error_status,
                retry_after=faults.retry_after,
            )

    def _serve(self, h: _Handler) -> None:
        mono = time.monotonic()
        path = urlsplit(h.path).path
        endpoint = _classify(h.command, path)
        headers = {name.lower(): value for name, value in h.headers.items()}
        with self._lock:
            record = RequestRecord(
                method=h.command,
                path=path,
                endpoint=endpoint,
                status=None,
                headers=self._redact(headers),
                received_at=time.time(),
            )
            self._requests.append(record)
            self._cond.notify_all()

        body, problem = h.read_body()
        if body is None:
            if problem is not None:
                status, reason = problem
                self._violation(f"{h.command} {path}: {reason}")
                self._answer(h, record, _error_reply(status, reason))
            return
        record.body_size = len(body)

        if endpoint == "put" and any(name in headers for name in _KEY_HEADERS):
            # Counted on arrival, faults or not: the key already left for the storage host.
            with self._lock:
                self._put_header_violations += 1
            self._violation(
                f"PUT {STORAGE_PREFIX}...: chunk upload carried a Roark auth header "
                "(x-roark-api-key/Authorization must never go to the storage host)"
            )

        plan = self._draw(endpoint)
        if plan.latency > 0:
            self._set_fault(record, "latency")
            self._stopping.wait(plan.latency)
        if plan.hang is not None:
            self._set_fault(record, "hang")
            while not plan.hang.wait(0.1) and not self._stopping.is_set():
                pass
            h.close_connection = True
            return
        if plan.action == "drop" or self._stopping.is_set():
            if plan.action == "drop":
                self._set_fault(record, "drop")
            h.close_connection = True
            return
        if plan.action == "error":
            self._set_fault(record, "error")
            extra = {}
            if plan.retry_after is not None:
                extra["Retry-After"] = f"{plan.retry_after:g}"
            reply = _json_reply(
                plan.status,
                {"error": {"status": plan.status, "message": "injected fault"}},
                extra,
            )
            self._answer(h, record, reply)
            return

        try:
            if endpoint == "event":
                reply = self._handle_event(headers, body, mono)
            elif endpoint == "upload_url":
                reply = self._handle_upload_url(headers, body, mono)
            elif endpoint == "put":
                reply = self._handle_put(path[len(STORAGE_PREFIX) :], headers, body, mono)
            else:
                reply = self._handle_unknown(h.command, path)
        except Exception:  # a bug here must not kill the connection silently
            logger.exception("local Roark failed to handle %s %s", h.command, path)
            reply = _error_reply(500, "internal error in LocalRoark")
        self._answer(h, record, reply)

    def _set_fault(self, record: RequestRecord, fault: str | None) -> None:
        with self._lock:
            record.fault = fault
            self._cond.notify_all()

    def _answer(self, h: _Handler, record: RequestRecord, reply: _Reply) -> None:
        # Logged before sending, so a client that has its answer also finds it in the log.
        with self._lock:
            record.status = reply.status
            self._cond.notify_all()
        h.send_reply(reply)

    def _handle_unknown(self, method: str, path: str) -> _Reply:
        if method == "GET" and path == "/_health":
            return _json_reply(200, {"ok": True})
        known = path in (EVENT_PATH, UPLOAD_URL_PATH) or path.startswith(STORAGE_PREFIX)
        status = 405 if known else 404
        message = f"{method} {path}: " + ("method not allowed" if known else "no such endpoint")
        self._violation(message)
        return _error_reply(status, message)

    def _check_api(self, headers: dict[str, str], what: str) -> _Reply | None:
        """Auth and Content-Type of a Roark API request; an error reply or None."""
        with self._lock:
            key, revoked = self._api_key, self._revoked
        if revoked:
            return _error_reply(401, "API key revoked")
        got_key, got_auth = headers.get("x-roark-api-key"), headers.get("authorization")
        missing = [
            name
            for name, value in (("x-roark-api-key", got_key), ("Authorization", got_auth))
            if value is None
        ]
        if missing:
            self._violation(f"{what}: missing header(s) {', '.join(missing)}")
            return _error_reply(401, f"missing {', '.join(missing)}")
        assert got_key is not None and got_auth is not None
        if got_auth != f"Bearer {got_key}":
            self._violation(f"{what}: Authorization is not 'Bearer ' + the x-roark-api-key value")
            return _error_reply(401, "Authorization must be 'Bearer <api key>'")
        if got_key != key:
            return _error_reply(401, "invalid API key")
        if _media_type(headers) != "application/json":
            message = f"{what}: Content-Type must be application/json"
            self._violation(f"{message}, got {headers.get('content-type')!r}")
            return _error_reply(400, message)
        return None

    def _handle_event(self, headers: dict[str, str], body: bytes, mono: float) -> _Reply:
        what = f"POST {EVENT_PATH}"
        problem = self._check_api(headers, what)
        if problem is not None:
            return problem
        payload, error = _parse_json(body)
        if error is None and not isinstance(payload, dict):
            error = f"body must be a JSON object, got {_describe(payload)}"
        if error is not None:
            self._violation(f"{what}: {error}")
            return _error_reply(400, error)
        event = payload.get("event")
        cid = payload.get("livekitCallId")
        cid = cid if isinstance(cid, str) and cid else None
        if event not in ("call-started", "call-ended"):
            message = f"'event' must be 'call-started' or 'call-ended', got {_describe(event)}"
            self._violation(f"{what}: {message}", cid)
            return _error_reply(400, message)

        with self._lock:
            call = self._calls.get(cid) if cid else None
            has_chunks = bool(call and call.chunks)
            was_started = bool(call and call.started is not None)
        errs: list[str] = []
        _non_finite(payload, "", errs)
        errs += (
            _validate_started(payload)
            if event == "call-started"
            else _validate_ended(payload, has_chunks)
        )
        if errs:
            shown = errs[:_MAX_ERRORS] + (
                [f"... {len(errs) - _MAX_ERRORS} more"] if len(errs) > _MAX_ERRORS else []
            )
            message = f"invalid {event}: " + "; ".join(shown)
            self._violation(f"{what} {event} for {cid!r}: " + "; ".join(shown), cid)
            return _error_reply(400, message)
        assert cid is not None

        if event == "call-started":
            with self._lock:
                call = self._get_call(cid)
                call.events.append(payload)
                call.started_count += 1
                if call.started is None:
                    call.started = payload
                self._cond.notify_all()
            return _json_reply(200, {"success": True})
        return self._accept_ended(cid, payload, was_started, mono)

    def _accept_ended(
        self, cid: str, payload: dict[str, Any], was_started: bool, mono: float
    ) -> _Reply:
        with self._lock:
            call = self._get_call(cid)
            call.events.append(payload)
            call.ended_count += 1
            first = call.ended is None
            if first:
                call.ended = payload
                call.ended_mono = mono
            chunks = dict(call.chunks)
            rate = payload.get("recordingSampleRate", call.sample_rate)
        recording, path = self._stitch(cid, chunks, rate)
        with self._lock:
            if recording is not None:
                call.recording, call.recording_path, call.sample_rate = recording, path, rate
            call.stitched = True
            if first:
                self._ended_order.append(cid)
            snapshot = call.snapshot()
            self._cond.notify_all()
        if not was_started:
            message = f"call-ended for {cid!r} without a call-started before it"
            self._violation(f"POST {EVENT_PATH}: {message}", cid)
            reply = _error_reply(400, message)
        else:
            reply = _json_reply(200, {"success": True})
        if first and self.on_call_ended is not None:
            try:
                self.on_call_ended(snapshot)
            except Exception:
                logger.exception("on_call_ended callback failed for %r", cid)
        return reply

    def _stitch(
        self, cid: str, chunks: dict[int, bytes], rate: int | None
    ) -> tuple[np.ndarray | None, Path | None]:
        if not chunks:
            return None, None
        indices = sorted(chunks)
        if indices != list(range(len(indices))):
            missing = sorted(set(range(indices[-1] + 1)) - set(indices))
            self._violation(
                f"call {cid!r}: chunk indices must be 0..n-1 without gaps; got {indices}, "
                f"missing {missing}",
                cid,
            )
        # Every stored chunk is a whole number of stereo frames (checked at PUT).
        data = b"".join(chunks[i] for i in indices)
        recording = np.frombuffer(data, dtype="<i2").astype(np.int16).reshape(-1, 2)
        recording.flags.writeable = False
        path: Path | None = None
        if rate:
            path = self.recordings_dir / f"{_safe_name(cid)}.wav"
            sf.write(str(path), recording, int(rate), subtype="PCM_16", format="WAV")
        return recording, path

    def _handle_upload_url(self, headers: dict[str, str], body: bytes, mono: float) -> _Reply:
        what = f"POST {UPLOAD_URL_PATH}"
        problem = self._check_api(headers, what)
        if problem is not None:
            return problem
        payload, error = _parse_json(body)
        if error is None and not isinstance(payload, dict):
            error = f"body must be a JSON object, got {_describe(payload)}"
        if error is not None:
            self._violation(f"{what}: {error}")
            return _error_reply(400, error)
        errs: list[str] = []
        _check_fields(
            payload, {"livekitCallId": ("str", True), "chunkIndex": ("int", True)}, "", errs
        )
        index = payload.get("chunkIndex")
        if _kind_problem("int", index) is None and index < 0:
            errs.append(f"'chunkIndex' must be >= 0, got {index}")
        if payload.get("contentType") != "audio/pcm":
            errs.append(
                f"'contentType' must be 'audio/pcm', got {_describe(payload.get('contentType'))}"
            )
        cid = payload.get("livekitCallId")
        if errs:
            message = "; ".join(errs)
            self._violation(f"{what}: {message}", cid if isinstance(cid, str) and cid else None)
            return _error_reply(400, message)

        token = secrets.token_urlsafe(18)
        with self._lock:
            call = self._get_call(cid)
            late = call.ended_mono is not None and mono > call.ended_mono
            call.upload_url_requests.append(index)
            self._tokens[token] = (cid, index)
            self._cond.notify_all()
        if late:
            self._violation(
                f"{what}: upload URL for chunk {index} of {cid!r} asked after call-ended", cid
            )
        data = {
            "uploadUrl": f"{self.base_url}{STORAGE_PREFIX}{token}",
            "s3Key": f"recordings/{_safe_name(cid)}/{index}.pcm",
            "chunkIndex": index,
            "expiresInSeconds": _UPLOAD_URL_TTL_S,
            "method": "PUT",
            "contentType": "audio/pcm",
        }
        return _json_reply(200, {"data": data} if self.envelope else data)

    def _handle_put(self, token: str, headers: dict[str, str], body: bytes, mono: float) -> _Reply:
        if any(name in headers for name in _KEY_HEADERS):
            return _s3_error(
                400, "InvalidArgument", "Only one auth mechanism allowed; unexpected auth header"
            )
        with self._lock:
            target = self._tokens.get(token)
            reused = token in self._used_tokens
        if target is None:
            why = "already used (one PUT per upload URL)" if reused else "unknown"
            self._violation(f"PUT {STORAGE_PREFIX}...: upload URL {why}")
            return _s3_error(403, "AccessDenied", f"Upload URL {why}")
        cid, index = target
        if _media_type(headers) != "audio/pcm":
            message = f"Content-Type must be audio/pcm, got {headers.get('content-type')!r}"
            self._violation(f"PUT chunk {index} of {cid!r}: {message}", cid)
            return _s3_error(400, "InvalidArgument", message)
        if len(body) % 4:
            message = f"chunk of {len(body)} bytes is not whole 16-bit stereo frames (4 bytes)"
            self._violation(f"PUT chunk {index} of {cid!r}: {message}", cid)
            return _s3_error(400, "InvalidArgument", message)
        with self._lock:
            if self._tokens.pop(token, None) is None:  # a concurrent PUT won the race
                return _s3_error(403, "AccessDenied", "Upload URL already used")
            self._used_tokens.add(token)
            call = self._get_call(cid)
            late = call.ended_mono is not None and mono > call.ended_mono
            call.chunks[index] = body
            call.chunk_puts.append(index)
            self._cond.notify_all()
        if late:
            self._violation(f"PUT chunk {index} of {cid!r} arrived after call-ended", cid)
        etag = hashlib.md5(body).hexdigest()
        return _Reply(200, headers={"ETag": f'"{etag}"'})


# --------------------------------------------------------------------------- CLI


def _summary_line(call: ReceivedCall) -> str:
    duration = f"{call.duration_s:.1f}s" if call.duration_s is not None else "no audio"
    line = (
        f"call {call.livekit_call_id}: agent={call.agent_id} reason={call.reason} "
        f"recording={duration} transcript={len(call.transcript)} "
        f"tools={len(call.tool_calls)} metrics={len(call.metrics)} chunks={len(call.chunks)}"
    )
    if call.recording_path is not None:
        line += f" -> {call.recording_path}"
    if call.violations:
        line += f" ({len(call.violations)} violation(s))"
    return line


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run a local Roark until Ctrl-C: ``python -m roark.testing.server --port 8787``."""
    parser = argparse.ArgumentParser(
        prog="python -m roark.testing.server",
        description="A local, contract-faithful Roark server for LiveKit Agents calls.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument(
        "--api-key",
        default=os.environ.get("ROARK_API_KEY") or "roark-local-key",
        help="key that requests must carry (default: $ROARK_API_KEY or roark-local-key)",
    )
    parser.add_argument("--recordings-dir", default=None, help="where to write call WAVs")
    parser.add_argument(
        "--no-envelope", action="store_true", help="answer chunk-upload-url without {data: ...}"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def on_ended(call: ReceivedCall) -> None:
        print(_summary_line(call), flush=True)

    server = LocalRoark(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        recordings_dir=args.recordings_dir,
        envelope=not args.no_envelope,
        on_call_ended=on_ended,
    )
    try:
        server.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"Local Roark listening on {server.base_url} (Ctrl-C to stop)", flush=True)
    print(f"  ROARK_BASE_URL={server.base_url}", flush=True)
    print(f"  recordings: {server.recordings_dir}", flush=True)
    if threading.current_thread() is threading.main_thread():
        # `kill` and process managers send SIGTERM; stop as cleanly as on Ctrl-C
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
