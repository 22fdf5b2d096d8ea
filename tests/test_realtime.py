"""Stories of calls with a realtime (speech-to-speech) model, in audio and in text modality.

The scripted realtime model detects and transcribes the caller's turns itself (LiveKit adds
the user turn from the model's input transcription), answers with its own audio (audio
modality) or with text the session's TTS speaks (text modality), and calls a tool. Both
calls run once, concurrently, in a module fixture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from livekit.agents import JobContext

from roark.testing import LocalRoark, observed_by_local_roark
from roark.testing.scripted import (
    CallScript,
    LLMReply,
    ScriptedCall,
    ScriptedRealtimeModel,
    ToolCallStep,
    UserTurn,
)

from .audio_checks import assert_speech_at
from .scenarios import GreetingByReply, Scenario, run_scenarios

GREETING = "Hello, order desk."
QUESTION = "Where is order 4217?"
ANSWER = "Order 4217 has shipped."
TOLERANCE = 0.06
QUESTION_AT = 1.5


def _model(modality: str, *, report_turn_start: bool) -> ScriptedRealtimeModel:
    return ScriptedRealtimeModel(
        [QUESTION],
        [
            LLMReply(GREETING),
            LLMReply(tool_calls=(ToolCallStep("lookup_order", {"order_id": "4217"}, "call_1"),)),
            LLMReply(ANSWER),
        ],
        modality=modality,  # type: ignore[arg-type]
        report_turn_start=report_turn_start,
    )


def _realtime_body(model: ScriptedRealtimeModel, *, with_tts: bool):
    async def body(ctx: JobContext, scenario: Scenario) -> None:
        assert scenario.call is not None
        session = scenario.call.build_session(
            llm=model,
            stt=None,
            vad=None,
            tts=scenario.call.tts if with_tts else None,
            turn_handling={"turn_detection": "realtime_llm"},
        )
        scenario.session = session
        scenario.seen["model"] = model
        await session.start(agent=GreetingByReply())

    return body


def _call() -> ScriptedCall:
    return ScriptedCall(
        CallScript(user_turns=[UserTurn(QUESTION, at=QUESTION_AT, duration=0.8)], llm_replies=[])
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRoark]:
    with observed_by_local_roark(tmp_path_factory.mktemp("realtime")) as local:
        yield local


@pytest.fixture(scope="module")
def runs(server: LocalRoark) -> dict[str, Scenario]:
    audio = _model("audio", report_turn_start=False)
    text = _model("text", report_turn_start=True)
    return run_scenarios(
        server,
        [
            (Scenario("audio", _call()), _realtime_body(audio, with_tts=False)),
            (Scenario("text", _call()), _realtime_body(text, with_tts=True)),
        ],
    )


@pytest.mark.parametrize("modality", ["audio", "text"])
def test_transcript_from_the_models_transcription_and_replies(
    runs: dict[str, Scenario], modality: str
) -> None:
    run = runs[modality]
    model: ScriptedRealtimeModel = run.seen["model"]
    assert [s.transcribed for s in model.sessions] == [[QUESTION]]
    assert run.spoken() == [("assistant", GREETING), ("user", QUESTION), ("assistant", ANSWER)]
    assert [t.get("interrupted") for t in run.got.transcript] == [False, None, False]
    assert run.got.ended["agentSpokeFirst"] is True
    assert run.got.reason == "job-shutdown"


@pytest.mark.parametrize("modality", ["audio", "text"])
def test_realtime_tool_call_and_result(runs: dict[str, Scenario], modality: str) -> None:
    tools = runs[modality].got.tool_calls
    assert [(t["kind"], t["toolCallId"]) for t in tools] == [
        ("tool_call", "call_1"),
        ("tool_result", "call_1"),
    ]
    assert tools[0]["name"] == "lookup_order"
    assert json.loads(tools[0]["arguments"]) == {"order_id": "4217"}
    assert json.loads(tools[1]["content"]) == {"order_id": "4217", "status": "shipped"}
    assert tools[1]["isError"] is False


def test_audio_modality_agent_audio_is_the_models_where_it_played(
    runs: dict[str, Scenario],
) -> None:
    run = runs["audio"]
    model: ScriptedRealtimeModel = run.seen["model"]
    played = run.call.output.segments
    # the model's own audio, as long as it rendered it (no TTS in this session)
    assert [round(s.played_seconds, 2) for s in played] == [
        round(model.speech_seconds(GREETING), 2),
        round(model.speech_seconds(ANSWER), 2),
    ]
    assert run.call.tts.synthesized == []
    assert_speech_at(
        run.got.recording, run.got.sample_rate, run.user_truth(), run.agent_truth(), TOLERANCE
    )


def test_text_modality_is_spoken_by_the_sessions_tts(runs: dict[str, Scenario]) -> None:
    run = runs["text"]
    assert run.call.tts.synthesized == [GREETING, ANSWER]
    assert_speech_at(
        run.got.recording, run.got.sample_rate, run.user_truth(), run.agent_truth(), TOLERANCE
    )


@pytest.mark.parametrize("modality", ["audio", "text"])
def test_agent_turns_point_at_where_they_played(runs: dict[str, Scenario], modality: str) -> None:
    run = runs[modality]
    agent = [t for t in run.got.transcript if t["role"] == "assistant"]
    for entry, (on, off) in zip(agent, run.agent_truth(), strict=True):
        assert abs(entry["audioOffsetMs"] / 1000 - on) < TOLERANCE, entry
        assert abs(entry["endAudioOffsetMs"] / 1000 - off) < TOLERANCE, entry


@pytest.mark.parametrize("modality", ["audio", "text"])
def test_realtime_model_metrics_delivered(runs: dict[str, Scenario], modality: str) -> None:
    metrics = runs[modality].got.metrics
    realtime = [m for m in metrics if m["kind"] == "realtime_model"]
    # one per response: the greeting, the tool call, the answer
    assert len(realtime) == 3
    assert all(m["totalTokens"] == 50 for m in realtime)


def test_user_turn_placed_where_the_provider_says_it_began(runs: dict[str, Scenario]) -> None:
    # the text-modality model reports turn_started_at, which LiveKit turns into the user
    # message's started_speaking_at
    run = runs["text"]
    (user,) = [t for t in run.got.transcript if t["role"] == "user"]
    (spoken_on, _), *_ = run.user_truth()
    assert abs(user["audioOffsetMs"] / 1000 - spoken_on) < TOLERANCE


def test_user_turn_placed_where_the_caller_spoke_without_provider_timing(
    runs: dict[str, Scenario],
) -> None:
    # the audio-modality model does not report turn_started_at: the user message has only its
    # created_at (when the transcription arrived); the model's own speech detection
    # (user_state_changed) says when the caller spoke
    run = runs["audio"]
    (user,) = [t for t in run.got.transcript if t["role"] == "user"]
    (spoken_on, spoken_off), *_ = run.user_truth()
    assert abs(user["audioOffsetMs"] / 1000 - spoken_on) < 0.15, (user, spoken_on)
    assert abs(user["endAudioOffsetMs"] / 1000 - spoken_off) < 0.45, (user, spoken_off)
