"""HTTP to Roark: one pooled ``requests`` session, tenacity retries, no redirects, ever.

Everything here blocks; it runs on worker threads only.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_any,
    stop_before_delay,
    wait_random_exponential,
)

from .._config import Settings
from .._version import __version__
from . import wire

logger = logging.getLogger("roark.transport")

# connection errors and these statuses are worth another try soon
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
# the only answers that judge the data itself: sending it again would fail the same way
_DATA_REFUSED = {400, 413, 422}
# from the API: it is not where the base URL points (a path too many, a proxy in between)
_WRONG_DESTINATION = {404, 405}
_MAX_RETRY_AFTER = 30.0
# how much of an answer's body a message quotes
QUOTE_CHARS = 200
# a key shorter than this (a test's) would match ordinary words; real keys are longer
_SCRUBBED_KEY_CHARS = 8


class DeliveryError(Exception):
    """A request Roark did not accept."""


class TransientError(DeliveryError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RejectedError(DeliveryError):
    """400, 413 or 422: Roark judged the data itself; sending it again would fail the same way.

    ``fields`` are the fields Roark named as wrong, when its answer said which.
    """

    def __init__(self, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = fields


class AuthError(DeliveryError):
    """401/403: the API key is wrong or revoked."""


class DestinationError(DeliveryError):
    """404, 405 or a redirect from the API: the base URL leads somewhere else, the data is fine."""


class UnexpectedStatusError(DeliveryError):
    """An answer that says nothing about the data (409, 410, 418...): kept and tried later."""


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return min(max(float(raw), 0.0), _MAX_RETRY_AFTER)
    except ValueError:
        return None


CHUNK_PUT = "chunk PUT"


def quote(text: str, secret: str | None = None, limit: int = QUOTE_CHARS) -> str:
    """``text`` (an answer's body) fit to quote in a message: on one line, the key scrubbed
    out, cut to ``limit`` characters."""
    if secret and len(secret) >= _SCRUBBED_KEY_CHARS:
        text = text.replace(secret, "[key]")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_QUOTED_FIELD = re.compile(r"'([A-Za-z_][\w.\[\]]{0,80})'")
_FIELD_KEYS = ("field", "fields", "param", "path", "loc", "pointer")


def _named_fields(found: Any) -> list[str]:
    """Field names under the usual keys of an error object (``field``, ``path``...)."""
    names: list[str] = []
    if isinstance(found, dict):
        for key in _FIELD_KEYS:
            value = found.get(key)
            if isinstance(value, str) and value:
                names.append(value.lstrip("/").replace("/", "."))
            elif isinstance(value, list) and value:
                if all(isinstance(v, (str, int)) for v in value) and key in ("path", "loc"):
                    names.append(".".join(str(v) for v in value))
                else:
                    names += [v for v in value if isinstance(v, str)]
        for nested in ("error", "errors", "source", "details"):
            names += _named_fields(found.get(nested))
    elif isinstance(found, list):
        for entry in found[:20]:
            names += _named_fields(entry)
    return names


def error_fields(body: str) -> tuple[str, ...]:
    """The fields an error answer names as wrong: under the usual keys of a JSON error, else
    the names its message quotes (the local Roark's ``'agentId' must be ...``)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    names = _named_fields(parsed)
    if not names:
        names = _QUOTED_FIELD.findall(body[:2000])
    return tuple(dict.fromkeys(names))[:5]


def status_error(
    status: int,
    what: str,
    *,
    retry_after: float | None = None,
    text: str = "",
    url: str = "",
    location: str | None = None,
    secret: str | None = None,
) -> DeliveryError | None:
    """What an answer's status means for request ``what`` (to ``url``, its body ``text``):
    None when it was accepted. Quoted bodies are cut short, without ``secret``."""
    if 200 <= status < 300:
        return None
    answered = f"{what}: HTTP {status}"
    if status in _TRANSIENT_STATUS:
        return TransientError(answered, retry_after)
    if status in _DATA_REFUSED:
        return RejectedError(f"{answered}: {quote(text, secret)}", error_fields(text))
    if what == CHUNK_PUT:
        if status in (401, 403) or status in _WRONG_DESTINATION or 300 <= status < 400:
            # the presigned URL expired, was used, or its storage moved: a fresh one may work
            return TransientError(f"{answered} (the presigned URL refused)")
    elif status in (401, 403):
        return AuthError(answered)
    elif status in _WRONG_DESTINATION or 300 <= status < 400:
        where = f" from {_without_query(url)}" if url else ""
        if location:
            where += f", redirecting to {quote(_without_query(location), secret)}"
        return DestinationError(f"{answered}{where}")
    return UnexpectedStatusError(f"{answered}: {quote(text, secret)}")


def _without_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


class _Wait:
    """Exponential backoff with full jitter, or the server's ``Retry-After`` when it sent one."""

    def __init__(self) -> None:
        self._backoff = wait_random_exponential(multiplier=0.25, max=8.0)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return exc.retry_after + random.uniform(0, 0.1)
        return float(self._backoff(state))


class Transport:
    """Sends lifecycle events and audio chunks; safe to share between worker threads."""

    def __init__(self, settings: Settings, abort: threading.Event) -> None:
        assert settings.api_key
        self._key = settings.api_key
        self._base = settings.base_url
        self._timeout = settings.request_timeout
        # set when the process gives up on delivering: retries stop, what is left stays spooled
        self._abort = abort
        self._auth_headers = {
            "x-roark-api-key": settings.api_key,
            "Authorization": f"Bearer {settings.api_key}",
            "Content-Type": "application/json",
            "User-Agent": f"roark-python/{__version__}",
        }
        self._env_proxies = bool(requests.utils.getproxies())
        self._api = self._session(settings.worker_threads)
        self._api_proxies = self._proxies(self._base)
        # presigned uploads go to a storage host: a separate session that never holds the key
        self._storage = self._session(settings.worker_threads)

    @staticmethod
    def _session(pool: int) -> requests.Session:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(2, pool), max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # the environment is read once here, not on every request (a third of a request's
        # CPU), and ~/.netrc never adds credentials, least of all to a presigned PUT
        session.trust_env = False
        session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        return session

    def _proxies(self, url: str) -> dict[str, str] | None:
        """Proxies from the environment for ``url`` (None when none are configured)."""
        if not self._env_proxies:
            return None
        return requests.utils.get_environ_proxies(url) or None

    def _check(self, response: requests.Response, what: str) -> requests.Response:
        status = response.status_code
        if 200 <= status < 300:
            return response
        error = status_error(
            status,
            what,
            retry_after=_retry_after(response),
            text=response.text,
            url=response.url,
            location=response.headers.get("Location"),
            secret=self._key,
        )
        assert error is not None
        raise error

    def close(self) -> None:
        self._api.close()
        self._storage.close()

    def _retrying(self, deadline: float, what: str) -> Retrying:
        def aborted(_: RetryCallState) -> bool:
            return self._abort.is_set()

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.debug("%s failed (%s), retry %d", what, exc, state.attempt_number)

        return Retrying(
            retry=retry_if_exception_type((TransientError, requests.RequestException)),
            wait=_Wait(),
            stop=stop_any(stop_before_delay(max(0.0, deadline - time.monotonic())), aborted),
            sleep=self._abort.wait,
            before_sleep=before_sleep,
            reraise=True,
        )

    def _timeout_until(self, deadline: float) -> tuple[float, float]:
        left = max(0.5, deadline - time.monotonic())
        return (min(self._timeout[0], left), min(self._timeout[1], left))

    def _request(
        self,
        session: requests.Session,
        method: str,
        url: str,
        data: bytes,
        headers: dict[str, str],
        proxies: dict[str, str] | None,
        deadline: float,
    ) -> requests.Response:
        # prepared here and sent as is: Session.request would merge session-level headers,
        # cookies, hooks and settings this transport never sets (a fifth of a request's CPU)
        prepared = requests.PreparedRequest()
        prepared.prepare(method=method, url=url, headers=headers, data=data)
        return session.send(
            prepared,
            proxies=proxies or {},
            timeout=self._timeout_until(deadline),
            allow_redirects=False,
        )

    def _post_json(self, path: str, body: Any, deadline: float, what: str) -> requests.Response:
        data = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
        response = self._request(
            self._api,
            "POST",
            self._base + path,
            data,
            self._auth_headers,
            self._api_proxies,
            deadline,
        )
        return self._check(response, what)

    def probe(self, deadline: float) -> None:
        """POST an empty event once, without retries (``roark check``): Roark checks the key
        before the body, so a good key and URL raise ``RejectedError`` (the empty event
        judged), a bad key ``AuthError``, a wrong URL ``DestinationError``."""
        self._post_json(wire.EVENTS_PATH, {}, deadline, "an empty test event")

    def send_event(self, body: dict[str, Any], deadline: float) -> None:
        """POST one lifecycle event, retrying transient failures until ``deadline``."""
        what = wire.event_name(body)
        for attempt in self._retrying(deadline, what):
            with attempt:
                self._post_json(wire.EVENTS_PATH, body, deadline, what)

    def upload_chunk(self, call_id: str, index: int, data: bytes, deadline: float) -> None:
        """Ask for a fresh presigned URL and PUT the chunk there, per attempt."""
        request = wire.upload_url_request(call_id, index)
        for attempt in self._retrying(deadline, f"chunk {index}"):
            with attempt:
                answer = self._post_json(wire.UPLOAD_URL_PATH, request, deadline, "upload URL")
                try:
                    url = wire.upload_url(answer.json())
                except ValueError as exc:
                    raise TransientError(f"upload URL answer unusable: {exc}") from None
                # no Roark headers here: the storage host rejects them, and the key stays home
                response = self._request(
                    self._storage,
                    "PUT",
                    url,
                    data,
                    {"Content-Type": wire.PCM_CONTENT_TYPE},
                    self._proxies(url),
                    deadline,
                )
                self._check(response, CHUNK_PUT)
