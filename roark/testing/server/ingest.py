"""The contract's endpoints: what the local Roark answers to a request, and what it keeps.

:class:`Ingest` takes a request already read off the wire (method, path, lower-cased
headers, body) and returns a :class:`~.replies.Reply`, keeping accepted events and chunks in
a :class:`~.storage.CallStore` and every contract violation it sees. It knows no HTTP
server: the test server (``http.py``) and the ``roark dev`` viewer both call it, so both
give the same answers and the same errors.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from .contract import (
    EVENT_PATH,
    KEY_HEADERS,
    STORAGE_PREFIX,
    UPLOAD_URL_PATH,
    classify,
    describe,
    format_runs,
    index_gaps,
    media_type,
    non_finite,
    parse_json_object,
    safe_name,
    shown_errors,
    validate_ended,
    validate_started,
    validate_upload_request,
)
from .records import ReceivedCall
from .replies import Reply, error_reply, json_reply, s3_error
from .storage import CallStore

logger = logging.getLogger(__name__)

_UPLOAD_URL_TTL_S = 900
_OK = {"success": True}


class Ingest:
    """Answers the contract's requests over ``store``. Thread-safe.

    ``base_url`` (set once the server listens) is where upload URLs point.
    ``on_call_ended`` is called with the call after its first accepted call-ended has been
    stitched, from the thread that handled it.
    """

    def __init__(
        self,
        store: CallStore,
        *,
        api_key: str,
        envelope: bool = True,
        on_call_ended: Callable[[ReceivedCall], None] | None = None,
    ) -> None:
        self.store = store
        self._cond = store.changed
        self._api_key = api_key
        self._revoked = False
        self.envelope = envelope
        self.on_call_ended = on_call_ended
        self.base_url = ""
        self._tokens: dict[str, tuple[str, int]] = {}
        self._used_tokens: set[str] = set()
        self._violations: list[str] = []

    # ---------------------------------------------------------------- the key

    @property
    def api_key(self) -> str:
        with self._cond:
            return self._api_key

    @api_key.setter
    def api_key(self, value: str) -> None:
        with self._cond:
            self._api_key = value

    def set_revoked(self, revoked: bool) -> None:
        with self._cond:
            self._revoked = revoked

    # ---------------------------------------------------------------- violations

    @property
    def violations(self) -> list[str]:
        with self._cond:
            return list(self._violations)

    def violation(self, message: str, call_id: str | None = None) -> None:
        """Log and keep a contract violation (of the call, when known)."""
        logger.warning("Roark contract violation: %s", message)
        with self._cond:
            self._violations.append(message)
            if call_id is not None:
                self.store.add_violation(call_id, message)
            self._cond.notify_all()

    def reset(self) -> None:
        """Forget violations and upload URLs (the key stays)."""
        with self._cond:
            self._tokens.clear()
            self._used_tokens.clear()
            self._violations.clear()
            self._cond.notify_all()

    # ---------------------------------------------------------------- requests

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes, mono: float
    ) -> Reply:
        """The answer to one request; ``mono`` is its monotonic receipt time."""
        try:
            endpoint = classify(method, path)
            if endpoint == "event":
                return self._event(headers, body, mono)
            if endpoint == "upload_url":
                return self._upload_url(headers, body, mono)
            if endpoint == "put":
                return self._put(path[len(STORAGE_PREFIX) :], headers, body, mono)
            return self._unknown(method, path)
        except Exception:  # a bug here must not kill the connection silently
            logger.exception("local Roark failed to handle %s %s", method, path)
            return error_reply(500, "internal error in LocalRoark")

    def _unknown(self, method: str, path: str) -> Reply:
        if method == "GET" and path == "/_health":
            return json_reply(200, {"ok": True})
        known = path in (EVENT_PATH, UPLOAD_URL_PATH) or path.startswith(STORAGE_PREFIX)
        status = 405 if known else 404
        message = f"{method} {path}: " + ("method not allowed" if known else "no such endpoint")
        self.violation(message)
        return error_reply(status, message)

    def _check_api(self, headers: dict[str, str], what: str) -> Reply | None:
        """Auth and Content-Type of a Roark API request; an error reply or None."""
        with self._cond:
            key, revoked = self._api_key, self._revoked
        if revoked:
            return error_reply(401, "API key revoked")
        got_key, got_auth = headers.get("x-roark-api-key"), headers.get("authorization")
        missing = [
            name
            for name, value in (("x-roark-api-key", got_key), ("Authorization", got_auth))
            if value is None
        ]
        if missing:
            self.violation(f"{what}: missing header(s) {', '.join(missing)}")
            return error_reply(401, f"missing {', '.join(missing)}")
        if got_auth != f"Bearer {got_key}":
            self.violation(f"{what}: Authorization is not 'Bearer ' + the x-roark-api-key value")
            return error_reply(401, "Authorization must be 'Bearer <api key>'")
        if got_key != key:
            return error_reply(401, "invalid API key")
        if media_type(headers) != "application/json":
            message = f"{what}: Content-Type must be application/json"
            self.violation(f"{message}, got {headers.get('content-type')!r}")
            return error_reply(400, message)
        return None

    def _api_body(
        self, headers: dict[str, str], body: bytes, what: str
    ) -> tuple[dict[str, Any], Reply | None]:
        """The checked JSON object of an API request, or the error reply."""
        problem = self._check_api(headers, what)
        if problem is not None:
            return {}, problem
        payload, error = parse_json_object(body)
        if error is not None:
            self.violation(f"{what}: {error}")
            return {}, error_reply(400, error)
        return payload, None

    # ---------------------------------------------------------------- lifecycle events

    def _event(self, headers: dict[str, str], body: bytes, mono: float) -> Reply:
        what = f"POST {EVENT_PATH}"
        payload, problem = self._api_body(headers, body, what)
        if problem is not None:
            return problem
        if not payload:
            # how a client asks whether its key and URL are right (`roark check`): judged like
            # any event without a name, but no client's mistake
            return error_reply(400, "'event' must be 'call-started' or 'call-ended', got nothing")
        event = payload.get("event")
        cid = payload.get("livekitCallId")
        cid = cid if isinstance(cid, str) and cid else None
        if event not in ("call-started", "call-ended"):
            message = f"'event' must be 'call-started' or 'call-ended', got {describe(event)}"
            self.violation(f"{what}: {message}", cid)
            return error_reply(400, message)

        progress = self.store.progress(cid) if cid else None
        errs: list[str] = []
        non_finite(payload, "", errs)
        if event == "call-started":
            errs += validate_started(payload)
        else:
            errs += validate_ended(payload, bool(progress and progress.chunk_indices))
        if errs:
            shown = shown_errors(errs)
            self.violation(f"{what} {event} for {cid!r}: {shown}", cid)
            return error_reply(400, f"invalid {event}: {shown}")
        assert cid is not None and progress is not None

        if event == "call-started":
            self.store.add_started(cid, payload, body)
            return json_reply(200, _OK)
        return self._ended(cid, payload, body, mono, was_started=progress.started)

    def _ended(
        self, cid: str, payload: dict[str, Any], body: bytes, mono: float, *, was_started: bool
    ) -> Reply:
        first = self.store.add_ended(cid, payload, body, mono)
        indices = list(self.store.progress(cid).chunk_indices)
        gaps = index_gaps(indices)
        if gaps:
            got = str(indices) if len(indices) <= 20 else f"{len(indices)} chunks"
            self.violation(
                f"call {cid!r}: chunk indices must be 0..n-1 without gaps; got {got}, "
                f"missing [{format_runs(gaps)}]",
                cid,
            )
        rate = payload.get("recordingSampleRate")
        call = self.store.finish(cid, rate if isinstance(rate, int) else None)
        if was_started:
            reply = json_reply(200, _OK)
        else:
            message = f"call-ended for {cid!r} without a call-started before it"
            self.violation(f"POST {EVENT_PATH}: {message}", cid)
            reply = error_reply(400, message)
        if first and self.on_call_ended is not None:
            try:
                self.on_call_ended(call)
            except Exception:
                logger.exception("on_call_ended callback failed for %r", cid)
        return reply

    # ---------------------------------------------------------------- chunks

    def _upload_url(self, headers: dict[str, str], body: bytes, mono: float) -> Reply:
        what = f"POST {UPLOAD_URL_PATH}"
        payload, problem = self._api_body(headers, body, what)
        if problem is not None:
            return problem
        errs = validate_upload_request(payload)
        cid = payload.get("livekitCallId")
        if errs:
            message = "; ".join(errs)
            self.violation(f"{what}: {message}", cid if isinstance(cid, str) and cid else None)
            return error_reply(400, message)

        index = payload["chunkIndex"]
        token = secrets.token_urlsafe(18)
        with self._cond:
            ended_mono = self.store.add_upload_request(cid, index)
            self._tokens[token] = (cid, index)
            self._cond.notify_all()
        if ended_mono is not None and mono > ended_mono:
            self.violation(
                f"{what}: upload URL for chunk {index} of {cid!r} asked after call-ended", cid
            )
        data = {
            "uploadUrl": f"{self.base_url}{STORAGE_PREFIX}{token}",
            "s3Key": f"recordings/{safe_name(cid)}/{index}.pcm",
            "chunkIndex": index,
            "expiresInSeconds": _UPLOAD_URL_TTL_S,
            "method": "PUT",
            "contentType": "audio/pcm",
        }
        return json_reply(200, {"data": data} if self.envelope else data)

    def _put(self, token: str, headers: dict[str, str], body: bytes, mono: float) -> Reply:
        if any(name in headers for name in KEY_HEADERS):
            return s3_error(
                400, "InvalidArgument", "Only one auth mechanism allowed; unexpected auth header"
            )
        with self._cond:
            target = self._tokens.get(token)
            reused = token in self._used_tokens
        if target is None:
            why = "already used (one PUT per upload URL)" if reused else "unknown"
            self.violation(f"PUT {STORAGE_PREFIX}...: upload URL {why}")
            return s3_error(403, "AccessDenied", f"Upload URL {why}")
        cid, index = target
        problem = _chunk_problem(headers, body)
        if problem is not None:
            self.violation(f"PUT chunk {index} of {cid!r}: {problem}", cid)
            return s3_error(400, "InvalidArgument", problem)
        with self._cond:
            if self._tokens.pop(token, None) is None:  # a concurrent PUT won the race
                return s3_error(403, "AccessDenied", "Upload URL already used")
            self._used_tokens.add(token)
        ended_mono = self.store.add_chunk(cid, index, body)
        if ended_mono is not None and mono > ended_mono:
            self.violation(f"PUT chunk {index} of {cid!r} arrived after call-ended", cid)
        etag = hashlib.md5(body).hexdigest()
        return Reply(200, headers={"ETag": f'"{etag}"'})


def _chunk_problem(headers: dict[str, str], body: bytes) -> str | None:
    if media_type(headers) != "audio/pcm":
        return f"Content-Type must be audio/pcm, got {headers.get('content-type')!r}"
    if len(body) % 4:
        return f"chunk of {len(body)} bytes is not whole 16-bit stereo frames (4 bytes)"
    return None
