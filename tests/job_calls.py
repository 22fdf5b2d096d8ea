"""The scripted call a LiveKit job process runs, and the truth it writes down as it goes.

Used by the agent modules that LiveKit's job processes import (``tests/job_agent.py``, and
``tests/benchmarks/job_agent_bare.py`` for the unobserved baseline). A job's metadata (JSON)
says what to run: ``{"script": "short" | "long" | "bench", "seconds": s, "hang_up": bool,
"disconnect_delay": s}``.
``hang_up``: the caller hangs up once the script is over (the job shuts itself down);
otherwise the call goes on until the worker closes the process.

What really happened is appended to ``<JOB_TRUTH_DIR>/<room sid>.jsonl`` as it happens (one
JSON object a line, written with ``os.write``), so a test can compare it with what Roark
received, even after the process was killed.

The scripted parts are imported when a job starts, not at import: an idle process of the
unobserved baseline then holds no roark code at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

from livekit.agents import JobContext, JobProcess

TRUTH_DIR_ENV = "JOB_TRUTH_DIR"
GREETING = "Hello! How can I help you today?"
QUESTION = "Hi, where is my order?"
ASK_NUMBER = "Sure. What is your order number?"
ORDER_QUESTION = "Where is order 4217?"
SHIPPED = "Order 4217 has shipped."
ORDER_RESULT = {"order_id": "4217", "status": "shipped"}
# a call of the "long" script goes on this long unless it is cut (seconds of caller audio)
LONG_CALL_SECONDS = 40.0


def _script(name: str, seconds: float | None) -> Any:
    from roark.testing.scripted import CallScript, LLMReply, ToolCallStep, UserTurn

    if name == "short":
        # greeting, a question, a tool call and its answer: about four seconds
        return CallScript(
            greeting=GREETING,
            user_turns=[UserTurn(ORDER_QUESTION, at=2.0, duration=0.8)],
            llm_replies=[
                LLMReply(
                    tool_calls=(ToolCallStep("lookup_order", {"order_id": "4217"}, "call_1"),)
                ),
                LLMReply(SHIPPED),
            ],
        )
    if name == "long":
        # the first exchange is over by about 5.5 s; then a question every 8 s until the end
        length = seconds or LONG_CALL_SECONDS
        turns = [UserTurn(QUESTION, at=2.2)]
        replies = [LLMReply(ASK_NUMBER)]
        at = 10.0
        while at + 3.0 < length:
            turns.append(UserTurn(f"Question {len(turns)}?", at=at))
            replies.append(LLMReply(f"Answer {len(replies)}."))
            at += 8.0
        return CallScript(
            greeting=GREETING,
            user_turns=turns,
            llm_replies=replies,
            caller_audio_seconds=length,
        )
    if name == "bench":
        # the benchmark's support call: a caller turn every 6.5 s, a tool call every fourth
        from .benchmarks.bench_calls import build_script

        return build_script(seconds or 30.0)
    raise ValueError(f"unknown script {name!r}")


class Truth:
    """Appends what happens in this job to its truth file (one JSON object a line)."""

    def __init__(self, room_sid: str) -> None:
        folder = os.environ.get(TRUTH_DIR_ENV)
        self._path = os.path.join(folder, f"{room_sid}.jsonl") if folder else None

    def write(self, kind: str, **fields: Any) -> None:
        if self._path is None:
            return
        line = json.dumps({"kind": kind, "at": time.time(), **fields}) + "\n"
        # one write() per line: a line is in the file once it returns, kill or no kill
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def prewarm(proc: JobProcess) -> None:
    """The process's warm-up (LiveKit's ``initialize_process_fnc``): what a job will need is
    loaded now, not on the job's event loop (LiveKit warns about a loop blocked by a first
    use). ``user_arguments={"scripted": False}`` leaves the process bare until a job comes."""
    if (proc.user_arguments or {}).get("scripted", True):
        from livekit.agents.ipc.mock_room import create_mock_room

        import roark.testing.scripted  # noqa: F401

        # a fake job's room is this mock (cached); made on the job's loop it costs ~0.1 s of
        # create_autospec, which a real job's rtc.Room() does not
        create_mock_room()


async def run_scripted_call(ctx: JobContext) -> None:
    """Start this job's scripted call; it goes on after the entrypoint returns, as a real one."""
    from roark.testing.scripted import ScriptedCall

    plan = json.loads(ctx.job.metadata or "{}")
    truth = Truth(ctx.job.room.sid)
    call = ScriptedCall(_script(plan.get("script", "short"), plan.get("seconds")))
    session = call.build_session()

    @session.on("conversation_item_added")
    def _committed(ev: Any) -> None:
        item = ev.item
        text = getattr(item, "text_content", None)
        if text:
            truth.write("item", role=item.role, text=text)

    async def _closed(_reason: str) -> None:
        await call.aclose()
        _write_played(truth, call)

    ctx.add_shutdown_callback(_closed)
    if plan.get("disconnect_delay"):
        _slow_room_disconnect(ctx, float(plan["disconnect_delay"]))
    truth.write("started", pid=os.getpid(), cpu=_cpu(), threads=_roark_threads())
    await session.start(agent=call.make_agent())
    if plan.get("hang_up"):
        task = asyncio.get_running_loop().create_task(_hang_up_when_done(ctx, call, truth))
        ctx.proc.userdata["hang_up"] = task  # held: a task nobody holds may be collected


async def _hang_up_when_done(ctx: JobContext, call: Any, truth: Truth) -> None:
    await call.wait_until_done(timeout=120.0)
    _write_played(truth, call)
    truth.write("hang_up", cpu=_cpu())
    ctx.shutdown("caller hung up")


def _write_played(truth: Truth, call: Any) -> None:
    """Where the caller spoke and what the speaker played, in wall time."""
    truth.write(
        "played",
        turns_due=call.input.turns_due(),
        max_lateness=call.input.max_lateness,
        segments=[
            [s.started_at, s.played_seconds, s.interrupted]
            for s in call.output.segments
            if s.started_at is not None
        ],
    )


def _slow_room_disconnect(ctx: JobContext, delay: float) -> None:
    # LiveKit runs the shutdown callbacks after room.disconnect(); a fake job's mock room
    # disconnects at once, a real one takes a round trip to the server (longer over a bad
    # network): this one takes `delay` seconds
    room = ctx.room
    disconnect = room.disconnect

    async def slow_disconnect(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(delay)
        return await disconnect(*args, **kwargs)

    room.disconnect = slow_disconnect  # type: ignore[method-assign]


def _cpu() -> float:
    """This process's CPU seconds (user + system, every thread) so far."""
    times = os.times()
    return times.user + times.system


def _roark_threads() -> list[list[Any]]:
    return [[t.name, t.native_id] for t in threading.enumerate() if t.name.startswith("roark-")]
