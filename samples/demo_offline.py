"""An observed call, offline: a scripted caller talks to a real LiveKit ``AgentSession``, roark
captures the call and delivers it to a local Roark started here. No keys, no network.

    python samples/demo_offline.py [--out roark-demo-output]

It prints what Roark received: the transcript, the tool calls, the metrics, and where the
stereo recording (left = caller, right = agent) was written.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections import Counter
from pathlib import Path

from livekit.agents import JobContext

import roark
from roark.testing import observed_by_local_roark
from roark.testing.scripted import (
    CallScript,
    LLMReply,
    ScriptedCall,
    SupportAgent,
    ToolCallStep,
    UserTurn,
    run_job,
)

SYSTEM_PROMPT = "You are Ava, a support agent for an online shop. Keep answers short."

SCRIPT = CallScript(
    greeting="Hi, this is Ava from the shop. How can I help?",
    user_turns=[
        UserTurn("Hi, where is my order?", at=3.0, duration=1.2),
        UserTurn("It is 4 2 1 7.", at=6.6, duration=1.0),
    ],
    llm_replies=[
        LLMReply("Sure. What is your order number?"),
        LLMReply(tool_calls=(ToolCallStep("lookup_order", {"order_id": "4217"}, "call_1"),)),
        LLMReply("Your order 4217 has shipped and arrives on Friday."),
    ],
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="roark-demo-output", help="folder for the outputs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("roark").setLevel(logging.INFO)

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    call = ScriptedCall(SCRIPT)

    @roark.observe(
        agent_id="support-agent-v1",
        agent_name="Ava (support)",
        agent_prompt=SYSTEM_PROMPT,
        is_test=True,
        channel="demo",
    )
    async def entrypoint(ctx: JobContext) -> None:
        session = call.build_session()
        await session.start(agent=SupportAgent(greeting=SCRIPT.greeting))

    with observed_by_local_roark(out) as server:
        print(f"local Roark on {server.base_url}; running a scripted call (about 12 s)...")
        ctx = asyncio.run(run_job(entrypoint, call=call, job_id="demo-job", timeout=60))
        received = server.wait_for_call(ctx.job.room.sid, timeout=20)
        server.assert_no_violations()

    print(f"\nRoark received call {received.livekit_call_id}, ended: {received.reason}")
    print("\ntranscript:")
    for entry in received.transcript:
        start, end = entry["audioOffsetMs"] / 1000, entry["endAudioOffsetMs"] / 1000
        print(f"  {start:6.2f}-{end:6.2f}s  {entry['role']:>9}: {entry['content']}")
    print("\ntool calls:")
    for record in received.tool_calls:
        detail = record.get("arguments") if record["kind"] == "tool_call" else record["content"]
        print(f"  {record['kind']:<11} {record['toolCallId']}  {detail}")
    kinds = Counter(m["kind"] for m in received.metrics)
    print("\nmetrics:", ", ".join(f"{kind} x{count}" for kind, count in sorted(kinds.items())))
    print(
        f"\nrecording: {received.duration_s:.2f} s stereo at {received.sample_rate} Hz in "
        f"{len(received.chunks)} chunks -> {received.recording_path}"
    )
    print(f"spool (empty once delivered): {out / 'spool'}")
    ok = (
        [t["role"] for t in received.transcript]
        == ["assistant", "user", "assistant", "user", "assistant"]
        and len(received.tool_calls) == 2
        and received.recording is not None
    )
    print("\ndemo OK" if ok else "\ndemo FAILED: the call is incomplete")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
