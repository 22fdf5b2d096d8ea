"""Test helpers for roark users: a local contract-faithful Roark, and scripted LiveKit parts.

Example::

    from roark.testing import observed_by_local_roark

    with observed_by_local_roark() as server:
        asyncio.run(run_my_observed_agent())
        call = server.wait_for_call(timeout=20)
        print(call.transcript)
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from .server import LocalRoark, ReceivedCall

__all__ = ["LocalRoark", "ReceivedCall", "observed_by", "observed_by_local_roark"]


class _Server(Protocol):
    api_key: str
    base_url: str


@contextlib.contextmanager
def observed_by(server: _Server, spool_dir: str | Path, **settings: Any) -> Iterator[None]:
    """Point roark at a started ``server`` (anything with ``api_key`` and ``base_url``);
    shut roark down and restore the previous configuration after."""
    from .. import _client as roark_client

    previous = roark_client.get_client()
    roark_client.configure(
        api_key=server.api_key,
        base_url=server.base_url,
        enabled=True,
        spool_dir=spool_dir,
        **settings,
    )
    try:
        yield
    finally:
        roark_client.shutdown(timeout=5.0)
        if previous is not None:
            roark_client.install(previous.settings)


@contextlib.contextmanager
def observed_by_local_roark(
    folder: str | Path | None = None, **settings: Any
) -> Iterator[LocalRoark]:
    """Start a local Roark and point roark at it; restore the previous configuration after.

    ``folder`` holds the spool and the recordings (a temporary folder by default); other
    keyword arguments go to :func:`roark.configure`.
    """
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="roark-test-"))
        folder = Path(folder)
        server = LocalRoark(recordings_dir=folder / "recordings").start()
        stack.callback(server.stop)
        spool_dir = settings.pop("spool_dir", folder / "spool")
        stack.enter_context(observed_by(server, spool_dir, **settings))
        yield server
