"""An observed call, offline: a scripted caller talks to a real LiveKit ``AgentSession``, roark
captures the call and delivers it to a local Roark started here (``roark dev``'s, with its
viewer). No keys, no network.

    python samples/demo_offline.py [--out roark-demo-output] [--view]

It prints what Roark received: the transcript, the tool calls, the metrics, where the stereo
recording (left = caller, right = agent) was written, and where to see and hear the call in
the browser. With ``--view`` the viewer stays open until Ctrl-C; without it the demo exits.
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
from roark.dev.server import DevServer
from roark.testing import observed_by
from roark.testing.scripted import (
    CallScript,
    LLMReply,
    ScriptedCall,
    SupportAgent,
    ToolCallStep,
    UserTurn,
    run_job,
)
from roark.testing.server import ReceivedCall
from roark.testing.server.cli import serve_until_interrupted

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
    parser.add_argument("--view", action="store_true", help="keep the viewer open (Ctrl-C)")
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

    server = DevServer(out / ".roark").start()
    try:
        print(f"local Roark on {server.base_url}; running a scripted call (about 12 s)...")
        with observed_by(server, out / "spool"):
            ctx = asyncio.run(run_job(entrypoint, call=call, job_id="demo-job", timeout=60))
        received = server.wait_for_call(ctx.job.room.sid, timeout=20)
        ok = report(received, out) and not server.ingest.violations
        page = server.call_url(received.livekit_call_id)
        if args.view:
            print(f"\nsee and hear the call: {page}\n(Ctrl-C to stop)", flush=True)
            serve_until_interrupted(server.stop)
        else:
            path = page[len(server.base_url) :]
            print(
                f"\nsee and hear the call: run `roark dev --dir {args.out}/.roark` and open "
                f"http://127.0.0.1:8787{path} (or run this demo with --view)"
            )
    finally:
        server.stop()
    print("\ndemo OK" if ok else "\ndemo FAILED: the call is incomplete")
    return 0 if ok else 1


def report(received: ReceivedCall, out: Path) -> bool:
    """Print what Roark received; whether the call is complete."""
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
    return (
        [t["role"] for t in received.transcript]
        == ["assistant", "user", "assistant", "user", "assistant"]
        and len(received.tool_calls) == 2
        and received.recording is not None
    )


if __name__ == "__main__":
    sys.exit(main())
