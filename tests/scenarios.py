"""Scripted scenarios under ``@roark.observe``, run concurrently for the scenario modules.

A scenario is an entrypoint body (``async def body(ctx, scenario)``) that builds and starts
an ``AgentSession``; :func:`run_scenarios` runs several of them at once through
:func:`~roark.testing.scripted.run_job`, each under its own ``@roark.observe``, then waits
for what the local Roark received for each (found by the job's room sid).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit.agents import AgentSession, AgentTask, JobContext, function_tool

import roark
from roark.testing import LocalRoark, ReceivedCall
from roark.testing.scripted import ScriptedCall, SupportAgent, run_job

from .audio_checks import parse_iso


@dataclass
class Scenario:
    """One observed job: its scripted call (if any), its session, and what Roark received."""

    name: str
    call: ScriptedCall | None = None
    ctx: JobContext | None = None
    session: AgentSession | None = None
    received: ReceivedCall | None = None
    seen: dict[str, Any] = field(default_factory=dict)
    """Whatever the entrypoint body wants the tests to see."""

    @property
    def room_sid(self) -> str:
        assert self.ctx is not None
        return self.ctx.job.room.sid

    @property
    def got(self) -> ReceivedCall:
        assert self.received is not None, f"{self.name}: nothing received"
        return self.received

    @property
    def t0(self) -> float:
        """Wall time of the recording's first sample (call-started's timestamp)."""
        assert self.got.started is not None
        return parse_iso(self.got.started["eventTimestamp"])

    def user_truth(self) -> list[tuple[float, float]]:
        """Where the caller really spoke, in seconds from the recording's first sample."""
        assert self.call is not None
        return [(on - self.t0, off - self.t0) for on, off in self.call.input.turns_due()]

    def agent_truth(self, segments: list[Any] | None = None) -> list[tuple[float, float]]:
        """Where the agent's audio really played (the speaker's segments by default)."""
        assert self.call is not None
        played = self.call.output.segments if segments is None else segments
        return [
            (s.started_at - self.t0, s.started_at - self.t0 + s.played_seconds)
            for s in played
            if s.started_at is not None and s.played_seconds > 0
        ]

    def spoken(self) -> list[tuple[str, str]]:
        return [(t["role"], t["content"]) for t in self.got.transcript]


Body = Callable[[JobContext, Scenario], Awaitable[None]]


async def run_scenario(
    scenario: Scenario, body: Body, *, timeout: float = 60.0, **observe_kwargs: Any
) -> Scenario:
    """Run ``body`` as an entrypoint under ``@roark.observe``, as LiveKit's job runner would."""
    options = {"agent_id": "scenario-agent", "scenario": scenario.name, **observe_kwargs}

    @roark.observe(**options)
    async def entrypoint(ctx: JobContext) -> None:
        await body(ctx, scenario)

    scenario.ctx = await run_job(
        entrypoint, call=scenario.call, job_id=f"job-{scenario.name}", timeout=timeout
    )
    return scenario


def run_scenarios(
    server: LocalRoark, scenarios: list[tuple[Scenario, Body]], *, timeout: float = 20.0
) -> dict[str, Scenario]:
    """Run the scenarios concurrently, then wait for each one's call at the local Roark."""

    async def run_all() -> None:
        await asyncio.gather(*(run_scenario(s, body) for s, body in scenarios))

    asyncio.run(run_all())
    for scenario, _ in scenarios:
        scenario.received = server.wait_for_call(scenario.room_sid, timeout=timeout)
    return {s.name: s for s, _ in scenarios}


def history_tool_items(session: AgentSession) -> list[tuple[str, str, str, bool | None]]:
    """Every function call and output of the session's history, as roark should deliver them.

    ``(kind, call id, name or output, is_error)``, in history order.
    """
    out: list[tuple[str, str, str, bool | None]] = []
    for item in session.history.items:
        if item.type == "function_call":
            out.append(("tool_call", item.call_id, item.name, None))
        elif item.type == "function_call_output":
            out.append(("tool_result", item.call_id, item.output, item.is_error))
    return out


def delivered_tool_items(received: ReceivedCall) -> list[tuple[str, str, str, bool | None]]:
    """The delivered tool records in the shape of :func:`history_tool_items`."""
    return [
        (
            r["kind"],
            r["toolCallId"],
            r["name"] if r["kind"] == "tool_call" else r["content"],
            r.get("isError"),
        )
        for r in received.tool_calls
    ]


def history_messages(session: AgentSession) -> list[tuple[str, str]]:
    """(role, text) of the session history's user and assistant messages, in its order."""
    return [
        (item.role, item.text_content or "")
        for item in session.history.items
        if item.type == "message" and item.role in ("user", "assistant")
    ]


class GreetingByReply(SupportAgent):
    """A support agent that greets with a generated reply (what a realtime model's agent does)."""

    async def on_enter(self) -> None:
        self.session.generate_reply()


ASK_STREET = "What is your street?"


class AddressTask(AgentTask[str]):
    """An ``AgentTask`` that asks for the caller's street and completes with it."""

    def __init__(self) -> None:
        super().__init__(instructions="Ask the caller for their street.")

    async def on_enter(self) -> None:
        self.session.say(ASK_STREET)

    @function_tool
    async def record_street(self, street: str) -> None:
        """Record the caller's street.

        Args:
            street: The street name.
        """
        self.complete(street)


def run_under_wall_clock(
    server: LocalRoark, scenario: Scenario, clock: Callable[[], float], body: Body
) -> Scenario:
    """Run ``scenario`` with ``time.time`` replaced by ``clock`` for everyone in the process
    (LiveKit and roark included, as freezegun does), and attach the call Roark received."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time", clock)
        asyncio.run(run_scenario(scenario, body))
    scenario.received = server.wait_for_call(scenario.room_sid, timeout=20)
    return scenario
