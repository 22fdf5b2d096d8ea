"""The public API around a call: the decorator, switches, observe_session, current_call."""

from __future__ import annotations

import asyncio
import inspect
import logging
from pathlib import Path

import pytest
from livekit.agents import AgentServer, JobContext

import roark
from roark.testing import LocalRoark
from roark.testing.scripted import ScriptedCall, SupportAgent, run_job

from .calls import ANSWER, GREETING, QUESTION, ObservedRun, short_script


def test_decorator_keeps_name_signature_and_docstring() -> None:
    async def entrypoint(ctx: JobContext) -> None:
        """Start the support agent."""

    observed = roark.observe(agent_id="a")(entrypoint)
    assert observed.__name__ == "entrypoint"
    assert observed.__doc__ == "Start the support agent."
    assert inspect.signature(observed) == inspect.signature(entrypoint)
    assert inspect.iscoroutinefunction(observed)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"agent_id": ""}, "agent_id"),
        ({"agent_id": 7}, "agent_id"),
        ({"agent_id": "a", "agent_name": 3}, "agent_name"),
        ({"agent_id": "a", "is_test": "yes"}, "is_test"),
        ({"agent_id": "a", "capture_audio": None}, "capture_audio"),
        ({"agent_id": "a", "when": object()}, "metadata"),
    ],
)
def test_decorator_rejects_bad_options_at_import_time(kwargs: dict, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        roark.observe(**kwargs)


def test_decorator_refuses_a_sync_function() -> None:
    with pytest.raises(TypeError, match="async"):
        roark.observe(agent_id="a")(lambda ctx: None)


def test_stacks_with_agent_server_rtc_session(roark_server: LocalRoark) -> None:
    run = ObservedRun()
    server = AgentServer()
    registered = server.rtc_session(agent_name="support")(
        roark.observe(agent_id="stacked-agent")(run.entrypoint)
    )
    asyncio.run(run_job(registered, call=run.call, timeout=60))
    received = roark_server.wait_for_call(timeout=20)
    assert received.started["agentId"] == "stacked-agent"
    assert [t["content"] for t in received.transcript] == [GREETING, QUESTION, ANSWER]


def test_stacks_above_agent_server_rtc_session_too(roark_server: LocalRoark) -> None:
    # rtc_session() registers the bare function; roark finds it running all the same
    run = ObservedRun()
    server = AgentServer()
    bare = server.rtc_session(agent_name="support")(run.entrypoint)
    roark.observe(agent_id="above-agent")(bare)
    asyncio.run(run_job(bare, call=run.call, timeout=60))
    received = roark_server.wait_for_call(timeout=20)
    assert received.started["agentId"] == "above-agent"
    assert [t["content"] for t in received.transcript] == [GREETING, QUESTION, ANSWER]
    assert received.reason == "job-shutdown"


# what observing a session's audio adds to the objects (their own attributes)
OBSERVING = {"capture_frame", "flush", "_roark_tap"}


def _observed(audio: object) -> bool:
    return bool(OBSERVING & set(vars(audio)))


def _assert_not_observed(run: ObservedRun) -> None:
    # the session's audio after start() was the user's objects, as they were
    assert [audio for audio, _ in run.audio_after_start] == [run.call.input, run.call.output]
    assert all(not OBSERVING & names for _, names in run.audio_after_start)


def _assert_untouched(run: ObservedRun) -> None:
    _assert_not_observed(run)
    assert [s.played_seconds > 0 for s in run.call.output.segments] == [True, True]


def test_kill_switch_runs_the_entrypoint_as_undecorated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROARK_OBSERVABILITY_ENABLED", "off")
    with LocalRoark() as server:
        roark.configure(api_key=server.api_key, base_url=server.base_url, spool_dir=tmp_path)
        try:
            run = ObservedRun()
            asyncio.run(run.run())
            assert roark.current_call() is None
        finally:
            roark.shutdown()
        _assert_untouched(run)
        assert server.requests_log == []


def test_no_key_warns_once_and_observes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("ROARK_API_KEY", raising=False)
    with caplog.at_level(logging.WARNING, logger="roark"):
        roark.configure(spool_dir=tmp_path)
        try:
            run = ObservedRun()
            asyncio.run(run.run())
        finally:
            roark.shutdown()
    _assert_untouched(run)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("roark")] == [
        "ROARK_API_KEY is not set: calls are not observed"
    ]
    assert list(tmp_path.iterdir()) == []


