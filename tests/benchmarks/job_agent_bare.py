"""The agent module of ``tests/job_agent.py`` without roark: the benchmark's baseline.

The same entrypoint and scripted call in the same job processes, never observed; an idle
process of it holds no roark code (the scripted parts load with ``prewarm``'s default).
"""

from __future__ import annotations

from livekit.agents import JobContext

from ..job_calls import prewarm, run_scripted_call

__all__ = ["entrypoint", "prewarm"]


async def entrypoint(ctx: JobContext) -> None:
    await run_scripted_call(ctx)
