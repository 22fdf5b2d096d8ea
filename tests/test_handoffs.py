"""Stories of a call that moves between agents: an ``AgentTask`` and a handoff.

The front desk confirms the caller's address with an ``AgentTask`` (it asks, records the
street with a tool of its own and completes, and the front desk's tool returns its
result), then hands the caller over to billing by returning a new ``Agent`` from a tool;
billing greets and refunds with its own tool. LiveKit adds an ``AgentHandoff`` item to the
history (and emits it as ``conversation_item_added``) whenever the active agent changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from livekit.agents import Agent, JobContext, function_tool

from roark.testing import observed_by_local_roark
from roark.testing.scripted import (
    CallScript,
    LLMReply,
    ScriptedCall,
    SupportAgent,
    ToolCallStep,
    UserTurn,
)

from .audio_checks import assert_speech_at
from .scenarios import (
    ASK_STREET,
    AddressTask,
    Scenario,
    delivered_tool_items,
    history_messages,
    history_tool_items,
    run_scenarios,
)

GREETING = "Hello, order desk."
CONFIRMED = "Thanks, your address is confirmed."
BILLING_HELLO = "Billing here."
REFUNDED = "Order 4217 is refunded."
TOLERANCE = 0.06


class Billing(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You handle refunds.")

    async def on_enter(self) -> None:
        self.session.say(BILLING_HELLO)

    @function_tool
    async def refund(self, order_id: str) -> str:
        """Refund an order.

        Args:
            order_id: The order number.
        """
        return f"Order {order_id} refunded."


class FrontDesk(SupportAgent):
    @function_tool
    async def confirm_address(self) -> str:
        """Confirm the caller's address."""
        street = await AddressTask()
        return f"Address confirmed: {street}."

    @function_tool
    async def transfer_to_billing(self) -> tuple[Agent, str]:
        """Transfer the caller to billing."""
        return Billing(), "Transferring you to billing."


SCRIPT = CallScript(
    greeting=GREETING,
    user_turns=[
        UserTurn("Please check my address.", at=1.2, duration=0.8),
        UserTurn("Rue de la Paix.", at=3.6, duration=0.8),
        UserTurn("I want a refund.", at=6.4, duration=0.8),
        UserTurn("Refund order 4217.", at=8.6, duration=0.8),
    ],
    llm_replies=[
        LLMReply(tool_calls=(ToolCallStep("confirm_address", {}, "call_address"),)),
        # the address task's own turn
        LLMReply(
            tool_calls=(ToolCallStep("record_street", {"street": "Rue de la Paix"}, "call_street"),)
        ),
        LLMReply(CONFIRMED),
        LLMReply(tool_calls=(ToolCallStep("transfer_to_billing", {}, "call_transfer"),)),
        # the reply to the transfer's result, generated while the front desk hands over
        LLMReply(""),
        LLMReply(tool_calls=(ToolCallStep("refund", {"order_id": "4217"}, "call_refund"),)),
        LLMReply(REFUNDED),
    ],
)
SPOKEN = [
    ("front_desk", "assistant", GREETING),
    ("front_desk", "user", "Please check my address."),
    ("address_task", "assistant", ASK_STREET),
    ("address_task", "user", "Rue de la Paix."),
    ("front_desk", "assistant", CONFIRMED),
    ("front_desk", "user", "I want a refund."),
    ("billing", "assistant", BILLING_HELLO),
    ("billing", "user", "Refund order 4217."),
    ("billing", "assistant", REFUNDED),
]
TOOLS = {
    "call_address": "front_desk",
    "call_street": "address_task",
    "call_transfer": "front_desk",
    "call_refund": "billing",
}


async def _body(ctx: JobContext, scenario: Scenario) -> None:
    assert scenario.call is not None
    session = scenario.session = scenario.call.build_session()
    order: list[tuple[str, Any]] = scenario.seen.setdefault("added", [])
    session.on("conversation_item_added", lambda ev: order.append((ev.item.type, ev.item)))
    await session.start(agent=FrontDesk(greeting=GREETING))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with observed_by_local_roark(tmp_path_factory.mktemp("handoffs")) as server:
        scenario = Scenario("handoffs", ScriptedCall(SCRIPT, tools_agent=FrontDesk))
        yield run_scenarios(server, [(scenario, _body)])["handoffs"]


