"""The session history's tool items that no event delivered (asyncio side).

``function_tools_executed`` carries a step's tool calls and their first results; an async
tool (one that reports progress with ``ctx.update()``) adds its later updates and its real
return value, or its error, to ``session.history`` afterwards as ``<call id>_update_N`` and
``<call id>_final`` function call/output pairs, announced only by ``tool_execution_updated``
(livekit-agents 1.7 and 1.8: ``_ToolExecutor._enqueue_reply``), and a realtime model's tool
items are upserted with no event at all. The history is looked at on each tool update and
once more at the call's end; each look reads only the items added since the last one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .._handoff.records import ToolCall, ToolOutput, Tools

# LiveKit's ids of an async tool's later items: the call's own id with a suffix
_LATER_ITEM = re.compile(r"^(?P<base>.+?)(_final|_update_\d+)$")
_TOOL_ITEMS = ("function_call", "function_call_output")


class ToolLedger:
    """Which tool items were posted, and by which agent each call was made."""

    def __init__(self) -> None:
        self._posted: set[tuple[str, str]] = set()
        self._agents: dict[str, str | None] = {}

    def fresh(self, kind: str, call_id: str) -> bool:
        """True the first time ``(kind, call_id)`` is seen: it is to be posted."""
        key = (kind, call_id)
        if key in self._posted:
            return False
        self._posted.add(key)
        return True

    def made_by(self, call_id: str, agent_id: str | None) -> str | None:
        """The agent of ``call_id``: its base call's for an async tool's later item."""
        later = _LATER_ITEM.match(call_id)
        if later is not None and later.group("base") in self._agents:
            agent_id = self._agents[later.group("base")]
        self._agents.setdefault(call_id, agent_id)
        return agent_id


class HistoryFollower:
    """Reads the tool items a session's history gained since the last look."""

    def __init__(self, ledger: ToolLedger, at: Callable[[Any], float]) -> None:
        self._ledger = ledger
        self._at = at  # an item's created_at on the call's clock
        self._seen: set[str] = set()
        self._count = 0

    def unposted(self, items: list[Any], agent_id: str | None, *, whole: bool = False) -> Tools:
        """The tool items among those added to ``items`` since the last look (all of them
        with ``whole``) that were not posted yet, as one record (empty: nothing to post)."""
        calls: list[ToolCall] = []
        outputs: list[ToolOutput] = []
        for item in self._new(items, whole):
            kind = getattr(item, "type", None)
            if kind not in _TOOL_ITEMS or not self._ledger.fresh(kind, item.call_id):
                continue
            agent = self._ledger.made_by(item.call_id, agent_id)
            if kind == "function_call":
                calls.append(
                    ToolCall(item.call_id, item.name, item.arguments, self._at(item), agent)
                )
            else:
                outputs.append(
                    ToolOutput(
                        item.call_id, item.output, bool(item.is_error), self._at(item), agent
                    )
                )
        return Tools(calls=calls, outputs=outputs)

    def _new(self, items: list[Any], whole: bool) -> list[Any]:
        # LiveKit inserts items by creation time, mostly at the end: walking back from the
        # end finds the new ones without reading the whole history
        missing = len(items) - self._count
        self._count = len(items)
        if whole or missing < 0:
            missing = len(items)
        found = []
        for item in reversed(items):
            if missing <= 0:
                break
            if item.id not in self._seen:
                self._seen.add(item.id)
                found.append(item)
                missing -= 1
        found.reverse()
        return found
