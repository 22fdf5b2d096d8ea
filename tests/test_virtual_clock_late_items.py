"""Stories under a test clock where LiveKit adds items long after they happened.

Under a frozen or jumping ``time.time()`` every LiveKit stamp is taken when roark sees it
(``test_virtual_clock``), and some items come late: the agent's generated greeting, cut off
by the caller's typed text, is added after that text; a tool that runs an ``AgentTask`` has its call
added only when its step ends, after the task's own tools; a quick tool of the same step has
its result added then too, though it ended before the task began. The session's own events
place them where they happened (the agent began speaking, the tool started, the tool ended).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from livekit.agents import JobContext, function_tool

from roark.testing import LocalRoark, observed_by_local_roark
from roark.testing.scripted import (
    CallScript,
    LLMReply,
    ScriptedCall,
    SupportAgent,
    ToolCallStep,
    UserTurn,
)

from .audio_checks import parse_iso
from .scenarios import ASK_STREET, AddressTask, Scenario, run_under_wall_clock
from .test_virtual_clock import VIRTUAL_START, VirtualWallClock

GREETING = "Hello, order desk. Today we have news about shipping times and returns for you."
TYPED = "Check order 4217 and my address."
STREET = "Rue de la Paix."
CONFIRMED = "Order 4217 has shipped to Rue de la Paix."
SCRIPT = CallScript(
    user_turns=[UserTurn(STREET, at=4.0, duration=0.8)],
    llm_replies=[
        LLMReply(GREETING),
        LLMReply(
            tool_calls=(
                ToolCallStep("lookup_order", {"order_id": "4217"}, "call_order"),
                ToolCallStep("confirm_address", {}, "call_address"),
            )
        ),
        LLMReply(tool_calls=(ToolCallStep("record_street", {"street": STREET}, "call_street"),)),
        LLMReply(CONFIRMED),
    ],
)
CLOCKS = {
    "frozen": lambda: VirtualWallClock(VIRTUAL_START),
    # runs with the real clock and jumps ahead a second every 0.4 s: roark tells it from a
    # system clock's steps only after a few jumps, when the quick tool has already ended
    "jumping": lambda: VirtualWallClock(VIRTUAL_START, every=0.4, jump=1.0, follow=True),
}
# what happened, in the order it happened
SPOKEN = [
    ("assistant", GREETING),
    ("user", TYPED),
    ("assistant", ASK_STREET),
    ("user", STREET),
    ("assistant", CONFIRMED),
]
TOOLS = [
    ("tool_call", "call_order"),
    ("tool_call", "call_address"),
    ("tool_result", "call_order"),
    ("tool_call", "call_street"),
    ("tool_result", "call_street"),
    ("tool_result", "call_address"),
]


class Desk(SupportAgent):
    async def on_enter(self) -> None:
        # a generated greeting: LiveKit adds a reply cut off by typed text after that text
        self.session.generate_reply()

    @function_tool
    async def confirm_address(self) -> str:
        """Confirm the caller's address."""
        return f"Address confirmed: {await AddressTask()}."


async def _body(ctx: JobContext, scenario: Scenario) -> None:
    assert scenario.call is not None
    session = scenario.session = scenario.call.build_session()
    added: list[tuple[str, str]] = scenario.seen.setdefault("added", [])
    updates: list[tuple[str, str]] = scenario.seen.setdefault("updates", [])
    session.on(
        "conversation_item_added",
        lambda ev: (
            added.append((ev.item.role, ev.item.text_content or ""))
            if ev.item.type == "message"
            else None
        ),
    )
    session.on("tool_execution_updated", lambda ev: updates.append(_tool_event(ev.update)))

    def typed() -> None:  # the caller types while the greeting plays
        session.interrupt()
        session.generate_reply(user_input=TYPED)

    await session.start(agent=Desk())
    # before the jumping clock has jumped often enough to be told from a stepped one
    asyncio.get_running_loop().call_later(0.5, typed)


def _tool_event(update: Any) -> tuple[str, str]:
    if update.type == "tool_call_started":
        return ("tool_call", update.function_call.call_id)
    return ("tool_result" if update.type == "tool_call_ended" else update.type, update.call_id)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Scenario]]:
    with observed_by_local_roark(tmp_path_factory.mktemp("late-items")) as server:
        yield {name: _run_under(server, name) for name in CLOCKS}


def _run_under(server: LocalRoark, name: str) -> Scenario:
    scenario = Scenario(name, ScriptedCall(SCRIPT, tools_agent=Desk))
    return run_under_wall_clock(server, scenario, CLOCKS[name](), _body)


@pytest.mark.parametrize("clock", list(CLOCKS))
def test_the_session_added_the_cut_greeting_and_the_tools_late(
    runs: dict[str, Scenario], clock: str
) -> None:
    # the premise, read from LiveKit: the greeting came after the text that cut it off, and
    # the tools started and ended in the order roark is to deliver them
    run = runs[clock]
    assert run.seen["added"][:2] == [("user", TYPED), ("assistant", GREETING)]
    assert [u for u in run.seen["updates"] if u[0].startswith("tool_")] == TOOLS
    assert run.session is not None
    cut = next(i for i in run.session.history.items if i.type == "message" and i.interrupted)
    assert cut.text_content == GREETING


@pytest.mark.parametrize("clock", list(CLOCKS))
def test_the_transcript_is_in_the_order_it_was_said(runs: dict[str, Scenario], clock: str) -> None:
    run = runs[clock]
    assert run.spoken() == SPOKEN
    assert run.got.transcript[0]["interrupted"] is True
    onsets = [t["audioOffsetMs"] for t in run.got.transcript]
    assert onsets == sorted(onsets) and len(set(onsets)) == len(onsets)


@pytest.mark.parametrize("clock", list(CLOCKS))
def test_tools_are_delivered_in_the_order_they_ran(runs: dict[str, Scenario], clock: str) -> None:
    run = runs[clock]
    records = run.got.tool_calls
    assert [(r["kind"], r["toolCallId"]) for r in records] == TOOLS
    stamps = [parse_iso(r["timestamp"]) for r in records]
    assert stamps == sorted(stamps)
    # each tool between the turns it ran between: the task's own after the caller's answer
    by_id = {(r["kind"], r["toolCallId"]): r["audioOffsetMs"] for r in records}
    said = {text: t["audioOffsetMs"] for t in run.got.transcript for text in [t["content"]]}
    assert said[TYPED] <= by_id[("tool_call", "call_order")] <= said[ASK_STREET]
    assert by_id[("tool_result", "call_order")] <= said[ASK_STREET]
    assert said[STREET] <= by_id[("tool_call", "call_street")] <= said[CONFIRMED]
    assert by_id[("tool_result", "call_address")] <= said[CONFIRMED]
