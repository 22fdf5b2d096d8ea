"""Stories of observed calls: scripted calls through real AgentSessions under @roark.observe,
delivered over real HTTP to the local Roark; assertions on what Roark received.

The calls run once, concurrently, in a module fixture; each test reads one aspect.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit.agents import JobContext, function_tool
from livekit.agents.llm import ChatMessage, ImageContent
from livekit.agents.metrics import LLMMetrics
from livekit.agents.voice import ConversationItemAddedEvent, MetricsCollectedEvent

import roark
from roark._handoff.audio_buffer import RESYNC_TOLERANCE
from roark._threads.recording import INPUT_STALL
from roark.testing import LocalRoark, ReceivedCall, observed_by_local_roark
from roark.testing.scripted import (
    CallScript,
    LLMReply,
    ScriptedCall,
    SupportAgent,
    ToolCallStep,
    UserTurn,
    run_job,
)

from .audio_checks import active_runs, assert_speech_at, energy, parse_iso

PROMPT = "You are a support agent for an online shop."
GREETING = "Hello! How can I help you today?"
TURN_1 = "Hi, where is my order?"
TURN_2 = "It is 4 2 1 7."
ASK_NUMBER = "Sure. What is your order number?"
SHIPPED = "Your order 4217 has shipped."
LONG_REPLY = (
    "Let me tell you everything about your order: it was packed at our warehouse on Monday, "
    "handed to the courier on Tuesday, and it is now travelling across the country to you."
)
UNICODE_TURN = "Grüße aus Köln, Bestellung № 77 ☎ 東京"
TOLERANCE = 0.05  # seconds: where speech lands on the recording vs. when it really happened
EXACT = 0.01  # seconds: where a caller turn begins, found sample for sample, vs. its truth
FRAME = 0.02  # seconds: one audio frame

MAIN = CallScript(
    greeting=GREETING,
    user_turns=[UserTurn(TURN_1, at=2.2), UserTurn(TURN_2, at=5.6)],
    llm_replies=[
        LLMReply(ASK_NUMBER),
        LLMReply(tool_calls=(ToolCallStep("lookup_order", {"order_id": "4217"}, "call_1"),)),
        LLMReply(SHIPPED),
    ],
)
INTERRUPT = CallScript(
    user_turns=[
        UserTurn("Tell me about my order.", at=0.4, duration=0.8),
        UserTurn("Stop, please.", at=3.0, duration=0.8),
    ],
    llm_replies=[LLMReply(LONG_REPLY), LLMReply("Okay, sorry.")],
)


def _rates_script(rate_in: int, channels: int, frame_ms: float, rate_out: int) -> CallScript:
    return CallScript(
        greeting="Hi, order desk.",
        user_turns=[UserTurn("Where is order 99?", at=1.4, duration=0.9)],
        llm_replies=[LLMReply("Order 99 is on its way.")],
        input_sample_rate=rate_in,
        input_channels=channels,
        input_frame_ms=frame_ms,
        output_sample_rate=rate_out,
    )


RATES = {
    "in8k-mono-20ms-out16k": _rates_script(8000, 1, 20.0, 16000),
    "in24k-stereo-10ms-out22k": _rates_script(24000, 2, 10.0, 22050),
    "in48k-stereo-10ms-out44k": _rates_script(48000, 2, 10.0, 44100),
    "in16k-mono-13.7ms-out48k": _rates_script(16000, 1, 13.7, 48000),
}

# the caller's source stops producing frames for a second (a muted mic), then resumes
PAUSED = CallScript(
    user_turns=[
        UserTurn("Where is order 99?", at=0.6, duration=0.8),
        UserTurn("Thanks.", at=3.2, duration=0.6),
    ],
    llm_replies=[LLMReply("On its way."), LLMReply("Bye now.")],
    input_sample_rate=16000,
    output_sample_rate=16000,
    input_pauses=((2.0, 1.0),),
)

BAD_INPUT = CallScript(
    user_turns=[UserTurn(UNICODE_TURN, at=0.4, duration=0.8)],
    llm_replies=[
        LLMReply(
            tool_calls=(
                ToolCallStep("odd_result", {"what": "set"}, "call_set"),
                ToolCallStep("huge_result", {}, "call_huge"),
                ToolCallStep("lookup_order", {"order_id": "abc"}, "call_bad"),
            )
        ),
        LLMReply("Done, ☺."),
    ],
)


class BadInputAgent(SupportAgent):
    """Tools that give roark awkward things to report."""

    @function_tool
    async def odd_result(self, what: str) -> Any:
        """Returns something that is not JSON."""
        session = self.session
        # a multimodal message and a NaN metric, through the session's real event emitter
        session.emit(
            "conversation_item_added",
            ConversationItemAddedEvent(
                item=ChatMessage(
                    role="user",
                    content=["look at", ImageContent(image="https://example.com/a.png"), "this"],
                )
            ),
        )
        session.emit(
            "metrics_collected",
            MetricsCollectedEvent(
                metrics=LLMMetrics(
                    label="odd",
                    request_id="r-nan",
                    timestamp=time.time(),
                    duration=float("nan"),
                    ttft=float("inf"),
                    cancelled=False,
                    completion_tokens=3,
                    prompt_tokens=4,
                    prompt_cached_tokens=0,
                    total_tokens=7,
                    tokens_per_second=float("nan"),
                )
            ),
        )
        return {1, 2, 3}

    @function_tool
    async def huge_result(self) -> str:
        """Returns a very long text."""
        return "x" * 100_000


@dataclass
class Observed:
    script: CallScript
    call: ScriptedCall
    ctx: JobContext
    received: ReceivedCall

    @property
    def t0(self) -> float:
        """Wall time of the recording's first sample (call-started's timestamp)."""
        assert self.received.started is not None
        return parse_iso(self.received.started["eventTimestamp"])


async def _observed_call(
    name: str, script: CallScript, agent: type[SupportAgent] = SupportAgent
) -> tuple[ScriptedCall, JobContext]:
    call = ScriptedCall(script)

    @roark.observe(
        agent_id="support-bot-v3",
        agent_name="Support Bot v3",
        agent_prompt=PROMPT,
        tier="gold",
        scenario=name,
    )
    async def entrypoint(ctx: JobContext) -> None:
        """The agent's entrypoint."""
        session = call.build_session()
        await session.start(agent=agent(greeting=script.greeting))

    ctx = await run_job(entrypoint, call=call, job_id=f"job-{name}", timeout=60.0)
    return call, ctx


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRoark]:
    with observed_by_local_roark(tmp_path_factory.mktemp("observed")) as local:
        yield local


