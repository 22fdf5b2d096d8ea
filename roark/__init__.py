"""roark: every call of a LiveKit Agents voice agent, observable on Roark.

Example::

    import roark

    roark.configure()  # reads ROARK_API_KEY and the other ROARK_* variables

    @roark.observe(agent_id="support-bot-v3")
    async def entrypoint(ctx: JobContext) -> None:
        ...
"""

from ._client import configure, flush, shutdown
from ._config import ConfigurationError, Settings
from ._loop.call import Call
from ._loop.observe import current_call, observe, observe_session
from ._version import __version__

__all__ = [
    "Call",
    "ConfigurationError",
    "Settings",
    "__version__",
    "configure",
    "current_call",
    "flush",
    "observe",
    "observe_session",
    "shutdown",
]
