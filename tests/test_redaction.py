"""Redaction: what ``redact`` masks reaches neither Roark nor the spool on disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import roark
from roark.testing import LocalRoark
from roark.testing.scripted import CallScript, LLMReply, ToolCallStep, UserTurn

from .calls import GREETING, ObservedRun


def test_redaction_reaches_neither_the_wire_nor_the_disk(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    spool = tmp_path / "redact-spool"
    roark.configure(
        api_key=roark_server.api_key,
        base_url=roark_server.base_url,
        spool_dir=spool,
        redact=True,
        shutdown_timeout=1.0,
    )
    card = "4111 1111 1111 1111"
    script = CallScript(
        greeting=GREETING,
        user_turns=[UserTurn("Mail me at jane.doe@example.com please", at=1.2, duration=0.8)],
        llm_replies=[
            LLMReply(tool_calls=(ToolCallStep("lookup_order", {"order_id": card}, "call_1"),)),
            LLMReply("Done."),
        ],
    )
    run = ObservedRun(script)
    roark_server.set_faults(error_rate=1.0)  # keep everything in the spool for a look
    asyncio.run(run.run())
    # every text file of the spool (the PCM chunks hold audio, where any byte pattern occurs)
    on_disk = b"".join(
        p.read_bytes() for p in spool.rglob("*") if p.is_file() and p.suffix != ".pcm"
    )
    assert b"[EMAIL]" in on_disk and b"[CARD]" in on_disk
    assert b"jane.doe@example.com" not in on_disk
    # (not a bare b"4111": a latency of 0.04111 s in the metrics is no card number)
    assert card.encode() not in on_disk and b"4111 1111" not in on_disk
    assert b"4111111111111111" not in on_disk

    roark_server.clear_faults()
    received = roark_server.wait_for_call(run.room_sid, timeout=30)
    assert received.transcript[1]["content"] == "Mail me at [EMAIL] please"
    call, result = received.tool_calls
    assert call["arguments"] == '{"order_id": "[CARD]"}'
    assert "[CARD]" in result["content"] and "4111" not in result["content"]
