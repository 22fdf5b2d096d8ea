"""pytest fixtures for testing an agent observed by roark, against a local Roark.

Installed with the package (entry point ``pytest11``), so in a user's tests::

    def test_my_agent_call(roark_server):
        asyncio.run(run_my_agent_call())          # the entrypoint is @roark.observe'd
        call = roark_server.wait_for_call(timeout=20)
        assert [t["role"] for t in call.transcript] == ["assistant", "user", "assistant"]
        assert call.recording.shape[1] == 2       # left = caller, right = agent

``roark_server`` is a started :class:`~roark.testing.server.LocalRoark` on 127.0.0.1 that
roark is configured against for the test (spool and recordings in the test's temporary
folder); the previous configuration is restored afterwards. ``roark_settings`` (override it
in a test module) gives extra :func:`roark.configure` arguments.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import observed_by_local_roark
from .server import LocalRoark


@pytest.fixture
def roark_settings() -> dict[str, Any]:
    """Extra ``roark.configure()`` arguments for ``roark_server`` (none by default)."""
    return {}


@pytest.fixture
def roark_server(tmp_path: Path, roark_settings: dict[str, Any]) -> Iterator[LocalRoark]:
    """A local, contract-faithful Roark that roark delivers to during this test."""
    with observed_by_local_roark(tmp_path, **roark_settings) as server:
        yield server
