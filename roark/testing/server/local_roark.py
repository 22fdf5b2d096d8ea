"""LocalRoark: the local Roark as one object to start, point a client at, and inspect.

It joins the parts: the HTTP server (``http.py``) reads each request, faults
(``faults.py``) may delay, drop or fail it, the endpoints (``ingest.py``) answer it and keep
what they accept in a store (``storage.py``), and every request is logged.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from .contract import KEY_HEADERS, STORAGE_PREFIX, classify
from .faults import FaultInjector, Faults, Plan
from .http import HTTPServer, RequestHandler
from .ingest import Ingest
from .records import ReceivedCall, RequestRecord
from .replies import Reply, error_reply
from .storage import CallStore, MemoryStore

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

_REDACTED = "<redacted>"
_T = TypeVar("_T")


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
    after the first accepted call-ended of each call has been stitched. ``store`` keeps the
    calls (by default in memory, with WAVs in ``recordings_dir``).
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
        store: CallStore | None = None,
    ) -> None:
        if store is not None and recordings_dir is not None:
            raise ValueError("give either store or recordings_dir, not both")
        self._store = store if store is not None else MemoryStore(recordings_dir)
        self._ingest = Ingest(
            self._store, api_key=api_key, envelope=envelope, on_call_ended=on_call_ended
        )
        # one condition for everything: the store's, so a waiter wakes on any change
        self._cond = self._store.changed
        self._host = host
        self._port = port
        self._requests: list[RequestRecord] = []
        self._put_header_violations = 0
        self._faults = FaultInjector()
        self._stopping = threading.Event()
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> LocalRoark:
        """Bind and serve in a daemon thread; returns ``self``. Starting twice is a no-op.

        Example::

            server = LocalRoark(api_key="k").start()
            print(server.base_url)  # http://127.0.0.1:<port>
        """
        with self._cond:
            if self._stopping.is_set():
                raise RuntimeError("LocalRoark cannot be started after stop(); make a new one")
            if self._server is not None:
                return self
            server = HTTPServer((self._host, self._port), self._serve)
            host, port = server.server_address[:2]
            url_host = "127.0.0.1" if host in ("0.0.0.0", "") else str(host)
            self._base_url = self._ingest.base_url = f"http://{url_host}:{port}"
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
        with self._cond:
            server, thread = self._server, self._thread
            already = server is None or self._stopping.is_set()
            self._stopping.set()
            if already:
                return
            self._faults.release()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        server.shutdown()
        server.shutdown_connections()
        server.server_close()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        server.wait_connections_closed(deadline)
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
        return self._ingest.api_key

    @api_key.setter
    def api_key(self, value: str) -> None:
        self._ingest.api_key = value

    @property
    def envelope(self) -> bool:
        """Whether chunk-upload-url answers are wrapped in ``{"data": ...}``; settable."""
        return self._ingest.envelope

    @envelope.setter
    def envelope(self, value: bool) -> None:
        self._ingest.envelope = value

    @property
    def on_call_ended(self) -> Callable[[ReceivedCall], None] | None:
        """Called with each call once its first call-ended is stitched; settable."""
        return self._ingest.on_call_ended

    @on_call_ended.setter
    def on_call_ended(self, value: Callable[[ReceivedCall], None] | None) -> None:
        self._ingest.on_call_ended = value

    @property
    def store(self) -> CallStore:
        """Where the received calls are kept."""
        return self._store

    @property
    def recordings_dir(self) -> Path:
        """Where stitched WAVs go (a fresh temporary directory unless given)."""
        return self._store.recordings_dir

    def revoke_key(self) -> None:
        """Answer 401 to every API request until :meth:`restore_key`."""
        self._ingest.set_revoked(True)

    def restore_key(self) -> None:
        """Accept the key again after :meth:`revoke_key`."""
        self._ingest.set_revoked(False)

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
        ``retry_after`` is set; a 3xx with a ``Location``, as a proxy redirecting elsewhere).
        Draws come from ``random.Random(seed)``. Faulted requests change no state.

        Example::

            server.set_faults(error_rate=1.0, error_status=429, retry_after=0.2,
                              endpoints=["event"])
        """
        names = frozenset([endpoints] if isinstance(endpoints, str) else endpoints)
        faults = Faults(error_rate, error_status, drop_rate, latency, hang, names, retry_after)
        self._faults.set(faults, seed)

    def clear_faults(self) -> None:
        """Remove all faults and release requests that are hanging."""
        self._faults.clear()

    # ---------------------------------------------------------------- observations

    def calls(self) -> dict[str, ReceivedCall]:
        """Snapshot of every call seen so far, by ``livekitCallId``."""
        with self._cond:
            found = {cid: self._store.received(cid) for cid in self._store.call_ids()}
            return {cid: call for cid, call in found.items() if call is not None}

    def call(self, livekit_call_id: str) -> ReceivedCall:
        """Snapshot of one call; ``KeyError`` if nothing was received for it."""
        with self._cond:
            found = self._store.received(livekit_call_id)
            if found is None:
                raise KeyError(
                    f"no request for call {livekit_call_id!r}; "
                    f"known: {sorted(self._store.call_ids())}"
                )
            return found

    def wait_for_call(
        self, livekit_call_id: str | None = None, *, timeout: float = 15.0
    ) -> ReceivedCall:
        """Block until a call-ended for ``livekit_call_id`` (any call if None) is stitched.

        Raises ``TimeoutError`` describing what was received so far.

        Example::

            call = server.wait_for_call("RM_abc", timeout=5)
        """

        what = "any call" if livekit_call_id is None else repr(livekit_call_id)
        ready = functools.partial(self._store.finished_call, livekit_call_id)
        return self._wait(ready, timeout, f"no call-ended for {what}")

    def wait_for_calls(self, n: int, *, timeout: float = 15.0) -> list[ReceivedCall]:
        """Block until ``n`` calls have ended; returns the first ``n`` in order of ending."""

        def ready() -> list[ReceivedCall] | None:
            ids = self._store.ended_ids()[:n]
            if len(ids) < n:
                return None
            return [call for call in map(self._store.received, ids) if call is not None]

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
        with self._cond:
            return [replace(r, headers=dict(r.headers)) for r in self._requests]

    @property
    def violations(self) -> list[str]:
        """Every contract violation seen, human-readable, in order."""
        return self._ingest.violations

    @property
    def put_header_violations(self) -> int:
        """Chunk PUTs that arrived carrying ``x-roark-api-key`` or ``Authorization``."""
        with self._cond:
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
        with self._cond:
            self._store.reset()
            self._ingest.reset()
            self._requests.clear()
            self._put_header_violations = 0
            self._cond.notify_all()

    # ---------------------------------------------------------------- internals: waiting

    def _wait(self, ready: Callable[[], _T | None], timeout: float, what: str) -> _T:
        result = self._store.wait(ready, timeout)
        if result is None:
            raise TimeoutError(self._describe(f"{what} within {timeout} s"))
        return result

    def _describe(self, headline: str) -> str:
        with self._cond:
            calls = "; ".join(self._store.summaries()) or "none"
            recent = ", ".join(
                f"{r.method} {r.path} -> {r.status if r.status is not None else r.fault or '...'}"
                for r in self._requests[-8:]
            )
            parts = [
                f"{headline}.",
                f"Calls received: {calls}.",
                f"{len(self._requests)} request(s)" + (f", last: {recent}." if recent else "."),
            ]
            violations = self._ingest.violations
            if violations:
                parts.append("Violations: " + " | ".join(violations[-10:]))
            if self._base_url is None:
                parts.append("The server was never started.")
            return " ".join(parts)

    # ---------------------------------------------------------------- internals: requests

    def _serve(self, h: RequestHandler) -> None:
        mono = time.monotonic()
        path = urlsplit(h.path).path
        headers = {name.lower(): value for name, value in h.headers.items()}
        record = self._log_request(h.command, path, headers)

        body, problem = h.read_body()
        if body is None:
            if problem is not None:
                status, reason = problem
                self._ingest.violation(f"{h.command} {path}: {reason}")
                self._answer(h, record, error_reply(status, reason))
            return
        record.body_size = len(body)

        if record.endpoint == "put" and any(name in headers for name in KEY_HEADERS):
            # Counted on arrival, faults or not: the key already left for the storage host.
            with self._cond:
                self._put_header_violations += 1
            self._ingest.violation(
                f"PUT {STORAGE_PREFIX}...: chunk upload carried a Roark auth header "
                "(x-roark-api-key/Authorization must never go to the storage host)"
            )
        if self._apply_faults(h, record):
            return
        self._answer(h, record, self._ingest.handle(h.command, path, headers, body, mono))

    def _log_request(self, method: str, path: str, headers: dict[str, str]) -> RequestRecord:
        key = self._ingest.api_key
        # a short key would match unrelated header values; the named headers are always hidden
        leaky = len(key) >= 8
        redacted = {
            name: _REDACTED if name in KEY_HEADERS or (leaky and key in value) else value
            for name, value in headers.items()
        }
        record = RequestRecord(
            method=method,
            path=path,
            endpoint=classify(method, path),
            status=None,
            headers=redacted,
            received_at=time.time(),
        )
        with self._cond:
            self._requests.append(record)
            self._cond.notify_all()
        return record

    def _apply_faults(self, h: RequestHandler, record: RequestRecord) -> bool:
        """Delay, hang, drop or fail the request as the faults say; True if it is done."""
        plan: Plan = self._faults.draw(record.endpoint)
        if plan.latency > 0:
            self._set_fault(record, "latency")
            self._stopping.wait(plan.latency)
        if plan.hang is not None:
            self._set_fault(record, "hang")
            while not plan.hang.wait(0.1) and not self._stopping.is_set():
                pass
            h.close_connection = True
            return True
        if plan.action == "drop" or self._stopping.is_set():
            if plan.action == "drop":
                self._set_fault(record, "drop")
            h.close_connection = True
            return True
        if plan.action == "error":
            self._set_fault(record, "error")
            extra = {} if plan.retry_after is None else {"Retry-After": f"{plan.retry_after:g}"}
            if 300 <= plan.status < 400:
                # like a proxy that moved the API (plain HTTP to HTTPS, another host or path)
                extra["Location"] = "https://" + h.headers.get("Host", self._host) + h.path
            self._answer(h, record, error_reply(plan.status, "injected fault", extra))
            return True
        return False

    def _set_fault(self, record: RequestRecord, fault: str | None) -> None:
        with self._cond:
            record.fault = fault
            self._cond.notify_all()

    def _answer(self, h: RequestHandler, record: RequestRecord, reply: Reply) -> None:
        # Logged before sending, so a client that has its answer also finds it in the log.
        with self._cond:
            record.status = reply.status
            self._cond.notify_all()
        h.send_reply(reply)
