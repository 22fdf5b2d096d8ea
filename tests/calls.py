"""Short scripted calls for the tests that need a real call but not a long one."""

from __future__ import annotations

import time
from typing import Any

from livekit.agents import JobContext

import roark
from roark.testing.scripted import (
    CallScript,
    LLMReply,
    ScriptedCall,
    SupportAgent,
    ToolCallStep,
    UserTurn,
    run_job,
)

GREETING = "Hello, order desk."
QUESTION = "Where is order 4217?"
ANSWER = "Order 4217 has shipped."


def short_script(question: str = QUESTION, **overrides: Any) -> CallScript:
    """A greeting, one question, a tool call and an answer: about four seconds."""
    return CallScript(
        greeting=GREETING,
        user_turns=[UserTurn(question, at=1.2, duration=0.8)],
        llm_replies=[
            LLMReply(tool_calls=(ToolCallStep("lookup_order", {"order_id": "4217"}, "call_1"),)),
            LLMReply(ANSWER),
        ],
        **overrides,
    )


class ObservedRun:
    """One scripted call under ``@roark.observe``; keeps what the test needs to check."""

    def __init__(
        self,
        script: CallScript | None = None,
        *,
        start_kwargs: dict[str, Any] | None = None,
        agent_instructions: str | None = None,
        **observe_kwargs: Any,
    ) -> None:
        self.script = script or short_script()
        self.start_kwargs = start_kwargs or {}
        self.agent_kwargs = {"instructions": agent_instructions} if agent_instructions else {}
        self.call = ScriptedCall(self.script)
        self.observe_kwargs = {"agent_id": "test-agent", **observe_kwargs}
        self.session_started_at: float | None = None
        #: the session's input and output audio just after start(), and the names each
        #: held as attributes of its own then (what observing them could have added)
        self.audio_after_start: list[tuple[Any, set[str]]] = []
        self.ctx: JobContext | None = None
        self.job_seconds = 0.0

    async def entrypoint(self, ctx: JobContext) -> None:
        session = self.call.build_session()
        self.session_started_at = time.time()
        agent = SupportAgent(greeting=self.script.greeting, **self.agent_kwargs)
        await session.start(agent=agent, **self.start_kwargs)
        for audio in (session.input.audio, session.output.audio):
            self.audio_after_start.append((audio, set(vars(audio)) if audio else set()))

    async def run(self, *, decorate: bool = True, job_id: str = "job-test") -> JobContext:
        entry = (
            roark.observe(**self.observe_kwargs)(self.entrypoint) if decorate else self.entrypoint
        )
        started = time.monotonic()
        self.ctx = await run_job(entry, call=self.call, job_id=job_id, timeout=60.0)
        self.job_seconds = time.monotonic() - started
        return self.ctx

    @property
    def room_sid(self) -> str:
        assert self.ctx is not None
        return self.ctx.job.room.sid

    @property
    def first_audio_delay(self) -> float:
        """Seconds from ``session.start()`` to the greeting's first played sample."""
        first = self.call.output.segments[0].started_at
        assert first is not None and self.session_started_at is not None
        return first - self.session_started_at
