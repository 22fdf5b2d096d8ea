"""An agent with async tools: tools that report progress with ``ctx.update()`` and end later.

A tool that calls ``ctx.update()`` hands its first update to the LLM as the call's result
and goes on in the background; LiveKit adds its later updates and its real return value
(or its error) to the history as ``<call id>_update_N`` / ``<call id>_final`` function
call and output pairs and emits ``tool_execution_updated`` for them, not
``function_tools_executed``. ``ParcelAgent``'s ``track_parcel`` ends with a result
``track_seconds`` after its update, ``request_refund`` with a ``ToolError`` after
``refund_seconds``.
"""

from __future__ import annotations

import asyncio

from livekit.agents import RunContext, function_tool
from livekit.agents.llm import ToolError

from .agent import SupportAgent

__all__ = ["ParcelAgent"]


class ParcelAgent(SupportAgent):
    """A support agent whose parcel tools are async (they update, then end later).

    Example::

        call = ScriptedCall(script, tools_agent=ParcelAgent)
    """

    track_seconds = 2.4
    """Seconds ``track_parcel`` works after its first update."""
    refund_seconds = 0.1
    """Seconds ``request_refund`` works after its first update."""

    @function_tool
    async def track_parcel(self, ctx: RunContext, order_id: str) -> str:
        """Find where an order's parcel is (takes a moment).

        Args:
            order_id: The order number.
        """
        await ctx.update(f"Tracking the parcel of order {order_id}.")
        await asyncio.sleep(self.track_seconds)
        return f"The parcel of order {order_id} is in Lyon."

    @function_tool
    async def request_refund(self, ctx: RunContext, order_id: str) -> str:
        """Refund an order (takes a moment).

        Args:
            order_id: The order number.
        """
        await ctx.update(f"Asking for a refund of order {order_id}.")
        await asyncio.sleep(self.refund_seconds)
        raise ToolError(f"Order {order_id} was already refunded.")
