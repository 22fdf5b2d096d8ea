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
from roark._handoff.records import Begin, CallDetails, End, Message
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
            # a call with something in it (an empty one is not sent)
            now = time.time()
            channel.post(Message("user", "Hello?", now, now, interrupted=False, language=None))
            channel.post(End(at=time.time(), reason="agent-ended"))
            assert channel.delivered.result(timeout=30) is True
        finally:
            worker.stop(1.0)
    assert key not in caplog.text
    assert key not in repr(settings) and key not in repr(worker.transport)
    assert roark_server.wait_for_call("RM_secret", timeout=5).ended is not None


class _Echoing(BaseHTTPRequestHandler):
    """Refuses the data with a 422 whose body quotes the request's key, at length."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self.headers.get("x-roark-api-key", "")
        body = (
            f'{{"error": {{"message": "bad \'agentId\' for key {key}", "trace": "{"x" * 5000}"}}}}'
        )
        self.send_response(422)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_a_quoted_answer_is_cut_short_and_scrubbed_of_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echoing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    key = "rk-live-7f3a9c0d21"
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    settings = resolve({"api_key": key, "base_url": base_url, "spool_dir": tmp_path}, env={})
    try:
        with caplog.at_level(logging.DEBUG, logger="roark"):
            worker = Worker(settings)
            try:
                channel = worker.open_call()
                details = CallDetails(agent_id="a", is_test=True)
                channel.post(
                    Begin(at=time.time(), details=details, sample_rate=None, call_id="RM_q")
                )
                now = time.time()  # a call with something in it (an empty one is not sent)
                channel.post(Message("user", "Hi.", now, now, interrupted=False, language=None))
                channel.post(End(at=time.time(), reason="agent-ended"))
                assert channel.delivered.result(timeout=30) is False  # both events refused
            finally:
                worker.stop(1.0)
    finally:
        server.shutdown()
        server.server_close()
    assert key not in caplog.text
    refusals = [r.getMessage() for r in caplog.records if "refused by Roark" in r.getMessage()]
    assert len(refusals) == 2
    for message in refusals:
        assert "RM_q" in message and "field agentId" in message and "[key]" in message
        assert len(message) < 400  # the 5000-character trace is not in it
