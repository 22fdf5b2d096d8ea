"""roark: every call of a LiveKit Agents voice agent, observable on Roark.

Example::

    import roark

    roark.configure()  # reads ROARK_API_KEY and the other ROARK_* variables

    @roark.observe(agent_id="support-bot-v3")
    async def entrypoint(ctx: JobContext) -> None:
        ...
"""

from ._version import __version__
from .call import Call
from .client import Client, configure, flush, shutdown
from .config import ConfigurationError, Settings
from .observe import current_call, observe, observe_session

__all__ = [
    "Call",
    "Client",
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
