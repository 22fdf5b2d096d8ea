"""The example agent: a support agent with an order-lookup function tool.

``SupportAgent`` is a plain LiveKit ``Agent``: it greets the caller when it enters and
its ``lookup_order`` tool succeeds for an all-digit order id and raises ``ToolError``
otherwise, so a script can exercise a tool call, its result and a tool error. A test
passes it to ``session.start(agent=...)``, or subclasses it and gives the subclass to
:class:`~roark.testing.scripted.ScriptedCall` as ``tools_agent``.
"""

from __future__ import annotations

import json

from livekit.agents import Agent, function_tool
from livekit.agents.llm import ToolError

__all__ = ["SupportAgent"]


class _JSONDict(dict):  # type: ignore[type-arg]
    # LiveKit stringifies a tool's return value with str(); render dicts as JSON instead
    def __str__(self) -> str:
        return json.dumps(self)


_SUPPORT_INSTRUCTIONS = (
    "You are a friendly customer support agent for an online shop. "
    "Help callers find out where their orders are. Use lookup_order to check an order."
)


class SupportAgent(Agent):
    """Example support agent with an order-lookup tool; says ``greeting`` when it enters.

    ``lookup_order`` returns ``{"order_id": ..., "status": "shipped"}`` (rendered as JSON
    in the tool output) for an all-digit id and raises ``ToolError`` otherwise.

    Example::

        await session.start(agent=SupportAgent(greeting="Hello! How can I help you today?"))
    """

    def __init__(
        self, *, greeting: str | None = None, instructions: str = _SUPPORT_INSTRUCTIONS
    ) -> None:
        super().__init__(instructions=instructions)
        self.greeting = greeting

    async def on_enter(self) -> None:
        if self.greeting:
            self.session.say(self.greeting)

    @function_tool
    async def lookup_order(self, order_id: str) -> dict[str, str]:
        """Look up the shipping status of an order.

        Args:
            order_id: The order number (digits only).
        """
        order_id = order_id.strip()
        if not order_id.isdigit():
            raise ToolError(f"Unknown order id {order_id!r}: order ids are digits only.")
        return _JSONDict(order_id=order_id, status="shipped")
