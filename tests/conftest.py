"""Our own tests use the fixtures users get: the ``roark`` pytest plugin.

Installed, the package registers it through its ``pytest11`` entry point; from a bare source
tree it is registered here.
"""

from __future__ import annotations

import gc

import pytest

import roark.testing.pytest_plugin as roark_plugin


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.is_registered(roark_plugin):
        config.pluginmanager.register(roark_plugin, "roark")


def pytest_collection_finish(session: pytest.Session) -> None:
    # as LiveKit does in its job processes (livekit/agents/ipc/_preload_freeze.py): what the
    # imports made is never garbage, and leaving it to the collector makes each full
    # collection stall the event loop for 100 ms and more, which a call's audio would show
    gc.collect()
    gc.freeze()