def test_observe_session_before_start_and_current_call(roark_server: LocalRoark) -> None:
    script = short_script()
    call = ScriptedCall(script)
    seen: dict[str, object] = {}

    async def entrypoint(ctx: JobContext) -> None:
        session = call.build_session()
        handle = roark.observe_session(ctx, session, agent_id="manual-agent", team="care")
        seen["handle"] = handle
        seen["current"] = roark.current_call()
        await session.start(agent=SupportAgent(greeting=script.greeting))
        # the user's objects, observed where they are
        assert session.input.audio is call.input and _observed(call.input)
        assert session.output.audio is call.output and _observed(call.output)

    asyncio.run(run_job(entrypoint, call=call, timeout=60))
    received = roark_server.wait_for_call(timeout=20)
    assert isinstance(seen["handle"], roark.Call)
    assert seen["current"] is seen["handle"]
    assert received.started["agentId"] == "manual-agent"
    assert received.metadata == {"team": "care"}
    assert [t["content"] for t in received.transcript] == [GREETING, QUESTION, ANSWER]
    assert received.recording is not None


def test_observe_session_after_start_taps_from_then_on(roark_server: LocalRoark) -> None:
    script = short_script()
    call = ScriptedCall(script)

    async def entrypoint(ctx: JobContext) -> None:
        session = call.build_session()
        await session.start(agent=SupportAgent(greeting=script.greeting))
        roark.observe_session(ctx, session, agent_id="late-agent")
        assert session.output.audio is call.output and _observed(call.output)

    asyncio.run(run_job(entrypoint, call=call, timeout=60))
    received = roark_server.wait_for_call(timeout=20)
    assert received.started["agentId"] == "late-agent"
    # the user's question came after observation began, so it is on the left channel
    assert [t["content"] for t in received.transcript if t["role"] == "user"] == [QUESTION]


def test_aflush_ends_the_call_with_the_given_reason_once(roark_server: LocalRoark) -> None:
    script = short_script()
    call = ScriptedCall(script)
    results: list[bool] = []

    @roark.observe(agent_id="hangs-up")
    async def entrypoint(ctx: JobContext) -> None:
        session = call.build_session()
        await session.start(agent=SupportAgent(greeting=script.greeting))

        async def hang_up_after_answer() -> None:
            await call.wait_until_done(timeout=30)
            handle = roark.current_call()
            assert handle is not None
            results.append(await handle.aflush(reason="transferred-to-human"))
            results.append(await handle.aflush(reason="ignored-second-reason"))

        await hang_up_after_answer()

    asyncio.run(run_job(entrypoint, call=call, timeout=60))
    received = roark_server.wait_for_call(timeout=20)
    assert results == [True, True]
    assert received.reason == "transferred-to-human"
    assert received.ended_count == 1
    assert [t["content"] for t in received.transcript] == [GREETING, QUESTION, ANSWER]


def test_capture_audio_off_sends_no_recording(roark_server: LocalRoark) -> None:
    run = ObservedRun(capture_audio=False)
    asyncio.run(run.run())
    received = roark_server.wait_for_call(run.room_sid, timeout=20)
    assert received.chunks == {}
    assert "recordingSampleRate" not in received.ended
    _assert_not_observed(run)
    assert [t["content"] for t in received.transcript] == [GREETING, QUESTION, ANSWER]
    offsets = [t["audioOffsetMs"] for t in received.transcript]
    assert offsets == sorted(offsets) and offsets[1] > 1000


def test_works_beside_livekits_own_recorder(
    roark_server: LocalRoark, caplog: pytest.LogCaptureFixture
) -> None:
    run = ObservedRun(start_kwargs={"record": True})
    with caplog.at_level(logging.INFO, logger="roark.taps"):
        asyncio.run(run.run())
    session = run.call.session
    assert session is not None
    # one line per side: the recorder wrapping the user's audio in start() is no new side
    assert [r.getMessage() for r in caplog.records if r.name == "roark.taps"] == [
        "tapping user audio input (ScriptedAudioInput)",
        "tapping agent audio output (RealtimeAudioOutput)",
    ]
    received = roark_server.wait_for_call(run.room_sid, timeout=20)
    assert [t["content"] for t in received.transcript] == [GREETING, QUESTION, ANSWER]
    from .audio_checks import active_runs

    rate = received.sample_rate
    assert len(active_runs(received.recording[:, 0], rate)) == 1
    assert len(active_runs(received.recording[:, 1], rate)) == 2
    # LiveKit's recorder wrapped the session's audio and wrote its own file as usual
    recorded = run.ctx.session_directory / "audio.ogg"
    assert recorded.exists() and recorded.stat().st_size > 1000
