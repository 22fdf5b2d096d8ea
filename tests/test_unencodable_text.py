"""Text that cannot be encoded never loses the call.

A lone surrogate (``os.environ`` holding bytes that are not UTF-8 decodes them to
``"\\udce9"``) cannot be written as UTF-8, so JSON with it can be neither spooled nor sent.
Every string that goes on the wire is made encodable once, where it enters: what cannot be
encoded becomes U+FFFD, and the call arrives whole.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from roark._config import resolve
from roark._handoff.records import Begin, CallDetails, End, Message, Metric, ToolCall, ToolOutput
from roark._handoff.records import Tools as ToolsRecord
from roark._loop.call import CallOptions
from roark._threads.worker import Worker
from roark.testing import LocalRoark
from roark.testing.scripted import CallScript, LLMReply, ToolCallStep, UserTurn

from .calls import GREETING, ObservedRun

BAD = "\udce9"  # what os.fsdecode(b"\xe9") gives: the byte 0xE9 of a Latin-1 "é"
R = "\ufffd"


def test_an_observed_call_with_unencodable_prompt_and_metadata_arrives_whole(
    roark_server: LocalRoark,
) -> None:
    question = f"Caf{BAD} order 4217?"
    script = CallScript(
        greeting=GREETING,
        user_turns=[UserTurn(question, at=1.2, duration=0.8)],
        llm_replies=[
            LLMReply(tool_calls=(ToolCallStep("lookup_order", {"order_id": "4217"}, "call_1"),)),
            # (not in the agent's words: LiveKit's own sentence tokenizer refuses a surrogate)
            LLMReply("Order 4217 has shipped."),
        ],
    )
    metadata = {"tier": f"gold{BAD}", f"host{BAD}": "eu-1", "nested": {"path": f"/srv/{BAD}"}}
    run = ObservedRun(
        script,
        agent_name=f"Ava {BAD}",
        agent_prompt=f"You are Ava at caf{BAD} {BAD}{BAD}.",
        livekit_call_id=f"call-{BAD}-1",
        **metadata,
    )
    asyncio.run(run.run())

    received = roark_server.wait_for_call(f"call-{R}-1", timeout=30)
    assert received.started["agentName"] == f"Ava {R}"
    assert received.started["agentPrompt"] == f"You are Ava at caf{R} {R}{R}."
    assert received.metadata == {
        "tier": f"gold{R}",
        f"host{R}": "eu-1",
        "nested": {"path": f"/srv/{R}"},
    }
    assert [(t["role"], t["content"]) for t in received.transcript] == [
        ("assistant", GREETING),
        ("user", f"Caf{R} order 4217?"),
        ("assistant", "Order 4217 has shipped."),
    ]
    assert [t["kind"] for t in received.tool_calls] == ["tool_call", "tool_result"]
    assert received.recording is not None and received.chunks
    roark_server.assert_no_violations()


def test_every_string_of_the_conversation_is_made_encodable(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    """What LiveKit hands over (ids, names, transcript, tool text, metric labels, the end
    reason) is made encodable on the thread side, where it becomes the wire's text."""
    settings = resolve(
        {
            "api_key": roark_server.api_key,
            "base_url": roark_server.base_url,
            "spool_dir": tmp_path / "own",
        },
        env={},
    )
    worker = Worker(settings)
    try:
        t0 = time.time()
        channel = worker.open_call()
        details = CallDetails(
            agent_id="agent",
            is_test=True,
            room_name=f"room{BAD}",
            participant_identity=f"caller{BAD}",
            job_id=f"job{BAD}",
        )
        channel.post(Begin(at=t0, details=details, sample_rate=None, call_id=f"RM_{BAD}"))
        channel.post(Message("user", f"hi {BAD}", t0 + 1, t0 + 2, False, f"fr{BAD}"))
        tool_call = ToolCall(f"id{BAD}", f"look{BAD}", f'{{"q": "{BAD}"}}', t0 + 3)
        output = ToolOutput(f"id{BAD}", {"found": f"x{BAD}"}, False, t0 + 3.5)
        channel.post(ToolsRecord(calls=[tool_call], outputs=[output]))
        channel.post(Metric("llm", t0 + 3, {"ttft": 0.2, "model": f"m{BAD}"}))
        channel.post(End(at=t0 + 5, reason=f"bye{BAD}"))
        assert channel.delivered.result(timeout=30) is True
    finally:
        worker.stop(1.0)

    received = roark_server.call(f"RM_{R}")
    assert received.started["roomName"] == f"room{R}"
    assert received.started["participantIdentity"] == f"caller{R}"
    assert received.started["jobId"] == f"job{R}"
    (entry,) = received.transcript
    assert (entry["content"], entry["language"]) == (f"hi {R}", f"fr{R}")
    call, result = received.tool_calls
    assert (call["toolCallId"], call["name"], call["arguments"]) == (
        f"id{R}",
        f"look{R}",
        f'{{"q": "{R}"}}',
    )
    assert (result["toolCallId"], result["content"]) == (f"id{R}", f'{{"found": "x{R}"}}')
    (metric,) = received.metrics
    assert metric["extra"] == {"model": f"m{R}"}
    assert received.reason == f"bye{R}"
    roark_server.assert_no_violations()


def test_the_options_are_made_encodable_once_when_checked() -> None:
    options = CallOptions(
        agent_id=f" agent{BAD} ",
        agent_name=f"n{BAD}",
        agent_prompt=f"p{BAD}",
        livekit_call_id=f"c{BAD}",
        metadata={f"k{BAD}": [f"v{BAD}", 1, {"d": f"{BAD}"}]},
    )
    assert (options.agent_id, options.agent_name, options.agent_prompt) == (
        f"agent{R}",
        f"n{R}",
        f"p{R}",
    )
    assert options.livekit_call_id == f"c{R}"
    assert options.metadata == {f"k{R}": [f"v{R}", 1, {"d": R}]}
    # a valid pair of surrogates is the character it stands for, not two replacements
    assert CallOptions(agent_id="a", agent_prompt="\ud83d\ude00").agent_prompt == "\U0001f600"