@pytest.fixture(scope="module")
def observed(server: LocalRoark) -> dict[str, Observed]:
    scenarios: dict[str, tuple[CallScript, type[SupportAgent]]] = {
        "main": (MAIN, SupportAgent),
        "interrupt": (INTERRUPT, SupportAgent),
        "bad_input": (BAD_INPUT, BadInputAgent),
        "paused": (PAUSED, SupportAgent),
        **{name: (script, SupportAgent) for name, script in RATES.items()},
    }

    async def run_all() -> list[tuple[ScriptedCall, JobContext]]:
        return await asyncio.gather(
            *(_observed_call(name, s, agent) for name, (s, agent) in scenarios.items())
        )

    results = asyncio.run(run_all())
    out = {}
    for (name, (script, _)), (call, ctx) in zip(scenarios.items(), results, strict=True):
        received = server.wait_for_call(ctx.job.room.sid, timeout=20)
        out[name] = Observed(script=script, call=call, ctx=ctx, received=received)
    return out


# -- lifecycle and identity --------------------------------------------------------------


def test_one_call_started_and_one_call_ended_per_call(
    observed: dict[str, Observed], server: LocalRoark
) -> None:
    assert len(server.calls()) == len(observed)
    for obs in observed.values():
        assert obs.received.started_count == 1
        assert obs.received.ended_count == 1
        assert [e["event"] for e in obs.received.events] == ["call-started", "call-ended"]
    server.assert_no_violations()
    assert server.put_header_violations == 0


def test_call_started_carries_agent_room_job_and_metadata(observed: dict[str, Observed]) -> None:
    obs = observed["main"]
    started = obs.received.started
    assert started is not None
    sid = obs.ctx.job.room.sid
    assert sid.startswith("RM_")
    assert started["livekitCallId"] == sid
    assert started["agentId"] == "support-bot-v3"
    assert started["agentName"] == "Support Bot v3"
    assert started["agentPrompt"] == PROMPT
    assert started["isTest"] is False
    assert started["roomSid"] == sid
    assert started["roomName"] == "test-room"
    assert started["jobId"] == "job-main"
    assert started["metadata"] == {"tier": "gold", "scenario": "main"}


