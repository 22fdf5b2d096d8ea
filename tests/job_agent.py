"""An agent module as a user writes it, for LiveKit's job processes to import.

``roark.configure()`` runs at import (from the ``ROARK_*`` variables), in the worker process
and again in every job process LiveKit starts; the entrypoint is observed. The call itself is
the scripted one of ``tests/job_calls.py``; ``tests/test_job_processes.py`` runs this module
through LiveKit's own process pool with fake jobs.
"""

from __future__ import annotations

from livekit.agents import JobContext

import roark

from .job_calls import prewarm, run_scripted_call

__all__ = ["AGENT_ID", "entrypoint", "prewarm"]

AGENT_ID = "order-desk"

roark.configure()


@roark.observe(agent_id=AGENT_ID, agent_name="Order desk", tier="gold")
async def entrypoint(ctx: JobContext) -> None:
    await run_scripted_call(ctx)
