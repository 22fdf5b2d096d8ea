"""Stories of sessions of other shapes: text only, two in one job, never started, closed at once.

- text only: no audio input or output, the caller types (``generate_reply(user_input=...)``);
- two ``AgentSession``s in one job: the first started is the call; the second is ignored
  with one info line, or, when the developer observes it with ``observe_session``, is a
  call of its own;
- a session never started (with or without ``observe_session``), and one started and
  closed at once: nothing reaches Roark and nothing stays in the spool.

All the jobs run once, concurrently, in a module fixture.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import AgentSession, JobContext

import roark
from roark.testing import LocalRoark, ReceivedCall, observed_by_local_roark
from roark.testing.scripted import LLMReply, ScriptedLLM, SupportAgent, ToolCallStep

from .scenarios import Scenario, run_scenario

QUESTION = "Where is order 4217?"
ANSWER = "Order 4217 has shipped."
SECOND_QUESTION = "Can I change the address?"
SECOND_ANSWER = "Yes, tell me the new one."


def _text_session(*replies: LLMReply) -> AgentSession:
    return AgentSession(llm=ScriptedLLM(replies))


async def _text_only(ctx: JobContext, scenario: Scenario) -> None:
    session = scenario.session = _text_session(
        LLMReply(tool_calls=(ToolCallStep("lookup_order", {"order_id": "4217"}, "call_1"),)),
        LLMReply(ANSWER),
    )
    await session.start(agent=SupportAgent())
    scenario.seen["audio"] = (session.input.audio, session.output.audio)
    await session.generate_reply(user_input=QUESTION)


class _TaskLog(logging.Handler):
    """roark's log records, with the asyncio task that emitted each."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[Any, logging.LogRecord]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        self.records.append((task, record))

    def lines(self, task: Any, since: int, level: int = logging.INFO) -> list[str]:
        return [r.getMessage() for t, r in self.records[since:] if t is task and r.levelno >= level]


LOG = _TaskLog()


def _two_sessions(observe_second: bool):
    async def body(ctx: JobContext, scenario: Scenario) -> None:
        first = scenario.session = _text_session(LLMReply(ANSWER))
        second = _text_session(LLMReply(SECOND_ANSWER))
        scenario.seen["second"] = second
        await first.start(agent=SupportAgent())
        if observe_second:
            roark.observe_session(ctx, second, agent_id="second-agent")
        since = len(LOG.records)
        await second.start(agent=SupportAgent())
        scenario.seen["lines"] = LOG.lines(asyncio.current_task(), since)
        await first.generate_reply(user_input=QUESTION)
        await second.generate_reply(user_input=SECOND_QUESTION)
        await second.aclose()

    return body


def _never_started(observe: bool):
    async def body(ctx: JobContext, scenario: Scenario) -> None:
        session = scenario.session = _text_session()
        if observe:
            scenario.seen["call"] = roark.observe_session(ctx, session, agent_id="never-started")

    return body


async def _closed_at_once(ctx: JobContext, scenario: Scenario) -> None:
    session = scenario.session = _text_session()
    await session.start(agent=SupportAgent())
    await session.aclose()


BODIES = {
    "text-only": _text_only,
    "two-sessions": _two_sessions(observe_second=False),
    "two-observed": _two_sessions(observe_second=True),
    "never-started": _never_started(observe=False),
    "never-started-observed": _never_started(observe=True),
    "closed-at-once": _closed_at_once,
}
SILENT = ("never-started", "never-started-observed", "closed-at-once")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session-shapes")


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[LocalRoark]:
    with observed_by_local_roark(folder) as local:
        yield local


@pytest.fixture(scope="module")
def runs(server: LocalRoark) -> dict[str, Scenario]:
    scenarios = {name: Scenario(name) for name in BODIES}
    roark_log = logging.getLogger("roark")
    roark_log.addHandler(LOG)
    previous = roark_log.level
    roark_log.setLevel(logging.DEBUG)
    try:

        async def run_all() -> None:
            await asyncio.gather(*(run_scenario(scenarios[n], BODIES[n]) for n in BODIES))

        asyncio.run(run_all())
    finally:
        roark_log.removeHandler(LOG)
        roark_log.setLevel(previous)
    assert roark.flush(10.0)
    for name, scenario in scenarios.items():
        if name not in SILENT:
            scenario.received = server.wait_for_call(scenario.room_sid, timeout=20)
    return scenarios