def test_call_ended_reason_is_the_job_shutdown(observed: dict[str, Observed]) -> None:
    # LiveKit's runner closed the session, then ran the job's shutdown callbacks
    for obs in observed.values():
        assert obs.received.reason == "job-shutdown"
        ended = obs.received.ended
        assert ended is not None
        assert parse_iso(ended["callEndedAt"]) >= parse_iso(ended["callStartedAt"])


# -- transcript, tools, metrics ----------------------------------------------------------


def test_transcript_in_spoken_order(observed: dict[str, Observed]) -> None:
    transcript = observed["main"].received.transcript
    assert [(t["role"], t["content"]) for t in transcript] == [
        ("assistant", GREETING),
        ("user", TURN_1),
        ("assistant", ASK_NUMBER),
        ("user", TURN_2),
        ("assistant", SHIPPED),
    ]
    assert [t.get("interrupted") for t in transcript if t["role"] == "assistant"] == [False] * 3
    assert observed["main"].received.ended["agentSpokeFirst"] is True


def test_tool_call_paired_with_its_result(observed: dict[str, Observed]) -> None:
    tools = observed["main"].received.tool_calls
    assert [(t["kind"], t["toolCallId"]) for t in tools] == [
        ("tool_call", "call_1"),
        ("tool_result", "call_1"),
    ]
    call, result = tools
    assert call["name"] == "lookup_order"
    assert json.loads(call["arguments"]) == {"order_id": "4217"}
    assert json.loads(result["content"]) == {"order_id": "4217", "status": "shipped"}
    assert result["isError"] is False
    assert result["audioOffsetMs"] >= call["audioOffsetMs"]


def test_metrics_have_latencies_and_token_counts(observed: dict[str, Observed]) -> None:
    metrics = observed["main"].received.metrics
    by_kind: dict[str, list[dict]] = {}
    for record in metrics:
        by_kind.setdefault(record["kind"], []).append(record)
    assert {"llm", "stt", "tts", "eou", "turn", "usage"} <= set(by_kind)
    assert "vad" not in by_kind
    assert len(by_kind["llm"]) == 3
    for record in by_kind["llm"]:
        assert (record["promptTokens"], record["completionTokens"], record["totalTokens"]) == (
            50,
            20,
            70,
        )
        assert record["ttft"] >= 0
    assert len(by_kind["eou"]) == 2
    for record in by_kind["eou"]:
        assert 0.2 <= record["endOfUtteranceDelay"] < 0.8
        assert record["transcriptionDelay"] >= 0
    assert len(by_kind["stt"]) == 2
    assert len(by_kind["tts"]) == 3
    assert all(r["ttfb"] >= 0 for r in by_kind["tts"])
    (llm_usage,) = [r for r in by_kind["usage"] if r["extra"]["usageType"] == "llm"]
    assert (llm_usage["promptTokens"], llm_usage["completionTokens"]) == (150, 60)


def test_bad_input_is_delivered_cleanly(observed: dict[str, Observed]) -> None:
    received = observed["bad_input"].received
    transcript = [(t["role"], t["content"]) for t in received.transcript]
    assert ("user", UNICODE_TURN) in transcript
    # multimodal content: the text parts joined, the image left out
    assert ("user", "look at\nthis") in transcript
    results = {t["toolCallId"]: t for t in received.tool_calls if t["kind"] == "tool_result"}
    assert set(results) == {"call_set", "call_huge", "call_bad"}
    # LiveKit renders the set as a list; roark forwards the tool output text as it is
    assert results["call_set"]["content"] == "[1, 2, 3]"
    huge = results["call_huge"]["content"]
    assert len(huge) <= 16_000 and huge.endswith("…[truncated by roark]")
    assert results["call_bad"]["isError"] is True
    assert "abc" in results["call_bad"]["content"]
    nan_metric = [m for m in received.metrics if m["kind"] == "llm" and m.get("promptTokens") == 4]
    assert len(nan_metric) == 1
    assert "duration" not in nan_metric[0] and "ttft" not in nan_metric[0]
    assert "tokensPerSecond" not in nan_metric[0]
    assert nan_metric[0]["totalTokens"] == 7


