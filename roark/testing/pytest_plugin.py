"""pytest fixtures for testing an agent observed by roark, against a local Roark.

Installed with the package (entry point ``pytest11``), so in a user's tests::

    def test_my_agent_call(roark_server, roark_client):
        asyncio.run(run_my_agent_call())          # the agent's entrypoint is @roark.observe'd
        call = roark_server.wait_for_call(timeout=20)
        assert [t["role"] for t in call.transcript] == ["assistant", "user", "assistant"]
        assert call.recording.shape[1] == 2

``roark_server`` is a started :class:`~roark.testing.server.LocalRoark` on 127.0.0.1;
``roark_client`` points roark at it for the test (spool in the test's temporary folder) and
restores the previous configuration afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .. import client as _client_module
from ..client import Client, configure
from .server import LocalRoark


@pytest.fixture
def roark_server(tmp_path: Path) -> Iterator[LocalRoark]:
    """A local, contract-faithful Roark for this test."""
    server = LocalRoark(recordings_dir=tmp_path / "roark-recordings").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def roark_client(roark_server: LocalRoark, tmp_path: Path) -> Iterator[Client]:
    """roark configured against ``roark_server`` for this test; restored afterwards."""
    previous = _client_module.get_client()
    client = configure(
        api_key=roark_server.api_key,
        base_url=roark_server.base_url,
        enabled=True,
        spool_dir=tmp_path / "roark-spool",
    )
    try:
        yield client
    finally:
        _client_module.shutdown(timeout=5.0)
        if previous is not None:
            _client_module.install(previous.settings)