# -- text only ---------------------------------------------------------------------------


def test_text_only_transcript_tools_and_metrics(runs: dict[str, Scenario]) -> None:
    run = runs["text-only"]
    assert run.seen["audio"] == (None, None)
    assert run.spoken() == [("user", QUESTION), ("assistant", ANSWER)]
    assert [(t["kind"], t["toolCallId"]) for t in run.got.tool_calls] == [
        ("tool_call", "call_1"),
        ("tool_result", "call_1"),
    ]
    llm = [m for m in run.got.metrics if m["kind"] == "llm"]
    assert [(m["promptTokens"], m["completionTokens"]) for m in llm] == [(50, 20), (50, 20)]
    assert run.got.ended["agentSpokeFirst"] is False
    offsets = [t["audioOffsetMs"] for t in run.got.transcript]
    assert offsets == sorted(offsets)


def test_text_only_sends_no_recording(runs: dict[str, Scenario]) -> None:
    got = runs["text-only"].got
    assert got.chunk_puts == [] and got.upload_url_requests == []
    assert "recordingSampleRate" not in got.ended
    assert "recordingNumChannels" not in got.ended


# -- two sessions in one job ---------------------------------------------------------------


def test_the_first_session_is_the_call(runs: dict[str, Scenario]) -> None:
    run = runs["two-sessions"]
    assert run.spoken() == [("user", QUESTION), ("assistant", ANSWER)]
    assert run.got.started_count == 1 and run.got.ended_count == 1
    assert run.got.started["metadata"] == {"scenario": "two-sessions"}


def _calls_of_job(server: LocalRoark, scenario: Scenario) -> list[ReceivedCall]:
    return [
        c
        for c in server.calls().values()
        if c.started is not None and c.started.get("jobId") == scenario.ctx.job.id
    ]


def test_the_second_session_sends_nothing_of_its_own(
    runs: dict[str, Scenario], server: LocalRoark
) -> None:
    run = runs["two-sessions"]
    assert [c.livekit_call_id for c in _calls_of_job(server, run)] == [run.room_sid]


def test_the_second_session_is_ignored_with_one_info_line(runs: dict[str, Scenario]) -> None:
    lines = runs["two-sessions"].seen["lines"]
    assert len(lines) == 1, lines
    assert "AgentSession" in lines[0], lines


def test_a_second_session_observed_by_hand_is_a_call_of_its_own(
    runs: dict[str, Scenario], server: LocalRoark
) -> None:
    run = runs["two-observed"]
    calls = _calls_of_job(server, run)
    assert sorted(c.started["agentId"] for c in calls) == ["scenario-agent", "second-agent"]
    assert len({c.livekit_call_id for c in calls}) == 2
    by_agent = {c.started["agentId"]: c for c in calls}
    first, second = by_agent["scenario-agent"], by_agent["second-agent"]
    assert [(t["role"], t["content"]) for t in first.transcript] == [
        ("user", QUESTION),
        ("assistant", ANSWER),
    ]
    assert [(t["role"], t["content"]) for t in second.transcript] == [
        ("user", SECOND_QUESTION),
        ("assistant", SECOND_ANSWER),
    ]
    assert all(c.started_count == 1 and c.ended_count == 1 for c in calls)
    assert all(c.violations == [] for c in calls)


# -- sessions that never became calls ------------------------------------------------------


def test_a_call_prepared_for_a_session_never_started_ends_with_its_job(
    runs: dict[str, Scenario],
) -> None:
    call = runs["never-started-observed"].seen["call"]
    assert isinstance(call, roark.Call)
    assert call.ended and not call.begun


@pytest.mark.parametrize("name", ["never-started", "never-started-observed"])
def test_a_session_never_started_sends_nothing(
    runs: dict[str, Scenario], server: LocalRoark, name: str
) -> None:
    assert _calls_of_job(server, runs[name]) == []
    assert runs[name].room_sid not in server.calls()


def test_a_session_started_and_closed_at_once_sends_nothing(
    runs: dict[str, Scenario], server: LocalRoark
) -> None:
    run = runs["closed-at-once"]
    assert _calls_of_job(server, run) == []


def test_nothing_is_left_in_the_spool(runs: dict[str, Scenario], folder: Path) -> None:
    assert [p for p in (folder / "spool").rglob("*") if p.is_file()] == []
