"""Our own tests use the fixtures users get: the ``roark`` pytest plugin.

Installed, the package registers it through its ``pytest11`` entry point; from a bare source
tree it is registered here.
"""

from __future__ import annotations

import pytest

import roark.testing.pytest_plugin as roark_plugin


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.is_registered(roark_plugin):
        config.pluginmanager.register(roark_plugin, "roark")