def test_the_sessions_agents_took_turns_as_scripted(run: Scenario) -> None:
    # the premise, read from LiveKit: who was active when each message was added
    agent, who = "", []
    for kind, item in run.seen["added"]:
        if kind == "agent_handoff":
            agent = item.new_agent_id
        elif kind == "message":
            who.append((agent, item.role, item.text_content))
    assert who == SPOKEN


def test_every_agents_turns_are_delivered_in_order(run: Scenario) -> None:
    assert run.session is not None
    assert run.spoken() == [(role, text) for _, role, text in SPOKEN]
    assert run.spoken() == history_messages(run.session)
    assert_speech_at(
        run.got.recording, run.got.sample_rate, run.user_truth(), run.agent_truth(), TOLERANCE
    )


def test_every_agents_tools_are_delivered_paired(run: Scenario) -> None:
    assert run.session is not None
    delivered = delivered_tool_items(run.got)
    assert sorted(delivered, key=repr) == sorted(history_tool_items(run.session), key=repr)
    results = {call_id: text for kind, call_id, text, _ in delivered if kind == "tool_result"}
    assert results == {
        "call_address": "Address confirmed: Rue de la Paix.",
        "call_street": "",
        "call_transfer": "Transferring you to billing.",
        "call_refund": "Order 4217 refunded.",
    }


AGENT_FIELD = "livekitAgentId"


def test_each_transcript_entry_names_its_agent(run: Scenario) -> None:
    named = [(t.get(AGENT_FIELD), t["role"], t["content"]) for t in run.got.transcript]
    assert named == SPOKEN


def test_each_tool_record_names_its_agent(run: Scenario) -> None:
    for record in run.got.tool_calls:
        assert record.get(AGENT_FIELD) == TOOLS[record["toolCallId"]], record


def _extra(metric: dict[str, Any]) -> dict[str, Any]:
    return metric.get("extra") or {}


def test_each_handoff_is_a_record_of_its_own(run: Scenario) -> None:
    assert run.session is not None
    handoffs = [m for m in run.got.metrics if m["kind"] == "agent_handoff"]
    pairs = [(_extra(m).get("oldAgentId"), _extra(m).get("newAgentId")) for m in handoffs]
    assert pairs == [
        (None, "front_desk"),
        ("front_desk", "address_task"),
        ("address_task", "front_desk"),
        ("front_desk", "billing"),
    ]
    history = [
        (item.old_agent_id, item.new_agent_id)
        for item in run.session.history.items
        if item.type == "agent_handoff"
    ]
    assert pairs == history
    # placed where the agents changed: each turn comes after the handoff to its agent
    offsets = [m["audioOffsetMs"] for m in handoffs]
    assert offsets == sorted(offsets)
    for turn in run.got.transcript:
        (_, agent), _ = [
            h for h in zip(pairs, offsets, strict=True) if h[1] <= turn["audioOffsetMs"]
        ][-1]
        assert agent == turn[AGENT_FIELD], turn


def test_each_agents_configuration_is_a_record_of_its_own(run: Scenario) -> None:
    assert run.session is not None
    configs = [
        (
            _extra(m).get("livekitAgentId"),
            _extra(m).get("instructions"),
            _extra(m).get("toolsAdded"),
            _extra(m).get("toolsRemoved"),
        )
        for m in run.got.metrics
        if m["kind"] == "agent_config_update"
    ]
    # each agent as it started or resumed, with its instructions and tools
    desk = (
        "front_desk",
        FrontDesk().instructions,
        "confirm_address,lookup_order,transfer_to_billing",
        None,
    )
    assert configs == [
        desk,
        ("address_task", "Ask the caller for their street.", "record_street", None),
        desk,
        ("billing", "You handle refunds.", "refund", None),
    ]
    history = [
        (
            item.instructions,
            ",".join(sorted(item.tools_added or [])) or None,
            ",".join(sorted(item.tools_removed or [])) or None,
        )
        for item in run.session.history.items
        if item.type == "agent_config_update"
    ]
    assert [config[1:] for config in configs] == history
