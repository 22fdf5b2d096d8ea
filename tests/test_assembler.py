"""The assembler: a call's hand-off records become its events, with clean, bounded text."""

from __future__ import annotations

import json

from roark._config import resolve
from roark._failures import Stats
from roark._handoff.clock import CallClock
from roark._handoff.records import (
    Begin,
    CallDetails,
    End,
    Message,
    Metric,
    ToolCall,
    ToolOutput,
    Tools,
)
from roark._threads.assembler import TRUNCATION_MARKER, CallAssembler, tool_arguments, tool_text
from roark._threads.spool import CallSpool, Spooled

T0 = 1767225600.0  # 2026-01-01T00:00:00Z


def test_tool_text_is_clean_and_bounded() -> None:
    assert tool_text("ok\x00\x07 fine\nnext\tcol", 100) == "ok fine\nnext\tcol"
    assert tool_text({"a": 1, "b": [1.5, None]}, 100) == '{"a": 1, "b": [1.5, null]}'
    assert tool_text(42, 100) == "42"
    assert tool_text(float("nan"), 100) == "nan"
    long = tool_text("y" * 1000, 300)
    assert len(long) == 300 and long.endswith(TRUNCATION_MARKER)


def test_tool_arguments_are_always_valid_json() -> None:
    same = tool_arguments('{"order_id": "4217"}', 100, lambda t: t)
    assert same == '{"order_id": "4217"}'
    broken = tool_arguments('{"order_id": ', 100, lambda t: t)
    assert json.loads(broken) == '{"order_id": '
    cut = tool_arguments(json.dumps({"blob": "z" * 5000}), 300, lambda t: t)
    assert json.loads(cut).endswith(TRUNCATION_MARKER)


def test_a_calls_records_become_its_call_started_and_call_ended() -> None:
    spooled: list[Spooled] = []
    settings = resolve({"api_key": "k", "redact": ["email"]}, env={})
    call = CallAssembler(
        key="k",
        clock=CallClock(),
        settings=settings,
        spool=CallSpool(None, "k"),
        stats=Stats(),
        on_spooled=lambda _, item: spooled.append(item),
    )
    details = CallDetails(agent_id="bot", is_test=True, agent_name="Bot", room_name="")
    records = [
        Begin(at=T0, details=details, sample_rate=None, call_id="RM_1"),
        Message("assistant", "Hello\x07!", T0 + 0.5, T0 + 1.0, interrupted=False, language=None),
        Message("user", "mail a@b.io", T0 + 1.5, T0 + 2.0, interrupted=False, language="en"),
        Tools(
            calls=[ToolCall("call_1", "lookup", {"id": 7}, T0 + 2.1)],
            outputs=[ToolOutput("call_1", "shipped", False, T0 + 2.2)],
        ),
        Metric(kind="llm", at=T0 + 2.3, fields={"ttft": 0.25}),
        End(at=T0 + 3.0, reason="participant-disconnected"),
    ]
    for record in records:
        call.handle(record)

    assert [item.kind for item in spooled] == ["started", "ended"]
    started, ended = (json.loads(item.read()) for item in spooled)
    assert started == {
        "event": "call-started",
        "livekitCallId": "RM_1",
        "eventTimestamp": "2026-01-01T00:00:00.000Z",
        "agentId": "bot",
        "isTest": True,
        "agentName": "Bot",
    }
    assert [(t["role"], t["content"], t["audioOffsetMs"]) for t in ended["transcript"]] == [
        ("assistant", "Hello!", 500),
        ("user", "mail [EMAIL]", 1500),
    ]
    assert ended["transcript"][0]["interrupted"] is False
    assert ended["transcript"][1]["language"] == "en"
    assert [(t["kind"], t["toolCallId"], t["audioOffsetMs"]) for t in ended["toolCalls"]] == [
        ("tool_call", "call_1", 2100),
        ("tool_result", "call_1", 2200),
    ]
    assert ended["toolCalls"][0]["arguments"] == '{"id": 7}'
    assert ended["metrics"] == [
        {
            "kind": "llm",
            "timestamp": "2026-01-01T00:00:02.300Z",
            "audioOffsetMs": 2300,
            "ttft": 0.25,
        }
    ]
    assert ended["callEndedReason"] == "participant-disconnected"
    assert ended["agentSpokeFirst"] is True
    assert "recordingSampleRate" not in ended  # observed without audio
