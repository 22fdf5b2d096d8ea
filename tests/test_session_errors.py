"""Stories of sessions that meet provider errors: an LLM or a TTS that fails for good, and an
LLM error that a retry gets past.

LiveKit retries a failed request (``conn_options.max_retry``) and emits each failure as an
``error`` event, recoverable while a retry is left; an unrecoverable error beyond the
session's ``max_unrecoverable_errors`` closes the session with ``CloseReason.ERROR``. The
three calls run once, concurrently, in a module fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from livekit.agents import APIConnectOptions, JobContext
from livekit.agents.voice.agent_session import SessionConnectOptions

from roark.testing import LocalRoark, observed_by_local_roark
from roark.testing.scripted import (
    CallScript,
    FailingLLM,
    FailingTTS,
    LLMReply,
    ScriptedCall,
    SupportAgent,
    UserTurn,
)

from .calls import GREETING, QUESTION
from .scenarios import Scenario, run_scenarios

ANSWER = "Order 4217 has shipped."
SCRIPT = CallScript(
    greeting=GREETING,
    user_turns=[UserTurn(QUESTION, at=1.2, duration=0.8)],
    llm_replies=[LLMReply(ANSWER)],
)


def _conn_options(*, llm_retries: int = 0, tts_retries: int = 0) -> SessionConnectOptions:
    def options(retries: int) -> APIConnectOptions:
        return APIConnectOptions(max_retry=retries, retry_interval=0.05, timeout=5.0)

    return SessionConnectOptions(
        llm_conn_options=options(llm_retries),
        tts_conn_options=options(tts_retries),
        max_unrecoverable_errors=0,
    )


def _body(**session_kwargs: Any):
    async def body(ctx: JobContext, scenario: Scenario) -> None:
        assert scenario.call is not None
        scenario.session = scenario.call.build_session(**session_kwargs)
        await scenario.session.start(agent=SupportAgent(greeting=GREETING))

    return body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRoark]:
    with observed_by_local_roark(tmp_path_factory.mktemp("errors")) as local:
        yield local


@pytest.fixture(scope="module")
def runs(server: LocalRoark) -> dict[str, Scenario]:
    llm_down = FailingLLM(failures=None)
    llm_blip = FailingLLM([LLMReply(ANSWER)], failures=1)
    tts_down = FailingTTS(failures=None)
    scenarios = [
        (
            Scenario("llm-down", ScriptedCall(SCRIPT), seen={"llm": llm_down}),
            _body(llm=llm_down, conn_options=_conn_options(llm_retries=1)),
        ),
        (
            Scenario("llm-blip", ScriptedCall(SCRIPT), seen={"llm": llm_blip}),
            _body(llm=llm_blip, conn_options=_conn_options(llm_retries=2)),
        ),
        (
            Scenario("tts-down", ScriptedCall(SCRIPT), seen={"tts": tts_down}),
            _body(tts=tts_down, conn_options=_conn_options()),
        ),
    ]
    return run_scenarios(server, scenarios)


def _errors(run: Scenario) -> list[tuple[str, str, str, bool]]:
    """(source, error type, message, recoverable) of the call's error records."""
    return [
        (e["source"], e["error"], e["message"], e["recoverable"])
        for e in (m["extra"] for m in run.got.metrics if m["kind"] == "error")
    ]


def test_an_llm_down_for_good_ends_the_call_with_an_error(runs: dict[str, Scenario]) -> None:
    run = runs["llm-down"]
    assert run.seen["llm"].attempts == 2
    assert run.got.reason == "error"
    assert run.spoken() == [("assistant", GREETING), ("user", QUESTION)]
    lost = "scripted LLM connection lost"
    assert _errors(run) == [
        ("FailingLLM", "APIConnectionError", f"{lost} (attempt 1)", True),
        ("FailingLLM", "APIConnectionError", f"{lost} (attempt 2)", False),
    ]
    # the recording ends with the call, after the caller's question
    assert run.got.transcript[-1]["endAudioOffsetMs"] <= run.got.duration_s * 1000


def test_a_retried_llm_error_is_recorded_and_the_call_goes_on(runs: dict[str, Scenario]) -> None:
    run = runs["llm-blip"]
    assert run.seen["llm"].attempts == 2
    assert run.got.reason == "job-shutdown"
    assert run.spoken() == [("assistant", GREETING), ("user", QUESTION), ("assistant", ANSWER)]
    assert _errors(run) == [
        ("FailingLLM", "APIConnectionError", "scripted LLM connection lost (attempt 1)", True)
    ]


def test_a_tts_down_for_good_ends_the_call_with_an_error(runs: dict[str, Scenario]) -> None:
    run = runs["tts-down"]
    assert run.got.reason == "error"
    assert _errors(run) == [
        ("FailingTTS", "APIConnectionError", "scripted TTS connection lost (attempt 1)", False)
    ]
    # the greeting was never spoken: no turn, nothing played, a silent agent channel
    assert run.spoken() == []
    assert run.call is not None and run.call.output.segments == []
    assert run.got.agent_audio is not None and not run.got.agent_audio.any()
