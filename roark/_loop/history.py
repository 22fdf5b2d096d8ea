"""The session history's items that no event delivered (asyncio side).

``function_tools_executed`` carries a step's tool calls and their first results; an async
tool (one that reports progress with ``ctx.update()``) adds its later updates and its real
return value, or its error, to ``session.history`` afterwards as ``<call id>_update_N`` and
``<call id>_final`` function call/output pairs, announced only by ``tool_execution_updated``
(livekit-agents 1.7 and 1.8: ``_ToolExecutor._enqueue_reply``), and a realtime model's tool
items are upserted with no event at all. An agent's configuration (its instructions and
tools when it starts, ``update_instructions``, ``update_tools``) is inserted as an
``AgentConfigUpdate`` item with no event either. The history is looked at on each item added,
each tool update and once more at the call's end; each look reads only the items added since
the last one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .._handoff.records import AgentConfig, ToolCall, ToolOutput, Tools

# LiveKit's ids of an async tool's later items: the call's own id with a suffix
_LATER_ITEM = re.compile(r"^(?P<base>.+?)(_final|_update_\d+)$")
_TOOL_ITEMS = ("function_call", "function_call_output")


class ToolLedger:
    """Which tool items were posted, and by which agent each call was made."""

    def __init__(self) -> None:
        self._posted: set[str | tuple[str, str]] = set()
        self._agents: dict[str, str | None] = {}

    def fresh(self, item: Any) -> bool:
        """True the first time the tool item ``item`` is seen: it is to be posted.

        Items are told apart by their history id, not their call id: a model may use a call
        id again later in the session (one that numbers its calls per response), and each
        call is an item of the history of its own.
        """
        key = getattr(item, "id", None) or (item.type, item.call_id)
        if key in self._posted:
            return False
        self._posted.add(key)
        return True

    def made_by(self, item: Any, agent_id: str | None) -> str | None:
        """The agent of the tool item ``item``: the one that made its call (an async tool's
        later items: its base call's), else ``agent_id`` (the agent running now)."""
        call_id = item.call_id
        later = _LATER_ITEM.match(call_id)
        base = later.group("base") if later is not None else call_id
        if base not in self._agents:
            base = call_id
        if item.type == "function_call" and base == call_id:
            # a call id used again is a call of its own: what follows it is the new one's
            self._agents[call_id] = agent_id
            return agent_id
        return self._agents.get(base, agent_id)

    def records(self, items: list[Any], at: Callable[[Any], float], agent_id: str | None) -> Tools:
        """The tool items among ``items`` not posted yet, as one record (empty: nothing to
        post); ``at`` places an item on the call's clock."""
        calls: list[ToolCall] = []
        outputs: list[ToolOutput] = []
        for item in items:
            kind = getattr(item, "type", None)
            if kind not in _TOOL_ITEMS or not self.fresh(item):
                continue
            agent = self.made_by(item, agent_id)
            if kind == "function_call":
                calls.append(ToolCall(item.call_id, item.name, item.arguments, at(item), agent))
            else:
                outputs.append(
                    ToolOutput(item.call_id, item.output, bool(item.is_error), at(item), agent)
                )
        return Tools(calls=calls, outputs=outputs)


class HistoryFollower:
    """Reads the items a session's history gained since the last look."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._count = 0

    def new(self, items: list[Any], *, whole: bool = False) -> list[tuple[int, Any]]:
        """The items added to ``items`` since the last look (all of them with ``whole``) with
        their positions, in the history's order."""
        # LiveKit inserts items by creation time, mostly at the end: walking back from the
        # end finds the new ones without reading the whole history
        missing = len(items) - self._count
        self._count = len(items)
        if whole or missing < 0:
            missing = len(items)
        found = []
        for index in range(len(items) - 1, -1, -1):
            if missing <= 0:
                break
            item = items[index]
            if item.id not in self._seen:
                self._seen.add(item.id)
                found.append((index, item))
                missing -= 1
        found.reverse()
        return found


def agent_configs(
    items: list[Any], new: list[tuple[int, Any]], at: Callable[[Any], float]
) -> list[AgentConfig]:
    """The ``AgentConfigUpdate`` items among ``new``, each named by the agent whose start or
    update it records: the one the last handoff before it in ``items`` went to."""
    configs = []
    for index, item in new:
        if getattr(item, "type", None) != "agent_config_update":
            continue
        agent = next(
            (
                items[i].new_agent_id
                for i in range(index - 1, -1, -1)
                if getattr(items[i], "type", None) == "agent_handoff"
            ),
            None,
        )
        configs.append(
            AgentConfig(
                at=at(item),
                agent_id=agent if isinstance(agent, str) and agent else None,
                instructions=item.instructions if isinstance(item.instructions, str) else None,
                tools_added=_names(item.tools_added),
                tools_removed=_names(item.tools_removed),
            )
        )
    return configs


def _names(tools: Any) -> tuple[str, ...]:
    return tuple(sorted(str(name) for name in tools or ()))
