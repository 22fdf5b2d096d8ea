"""The transport keeps the key where it belongs: never on a redirect, in a log or a repr."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from roark._config import resolve
from roark._handoff.records import Begin, CallDetails, End
from roark._threads.transport import DestinationError, Transport
from roark._threads.worker import Worker
from roark.testing import LocalRoark


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request with a redirect to ``target`` and remembers what it got."""

    target = ""
    seen: list[dict[str, str]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).seen.append(dict(self.headers))
        if self.target:
            self.send_response(307)
            self.send_header("Location", self.target + self.path)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[tuple[str, list[dict[str, str]]]]:
    class Elsewhere(_Recorder):
        target = ""
        seen: list[dict[str, str]] = []

    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)

    class Redirector(_Recorder):
        target = f"http://127.0.0.1:{elsewhere.server_address[1]}"
        seen: list[dict[str, str]] = []

    redirector = ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    for server in (elsewhere, redirector):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{redirector.server_address[1]}", Elsewhere.seen
    finally:
        for server in (elsewhere, redirector):
            server.shutdown()
            server.server_close()


def test_a_redirect_is_never_followed_with_the_key(
    redirecting: tuple[str, list[dict[str, str]]], tmp_path: Path
) -> None:
    base_url, elsewhere_seen = redirecting
    settings = resolve({"api_key": "sk-secret-key", "base_url": base_url}, env={})
    transport = Transport(settings, threading.Event())
    with pytest.raises(DestinationError, match="HTTP 307 .* redirecting to"):
        transport.send_event({"event": "call-started"}, deadline=time.monotonic() + 5)
    assert elsewhere_seen == []
    transport.close()


def test_the_key_never_reaches_logs_or_reprs(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = roark_server.api_key
    settings = resolve(
        {"api_key": key, "base_url": roark_server.base_url, "spool_dir": tmp_path / "s"}, env={}
    )
    roark_server.set_faults(error_rate=0.5, drop_rate=0.2, seed=3)
    with caplog.at_level(logging.DEBUG):
        worker = Worker(settings)
        try:
            channel = worker.open_call()
            channel.post(
                Begin(
                    at=time.time(),
                    details=CallDetails(agent_id="a", is_test=True),
                    sample_rate=None,
                    call_id="RM_secret",
                ),
            )
            channel.post(End(at=time.time(), reason="agent-ended"))
            assert channel.delivered.result(timeout=30) is True
        finally:
            worker.stop(1.0)
    assert key not in caplog.text
    assert key not in repr(settings) and key not in repr(worker.transport)
    assert roark_server.wait_for_call("RM_secret", timeout=5).ended is not None
