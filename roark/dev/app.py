"""The ``roark dev`` web app: the contract's endpoints and the viewer on one port.

The contract's requests go to the same :class:`~roark.testing.server.ingest.Ingest` as the
test fixture's, so a client gets the same answers and errors here as in its tests. The
viewer's pages are static files; its API serves JSON, the waveform peaks, and the recording
and raw events as files, through aiohttp's ``FileResponse``, which answers range requests
(206, ``If-Range``, 416): the browser streams and seeks the audio without loading it whole.

Threading: handlers run on the server's event loop; anything that touches the store (SQLite,
files, stitching a call that just ended) runs in the app's thread pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from ..testing.server.contract import (
    EVENT_PATH,
    STORAGE_PREFIX,
    UPLOAD_URL_PATH,
    framing_problem,
)
from ..testing.server.ingest import Ingest
from ..testing.server.replies import Reply, error_reply
from . import views
from .store import FolderStore

STATIC_DIR = Path(__file__).with_name("static")
LONG_POLL_S = 20.0
_T = TypeVar("_T")


def _response(reply: Reply) -> web.Response:
    return web.Response(
        status=reply.status,
        body=reply.body,
        content_type=reply.content_type,
        headers=reply.headers,
    )


class ViewerApp:
    """The aiohttp application over a store and the contract's endpoints."""

    def __init__(self, store: FolderStore, ingest: Ingest) -> None:
        self.store = store
        self.ingest = ingest
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="roark-dev")
        self._version = 0
        self._changed: asyncio.Event | None = None
        self.app = web.Application(client_max_size=2**40)  # the contract caps bodies itself
        self._routes()
        self._closing = False
        self.app.on_shutdown.append(self._wake_pollers)
        self.app.on_cleanup.append(self._close)

    def _routes(self) -> None:
        r = self.app.router
        for path in (EVENT_PATH, UPLOAD_URL_PATH, STORAGE_PREFIX + "{token:.*}"):
            r.add_route("*", path, self.contract)
        r.add_get("/", self.page)
        r.add_get("/calls/{key}", self.page)
        r.add_get("/api/calls", self.calls)
        r.add_get("/api/calls/{key}", self.call)
        r.add_get("/api/calls/{key}/peaks", self.peaks)
        r.add_get("/api/calls/{key}/recording.wav", self.recording)
        r.add_get("/api/calls/{key}/{kind:call-started|call-ended}.json", self.raw_event)
        r.add_static("/static/", STATIC_DIR)

    async def _wake_pollers(self, _app: web.Application) -> None:
        self._closing = True
        self._bump()  # long polls answer now rather than hold the shutdown up

    async def _close(self, _app: web.Application) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _bump(self) -> None:
        self._version += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # ---------------------------------------------------------------- the contract

    async def contract(self, request: web.Request) -> web.StreamResponse:
        mono = time.monotonic()
        path = request.rel_url.raw_path
        headers = {name.lower(): value for name, value in request.headers.items()}
        problem = framing_problem(
            request.method, headers.get("content-length"), headers.get("transfer-encoding")
        )
        if problem is not None:
            status, reason = problem
            self.ingest.violation(f"{request.method} {path}: {reason}")
            response = _response(error_reply(status, reason))
            response.force_close()
            return response
        body = await request.read()
        try:
            reply = await self._run(self.ingest.handle, request.method, path, headers, body, mono)
        finally:
            self._bump()
        return _response(reply)

    # ---------------------------------------------------------------- the viewer

    async def page(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def calls(self, request: web.Request) -> web.Response:
        """The calls list (``?agent=``, ``?call=``: only theirs); with ``?after=<version>`` it
        waits for a change first."""
        after = request.query.get("after")
        if after is not None and after == str(self._version):
            if self._changed is None:
                self._changed = asyncio.Event()
            try:
                await asyncio.wait_for(self._changed.wait(), LONG_POLL_S)
            except asyncio.TimeoutError:
                pass
        if self._closing:
            raise web.HTTPServiceUnavailable(text="roark dev is stopping")
        agent = request.query.get("agent") or None
        call = request.query.get("call") or None  # one call's row: what its open page waits on
        data = await self._run(views.calls_list, self.store, agent, call)
        data["version"] = self._version
        return web.json_response(data)

    async def call(self, request: web.Request) -> web.Response:
        version = self._version  # before reading: a change meanwhile wakes a poll at once
        page = await self._run(views.call_page, self.store, request.match_info["key"])
        if page is None:
            raise web.HTTPNotFound(text="no such call")
        page["version"] = version
        return web.json_response(page)

    def _call_file(self, key: str, name: str) -> Path:
        call_id = self.store.call_id_of(key)
        path = self.store.call_folder(call_id) / name if call_id is not None else None
        if path is None or not path.is_file():
            raise web.HTTPNotFound(text=f"no {name} for this call")
        return path

    async def peaks(self, request: web.Request) -> web.StreamResponse:
        path = await self._run(self._call_file, request.match_info["key"], "peaks.u8")
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    async def recording(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        path = await self._run(self._call_file, key, "recording.wav")
        headers = {"Content-Type": "audio/wav"}
        if "download" in request.query:
            headers["Content-Disposition"] = f'attachment; filename="{key}.wav"'
        return web.FileResponse(path, headers=headers)

    async def raw_event(self, request: web.Request) -> web.StreamResponse:
        key, kind = request.match_info["key"], request.match_info["kind"]
        call_id = await self._run(self.store.call_id_of, key)
        path = await self._run(self.store.raw_event, call_id, kind) if call_id else None
        if path is None:
            raise web.HTTPNotFound(text=f"no {kind} for this call")
        return web.FileResponse(
            path,
            headers={
                "Content-Type": "application/json",
                "Content-Disposition": f'attachment; filename="{key}-{kind}.json"',
            },
        )
