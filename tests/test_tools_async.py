"""Stories of async tools: a tool that reports progress with ``ctx.update()`` and ends later.

LiveKit gives the LLM the first update as the call's result (``function_tools_executed``),
then adds the tool's real return value, or its error, to the history as a
``<call id>_final`` function call and output pair (``tool_execution_updated``). The caller
asks to track a parcel (it ends with a result) and for a refund (it ends with a
``ToolError``); the agent answers each final result in its own reply.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from livekit.agents import JobContext

from roark.testing import LocalRoark, observed_by_local_roark
from roark.testing.scripted import (
    CallScript,
    LLMReply,
    ParcelAgent,
    ScriptedCall,
    ToolCallStep,
    UserTurn,
)

from .scenarios import (
    Scenario,
    delivered_tool_items,
    history_messages,
    history_tool_items,
    run_scenarios,
)

GREETING = "Hello, order desk."
ASK = "Track order 4217 and refund it."
UPDATE = (
    "The tool `{tool}` has updated, message: {message}\n"
    "The task is still running, so DON'T make up or give information not included in the "
    "message above."
)
TRACK_UPDATE = UPDATE.format(tool="track_parcel", message="Tracking the parcel of order 4217.")
REFUND_UPDATE = UPDATE.format(tool="request_refund", message="Asking for a refund of order 4217.")
SCRIPT = CallScript(
    greeting=GREETING,
    user_turns=[UserTurn(ASK, at=1.2, duration=0.8)],
    llm_replies=[
        LLMReply(
            tool_calls=(
                ToolCallStep("track_parcel", {"order_id": "4217"}, "call_track"),
                ToolCallStep("request_refund", {"order_id": "4217"}, "call_refund"),
            )
        ),
        LLMReply("I am on it."),
        LLMReply("The refund was refused."),
        LLMReply("Your parcel is in Lyon."),
    ],
    # the track tool ends about 4.7 s in; its reply plays after that
    caller_audio_seconds=5.5,
)


async def _body(ctx: JobContext, scenario: Scenario) -> None:
    assert scenario.call is not None
    scenario.session = scenario.call.build_session()
    await scenario.session.start(agent=ParcelAgent(greeting=GREETING))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with observed_by_local_roark(tmp_path_factory.mktemp("async-tools")) as server:
        yield _run(server)


def _run(server: LocalRoark) -> Scenario:
    scenario = Scenario("async-tools", ScriptedCall(SCRIPT, tools_agent=ParcelAgent))
    return run_scenarios(server, [(scenario, _body)])["async-tools"]


def test_the_history_holds_the_final_pairs(run: Scenario) -> None:
    # the premise, read from LiveKit itself: what roark has to deliver
    assert run.session is not None
    items = history_tool_items(run.session)
    assert ("tool_result", "call_refund_final", "Order 4217 was already refunded.", True) in items
    assert ("tool_result", "call_track_final", "The parcel of order 4217 is in Lyon.", False) in (
        items
    )


def test_first_update_is_delivered_as_the_calls_result(run: Scenario) -> None:
    delivered = delivered_tool_items(run.got)
    for item in [
        ("tool_call", "call_track", "track_parcel", None),
        ("tool_call", "call_refund", "request_refund", None),
        ("tool_result", "call_track", TRACK_UPDATE, False),
        ("tool_result", "call_refund", REFUND_UPDATE, False),
    ]:
        assert item in delivered, item


def test_transcript_has_every_reply_in_the_sessions_order(run: Scenario) -> None:
    assert run.session is not None
    assert run.spoken() == history_messages(run.session)
    assert run.spoken() == [
        ("assistant", GREETING),
        ("user", ASK),
        ("assistant", "I am on it."),
        ("assistant", "The refund was refused."),
        ("assistant", "Your parcel is in Lyon."),
    ]


def test_final_results_are_delivered_paired_with_their_errors(run: Scenario) -> None:
    delivered = delivered_tool_items(run.got)
    for item in [
        ("tool_call", "call_refund_final", "request_refund", None),
        ("tool_result", "call_refund_final", "Order 4217 was already refunded.", True),
        ("tool_call", "call_track_final", "track_parcel", None),
        ("tool_result", "call_track_final", "The parcel of order 4217 is in Lyon.", False),
    ]:
        assert item in delivered, item


def test_every_tool_item_of_the_history_is_delivered_paired(run: Scenario) -> None:
    assert run.session is not None
    delivered = delivered_tool_items(run.got)
    assert sorted(delivered, key=repr) == sorted(history_tool_items(run.session), key=repr)
    # each result follows its call
    position = {(kind, call_id): i for i, (kind, call_id, _, _) in enumerate(delivered)}
    for kind, call_id, _, _ in delivered:
        if kind == "tool_result":
            assert position[("tool_call", call_id)] < position[("tool_result", call_id)]