# -- the recording -----------------------------------------------------------------------


def _check_channels(obs: Observed) -> None:
    t0 = obs.t0
    # where the caller spoke: a frame the loop handed out late (the loop was busy, or
    # blocked) still belongs where it was due; only a loop blocked for longer than
    # INPUT_STALL had the caller taken as silent meanwhile, and what it held back may then
    # follow the part of the recording already cut
    user = [(on - t0, off - t0) for on, off in obs.call.input.turns_due()]
    late = obs.call.input.max_lateness
    tolerance = TOLERANCE + (late if late > INPUT_STALL else 0.0)
    _check_placement(obs, user, _played(obs, t0), tolerance)


def _played(obs: Observed, t0: float) -> list[tuple[float, float]]:
    """(start, end) seconds from ``t0`` of each agent segment the speaker played."""
    return [
        (s.started_at - t0, s.started_at - t0 + s.played_seconds)
        for s in obs.call.output.segments
        if s.started_at is not None and s.played_seconds > 0
    ]


def _caller_turns_exact(obs: Observed) -> list[int]:
    """Each caller turn is on the left channel sample for sample as the source made it, and
    nothing else is; returns where each one begins (samples)."""
    left = obs.received.recording[:, 0]
    starts, end = [], 0
    for index in range(len(obs.script.user_turns)):
        want = obs.call.input.turn_audio(index)
        lead = int(np.flatnonzero(want)[0])  # a tone may begin on a zero crossing
        start = end + int(np.flatnonzero(left[end:])[0]) - lead
        assert not left[end:start].any()
        # whole and in one piece: no gap, no overlap, nothing missing, nothing doubled
        assert np.array_equal(left[start : start + len(want)], want), index
        starts.append(start)
        end = start + len(want)
    assert not left[end:].any()
    return starts


def _spoken_at(obs: Observed) -> list[float]:
    """Where the caller's turns began, in seconds from the recording's first sample.

    The scripted source hands a frame out when its first sample is due, not when its last
    is (as a device does), so the tap, which takes a frame to have begun one frame before it
    arrived, places the caller's audio one frame early: at the recording's first sample when
    that is earlier."""
    audio_in = obs.call.input
    assert audio_in.started_at is not None
    began = max(0.0, audio_in.started_at - audio_in.frame_seconds - obs.t0)
    return [began + turn.at for turn in obs.script.user_turns]


def _check_placement(
    obs: Observed,
    user: list[tuple[float, float]],
    agent: list[tuple[float, float]],
    tolerance: float,
) -> None:
    """Each side's speech is one run on its own channel where it happened, and only there."""
    rec = obs.received.recording
    rate = obs.received.sample_rate
    assert rec is not None and rate is not None
    assert_speech_at(rec, rate, user, agent, tolerance)


def test_speech_lands_where_it_was_spoken_and_played(observed: dict[str, Observed]) -> None:
    _check_channels(observed["main"])


@pytest.mark.parametrize("name", list(RATES))
def test_every_sample_rate_and_frame_size(observed: dict[str, Observed], name: str) -> None:
    obs = observed[name]
    assert obs.received.sample_rate == obs.script.output_sample_rate
    assert obs.received.ended["recordingNumChannels"] == 2
    _check_channels(obs)


def test_a_paused_source_stays_a_silence_of_its_length(observed: dict[str, Observed]) -> None:
    obs = observed["paused"]
    _check_channels(obs)
    rate = obs.received.sample_rate
    assert rate == obs.call.input.sample_rate
    starts = _caller_turns_exact(obs)
    # the second turn is 2.6 s after the first, across the second the source made nothing
    for start, spoken in zip(starts, _spoken_at(obs), strict=True):
        assert abs(start / rate - spoken) < EXACT
    assert abs((starts[1] - starts[0]) / rate - 2.6) < EXACT


def test_tts_faster_than_real_time_keeps_its_real_length(observed: dict[str, Observed]) -> None:
    obs = observed["main"]
    rate = obs.received.sample_rate
    runs = active_runs(obs.received.recording[:, 1], rate)
    # the TTS produced audio 10x faster than real time; on the recording it lasts as played
    for (on, off), text in zip(runs, [GREETING, ASK_NUMBER, SHIPPED], strict=True):
        assert abs((off - on) - obs.script.speech_seconds(text)) < TOLERANCE


