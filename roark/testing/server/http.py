"""The HTTP plumbing of the test server: a threading server and its request handler.

The handler reads the request exactly as a strict storage host or API gateway would
(Content-Length required, chunked uploads refused, a size cap) and hands it to the
server's ``serve_request``; it knows nothing of the contract.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .contract import CHUNKED_REFUSED, MAX_BODY, framing_problem
from .replies import Reply

logger = logging.getLogger(__name__)


class HTTPServer(ThreadingHTTPServer):
    """Serves each connection in a daemon thread and keeps track of open connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], serve_request: Callable[[RequestHandler], None]
    ) -> None:
        self.serve_request = serve_request
        self._connections: set[socket.socket] = set()
        self._connections_changed = threading.Condition()
        super().__init__(address, RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver calls this from inside its except block
        logger.debug("error while serving %s: %r", client_address, sys.exc_info()[1])

    def track(self, conn: socket.socket) -> None:
        with self._connections_changed:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_changed:
            self._connections.discard(conn)
            self._connections_changed.notify_all()

    def shutdown_connections(self) -> None:
        """Shut down open connections: idle keep-alive ones would otherwise keep answering
        after the server stopped."""
        with self._connections_changed:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def wait_connections_closed(self, deadline: float) -> None:
        """Wait until every connection's thread let go, or ``deadline`` (monotonic)."""
        with self._connections_changed:
            while self._connections and time.monotonic() < deadline:
                self._connections_changed.wait(min(0.05, max(0.0, deadline - time.monotonic())))


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalRoark/1.0"
    sys_version = ""
    server: HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle plus the client's
        # delayed ACK costs ~40 ms per keep-alive request.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_POST(self) -> None:
        self.server.serve_request(self)

    do_PUT = do_GET = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def read_body(self) -> tuple[bytes | None, tuple[int, str] | None]:
        """Read exactly Content-Length bytes, or return (None, (status, reason)) to refuse."""
        raw = self.headers.get("Content-Length")
        problem = framing_problem(self.command, raw, self.headers.get("Transfer-Encoding"))
        if problem is not None and problem[1] == CHUNKED_REFUSED and not self._drain_chunked():
            problem = (400, "malformed chunked body")
        # Storage hosts refuse chunked uploads; the body was drained so the client reads the 411
        if problem is not None:
            self.close_connection = True
            return None, problem
        length = int(raw) if raw is not None else 0
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
                if total > MAX_BODY or len(self.rfile.read(size)) != size:
                    return False
                self.rfile.readline(1024)
        except ValueError:
            return False

    def send_reply(self, reply: Reply) -> None:
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
