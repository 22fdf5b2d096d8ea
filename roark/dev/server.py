"""DevServer: the local Roark with a viewer, over a folder of calls, in a thread of its own.

Example::

    with DevServer(".roark") as server:
        roark.configure(api_key=server.api_key, base_url=server.base_url)
        ...                                   # run an observed call
        call = server.wait_for_call(timeout=20)   # the first call to end since start()
        print(server.call_url(call.livekit_call_id))

One server serves a folder at a time: a second one on the same folder (in this process or
another) raises :class:`~roark.dev.store.FolderInUseError` naming the holder.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from ..testing.server.contract import safe_name
from ..testing.server.ingest import Ingest
from ..testing.server.records import ReceivedCall
from .app import ViewerApp
from .store import FolderStore

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

DEFAULT_FOLDER = ".roark"
_KEY_FILE = "api-key"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_key(folder: Path) -> str:
    """The folder's own API key: made once, kept in ``folder/api-key`` (readable by you
    only), so the variables you set stay valid across restarts."""
    path = folder / _KEY_FILE
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if not key:
        key = "rk-local-" + secrets.token_urlsafe(18)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
    return key


def _prepare_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        # recordings and keys have no place in the user's repository
        ignore.write_text("*\n")


class DevServer:
    """The contract's endpoints and the viewer on one port, calls kept in ``folder``.

    ``host`` is 127.0.0.1 unless you ask otherwise; ``api_key`` defaults to the folder's own
    key (see :func:`local_key`). ``on_call_ended`` is called with each call once stitched.
    Raises :class:`~roark.dev.store.FolderInUseError` when another server has the folder.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str] = DEFAULT_FOLDER,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        on_call_ended: Callable[[ReceivedCall], None] | None = None,
    ) -> None:
        folder = Path(folder).resolve()
        _prepare_folder(folder)
        self.store = FolderStore(folder)
        try:
            key = api_key or local_key(folder)
        except BaseException:
            self.store.close()
            raise
        self.ingest = Ingest(self.store, api_key=key, on_call_ended=on_call_ended)
        # calls finished before this server started are the folder's history, not news
        self._seen_finished = self.store.last_finished()
        self._host, self._port = host, port
        self._base_url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def folder(self) -> Path:
        return self.store.folder

    @property
    def api_key(self) -> str:
        return self.ingest.api_key

    @property
    def base_url(self) -> str:
        """Where the agent sends its calls, and where the viewer is."""
        if self._base_url is None:
            raise RuntimeError("DevServer is not started; call start() first")
        return self._base_url

    def call_url(self, call_id: str) -> str:
        """The viewer's page of one call."""
        return f"{self.base_url}/calls/{quote(safe_name(call_id))}"

    def start(self) -> DevServer:
        """Bind and serve in a daemon thread; raises ``OSError`` if the port is taken."""
        started = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # handed to start()'s caller
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="roark-dev", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self.store.close()
            raise failure[0]
        return self

    async def _listen(self) -> None:
        app = ViewerApp(self.store, self.ingest)
        self._runner = web.AppRunner(app.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, shutdown_timeout=1.0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        url_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        if ":" in url_host:
            url_host = f"[{url_host}]"
        self._base_url = self.ingest.base_url = f"http://{url_host}:{port}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close the index and release the folder. Idempotent."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            self.store.close()  # never started: the folder is released all the same
            return
        if self._runner is not None:
            closing = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop)
            try:
                closing.result(timeout)
            except Exception:  # a slow client: stop the loop all the same
                logger.debug("roark dev: cleanup did not finish", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self.store.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_for_call(self, call_id: str | None = None, *, timeout: float = 15.0) -> ReceivedCall:
        """Block until a call-ended for ``call_id`` is stitched (at once if it already was).

        With None: the next call to end since this server started, in the order they ended;
        each such call is returned once, so successive waits return successive calls, and a
        call kept in the folder from an earlier run is never taken for a new one.
        """
        if call_id is not None:
            found = self.store.wait(lambda: self.store.finished_call(call_id), timeout)
        else:
            found = self.store.wait(self._next_call, timeout)
        if found is None:
            what = "any new call" if call_id is None else repr(call_id)
            raise TimeoutError(f"no call-ended for {what} within {timeout} s")
        return found

    def _next_call(self) -> ReceivedCall | None:
        # store.wait() calls this under the store's lock: concurrent waiters get each call once
        news = self.store.finished_after(self._seen_finished)
        if news is None:
            return None
        self._seen_finished, call = news
        return call