def test_interrupted_turn_ends_where_playback_stopped(observed: dict[str, Observed]) -> None:
    obs = observed["interrupt"]
    _check_channels(obs)
    long_turn = [t for t in obs.received.transcript if t["content"] == LONG_REPLY]
    assert len(long_turn) == 1 and long_turn[0]["interrupted"] is True
    played = obs.call.output.segments[0]
    assert played.interrupted
    full = obs.script.speech_seconds(LONG_REPLY)
    assert played.played_seconds < full - 1.0
    rate = obs.received.sample_rate
    rec = obs.received.recording
    stop = played.started_at + played.played_seconds - obs.t0
    # silent on the right after the interruption, until the agent's next turn
    next_start = obs.call.output.segments[1].started_at - obs.t0
    assert energy(rec[:, 1], rate, stop + TOLERANCE, next_start - TOLERANCE) == 0.0
    # the turn ends where the speaker stopped (within two 20 ms frames), not where LiveKit
    # committed the cut message, later
    assert abs(long_turn[0]["endAudioOffsetMs"] / 1000 - stop) <= 2 * FRAME
    ends_at = parse_iso(long_turn[0]["endTimestamp"]) - obs.t0
    assert abs(ends_at - stop) <= 2 * FRAME


def test_transcript_offsets_point_at_the_speech(observed: dict[str, Observed]) -> None:
    for name in ("main", "interrupt", *RATES):
        obs = observed[name]
        rec, rate = obs.received.recording, obs.received.sample_rate
        runs = {
            "user": active_runs(rec[:, 0], rate),
            "assistant": active_runs(rec[:, 1], rate),
        }
        for entry in obs.received.transcript:
            onsets = [on for on, _ in runs[entry["role"]]]
            nearest = min(onsets, key=lambda on: abs(on - entry["audioOffsetMs"] / 1000))
            assert abs(nearest - entry["audioOffsetMs"] / 1000) < TOLERANCE, (name, entry)
            assert entry["endAudioOffsetMs"] > entry["audioOffsetMs"]


def test_recording_is_whole_frames_in_order_and_as_long_as_the_call(
    observed: dict[str, Observed], server: LocalRoark
) -> None:
    for obs in observed.values():
        received = obs.received
        assert received.chunk_puts == list(range(len(received.chunks)))
        assert all(len(chunk) % 4 == 0 for chunk in received.chunks.values())
        ended = received.ended
        call_seconds = parse_iso(ended["callEndedAt"]) - parse_iso(ended["callStartedAt"])
        assert abs(received.duration_s - call_seconds) < 0.05
    puts = [r for r in server.requests_log if r.endpoint == "put"]
    assert puts and all("x-roark-api-key" not in r.headers for r in puts)
    assert all("authorization" not in r.headers for r in puts)


def test_recording_on_disk_is_a_stereo_wav(observed: dict[str, Observed]) -> None:
    import soundfile as sf

    path = observed["main"].received.recording_path
    assert isinstance(path, Path) and path.exists()
    info = sf.info(str(path))
    assert (info.channels, info.samplerate) == (2, 24000)
    data, _ = sf.read(str(path), dtype="int16")
    assert np.array_equal(data, observed["main"].received.recording)


STEP = 0.35  # seconds the system clock jumps ahead, in the middle of the caller's turn
STEP_AFTER = 1.7  # seconds after the caller's audio began (the turn is 1.4 to 2.3 s)


