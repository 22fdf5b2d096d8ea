"""A story of a model that numbers its tool calls per response: the same call id, twice.

Some models (and LiveKit's own fakes) start their call ids again in every response, so a
call made later in the session carries the id of an earlier one. Each is an item of the
session's history of its own, with its own result: both pairs are delivered, in order.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from livekit.agents import JobContext

from roark.testing import observed_by_local_roark
from roark.testing.scripted import (
    CallScript,
    LLMReply,
    ScriptedCall,
    SupportAgent,
    ToolCallStep,
    UserTurn,
)

from .scenarios import Scenario, delivered_tool_items, history_tool_items, run_scenarios

GREETING = "Hello, order desk."
SCRIPT = CallScript(
    greeting=GREETING,
    user_turns=[
        UserTurn("Where is order 4217?", at=1.2, duration=0.8),
        UserTurn("And order 5300?", at=4.0, duration=0.8),
    ],
    llm_replies=[
        LLMReply(tool_calls=(ToolCallStep("lookup_order", {"order_id": "4217"}, "call_0"),)),
        LLMReply("Order 4217 has shipped."),
        LLMReply(tool_calls=(ToolCallStep("lookup_order", {"order_id": "5300"}, "call_0"),)),
        LLMReply("Order 5300 has shipped."),
    ],
)


async def _body(ctx: JobContext, scenario: Scenario) -> None:
    assert scenario.call is not None
    scenario.session = scenario.call.build_session()
    await scenario.session.start(agent=SupportAgent(greeting=GREETING))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with observed_by_local_roark(tmp_path_factory.mktemp("reused-ids")) as server:
        yield run_scenarios(server, [(Scenario("reused-ids", ScriptedCall(SCRIPT)), _body)])[
            "reused-ids"
        ]


def test_both_calls_of_one_id_and_their_results_are_delivered_in_order(run: Scenario) -> None:
    assert run.session is not None
    delivered = delivered_tool_items(run.got)
    assert delivered == history_tool_items(run.session)
    assert [(kind, call_id, is_error) for kind, call_id, _, is_error in delivered] == [
        ("tool_call", "call_0", None),
        ("tool_result", "call_0", False),
        ("tool_call", "call_0", None),
        ("tool_result", "call_0", False),
    ]
    arguments = [r["arguments"] for r in run.got.tool_calls if r["kind"] == "tool_call"]
    assert arguments == ['{"order_id": "4217"}', '{"order_id": "5300"}']
    results = [r["content"] for r in run.got.tool_calls if r["kind"] == "tool_result"]
    assert [("4217" in text, "5300" in text) for text in results] == [(True, False), (False, True)]