def test_a_step_of_the_system_clock_tears_nothing(
    server: LocalRoark, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NTP or a resumed virtual machine moves time.time() mid-call; the audio keeps its pace."""
    script = RATES["in8k-mono-20ms-out16k"]
    real_time = time.time
    holder: list[ScriptedCall] = []
    stepped: list[float] = []  # the wall times time.time() answered with the step

    def stepped_time() -> float:
        now = real_time()
        started = holder[0].input.started_at if holder else None
        if started is None or now < started + STEP_AFTER:
            return now
        stepped.append(now + STEP)
        return now + STEP

    async def run() -> tuple[ScriptedCall, JobContext]:
        call = ScriptedCall(script)
        holder.append(call)

        @roark.observe(agent_id="support-bot-v3")
        async def entrypoint(ctx: JobContext) -> None:
            session = call.build_session()
            await session.start(agent=SupportAgent(greeting=script.greeting))

        # for everyone in the process, LiveKit included, as a real step would be
        monkeypatch.setattr(time, "time", stepped_time)
        ctx = await run_job(entrypoint, call=call, job_id="job-clock-step", timeout=60.0)
        monkeypatch.setattr(time, "time", real_time)
        return call, ctx

    call, ctx = asyncio.run(run())
    received = server.wait_for_call(ctx.job.room.sid, timeout=20)
    obs = Observed(script=script, call=call, ctx=ctx, received=received)
    t0 = obs.t0
    assert call.input.started_at is not None
    step_at = call.input.started_at + STEP_AFTER
    # the scripted output stamped playback with the stepped clock: its truth, unstepped
    agent = []
    for seg in call.output.segments:
        assert seg.started_at is not None
        start = seg.started_at - STEP if seg.started_at >= step_at + STEP else seg.started_at
        agent.append((start - t0, start - t0 + seg.played_seconds))
    user = [(on - t0, off - t0) for on, off in call.input.turns_due()]
    assert user[0][0] < STEP_AFTER - 0.2 and user[0][1] > STEP_AFTER + 0.2  # stepped mid-turn
    assert call.input.max_lateness < RESYNC_TOLERANCE
    # the step was taken, and the agent's reply played after it
    assert stepped and call.output.segments[-1].started_at >= step_at + STEP
    _check_placement(obs, user, agent, TOLERANCE)
    # the transcript points at the speech on the recording, before the step and after it
    rec, rate = received.recording, received.sample_rate
    runs = {"user": active_runs(rec[:, 0], rate), "assistant": active_runs(rec[:, 1], rate)}
    for entry in received.transcript:
        onsets = [on for on, _ in runs[entry["role"]]]
        assert min(abs(on - entry["audioOffsetMs"] / 1000) for on in onsets) < TOLERANCE, entry


STALL_AT = 1.6  # seconds into the caller's audio: in the middle of its turn (1.0 to 2.6 s)
STALL = 0.4  # seconds the loop is blocked for
STALLED = CallScript(
    greeting="Hi, order desk.",
    user_turns=[UserTurn("Where is order 99?", at=1.0, duration=1.6)],
    llm_replies=[LLMReply("Order 99 is on its way.")],
    input_sample_rate=16000,
    output_sample_rate=16000,
)


def test_a_blocked_event_loop_tears_nothing(server: LocalRoark) -> None:
    """User code blocks the loop while the caller speaks (a sync database call); the caller's
    frames queue meanwhile and come over in a burst after it, but they are one stream."""
    call = ScriptedCall(STALLED)
    blocked: list[asyncio.TimerHandle] = []

    async def block_the_loop_mid_turn() -> None:
        audio_in = call.input
        while audio_in.started_loop_time is None:
            await asyncio.sleep(0.01)
        at = audio_in.started_loop_time + STALL_AT
        blocked.append(asyncio.get_running_loop().call_at(at, time.sleep, STALL))

    async def run() -> JobContext:
        @roark.observe(agent_id="support-bot-v3")
        async def entrypoint(ctx: JobContext) -> None:
            session = call.build_session()
            stall = asyncio.ensure_future(block_the_loop_mid_turn())
            await session.start(agent=SupportAgent(greeting=STALLED.greeting))
            await stall

        return await run_job(entrypoint, call=call, job_id="job-loop-stall", timeout=60.0)

    ctx = asyncio.run(run())
    received = server.wait_for_call(ctx.job.room.sid, timeout=20)
    obs = Observed(script=STALLED, call=call, ctx=ctx, received=received)
    assert blocked
    # the frames due while the loop was blocked were handed over that late, all at once
    assert call.input.max_lateness > STALL - 0.05
    rate = received.sample_rate
    assert rate == call.input.sample_rate
    (start,) = _caller_turns_exact(obs)
    (spoken,) = _spoken_at(obs)
    assert abs(start / rate - spoken) < EXACT
    # and the agent's side is where the speaker played it
    _check_channels(obs)
    assert [t["role"] for t in received.transcript] == ["assistant", "user", "assistant"]
