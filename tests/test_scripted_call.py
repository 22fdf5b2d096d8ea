"""The scripted parts drive a bare LiveKit ``AgentSession`` correctly (no roark involved).

The call scenarios run once, concurrently, in a module fixture (each is a few seconds of
real-time audio); the tests then check what LiveKit reported against the recorded truth.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import JobContext, llm, metrics, vad

from roark.testing.scripted import (
    CallScript,
    LLMReply,
    RealtimeAudioOutput,
    ScriptedAudioInput,
    ScriptedCall,
    ScriptedCallTimeout,
    ScriptedLLM,
    ScriptedVAD,
    SupportAgent,
    ToolCallStep,
    UserTurn,
    run_job,
)

GREETING = "Hello! How can I help you today?"
TURN_1 = "Hi, where is my order?"
TURN_2 = "It is 4 2 1 7."
ASK_NUMBER = "Sure. What is your order number?"
SHIPPED = "Your order 4217 has shipped."
LONG_REPLY = (
    "Let me tell you everything about your order: it was packed at our warehouse on Monday, "
    "handed to the courier on Tuesday, and it is now travelling across the country to you."
)
# LiveKit's tts.StreamAdapter ends every segment with a 10 ms silent marker frame
STREAM_ADAPTER_TAIL = 0.01

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
STEREO = CallScript(
    greeting="Hi, order desk.",
    user_turns=[UserTurn("Where is order 99?", at=1.4, duration=0.9)],
    llm_replies=[LLMReply("Order 99 is on its way.")],
    input_sample_rate=48000,
    input_channels=2,
    input_frame_ms=10.0,
)
TOOL_ERROR = CallScript(
    user_turns=[UserTurn("My order is abc.", at=0.3, duration=0.8)],
    llm_replies=[
        LLMReply(tool_calls=(ToolCallStep("lookup_order", {"order_id": "abc"}, "call_bad"),)),
        LLMReply("Sorry, that order number looks wrong."),
    ],
    input_frame_ms=13.7,
)
SCRIPTS = {"main": MAIN, "interrupt": INTERRUPT, "stereo": STEREO, "tool_error": TOOL_ERROR}
SESSION_EVENTS = (
    "conversation_item_added",
    "function_tools_executed",
    "metrics_collected",
    "close",
    "error",
)


@dataclass
class Outcome:
    script: CallScript
    call: ScriptedCall
    ctx: JobContext
    events: list[tuple[str, Any]] = field(default_factory=list)
    shutdown: list[tuple[str, bool]] = field(default_factory=list)

    def of(self, name: str) -> list[Any]:
        return [ev for kind, ev in self.events if kind == name]

    def messages(self) -> list[llm.ChatMessage]:
        items = [ev.item for ev in self.of("conversation_item_added")]
        return [item for item in items if isinstance(item, llm.ChatMessage)]

    def transcript(self) -> list[tuple[str, str | None]]:
        return [(m.role, m.text_content) for m in self.messages()]

    def metrics_of(self, kind: type) -> list[Any]:
        return [ev.metrics for ev in self.of("metrics_collected") if isinstance(ev.metrics, kind)]


async def _run(script: CallScript) -> Outcome:
    call = ScriptedCall(script)
    events: list[tuple[str, Any]] = []
    shutdown: list[tuple[str, bool]] = []

    async def on_shutdown(reason: str) -> None:
        shutdown.append((reason, any(kind == "close" for kind, _ in events)))

    async def entrypoint(ctx: JobContext) -> None:
        session = call.build_session()
        for name in SESSION_EVENTS:
            session.on(name, lambda ev, name=name: events.append((name, ev)))
        ctx.add_shutdown_callback(on_shutdown)
        await session.start(agent=SupportAgent(greeting=script.greeting))

    ctx = await run_job(entrypoint, call=call, timeout=40.0)
    return Outcome(script=script, call=call, ctx=ctx, events=events, shutdown=shutdown)


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    async def run_all() -> dict[str, Outcome]:
        results = await asyncio.gather(*(_run(script) for script in SCRIPTS.values()))
        return dict(zip(SCRIPTS, results, strict=True))

    return asyncio.run(run_all())


def _expected_seconds(script: CallScript, text: str) -> float:
    return script.speech_seconds(text) + STREAM_ADAPTER_TAIL


# -- the main call ---------------------------------------------------------------------


def test_conversation_and_tool_call_sequence(outcomes: dict[str, Outcome]) -> None:
    out = outcomes["main"]
    timeline: list[tuple[str, Any]] = []
    for kind, ev in out.events:
        if kind == "conversation_item_added" and isinstance(ev.item, llm.ChatMessage):
            timeline.append((ev.item.role, ev.item.text_content))
        elif kind == "function_tools_executed":
            timeline.append(("tools", [c.call_id for c in ev.function_calls]))
    assert timeline == [
        ("assistant", GREETING),
        ("user", TURN_1),
        ("assistant", ASK_NUMBER),
        ("user", TURN_2),
        ("tools", ["call_1"]),
        ("assistant", SHIPPED),
    ]
    assert not out.of("error")
    assert out.call.stt.recognized == [TURN_1, TURN_2]
    assert out.call.llm.remaining == 0


def test_function_tools_executed(outcomes: dict[str, Outcome]) -> None:
    (ev,) = outcomes["main"].of("function_tools_executed")
    (call,), (output,) = ev.function_calls, ev.function_call_outputs
    assert (call.call_id, call.name) == ("call_1", "lookup_order")
    assert json.loads(call.arguments) == {"order_id": "4217"}
    assert output.call_id == "call_1"
    assert not output.is_error
    assert json.loads(output.output) == {"order_id": "4217", "status": "shipped"}
    # the tool result reached the LLM before the final reply
    last_request = outcomes["main"].call.llm.requests[-1]
    outputs = [i for i in last_request.items if isinstance(i, llm.FunctionCallOutput)]
    assert [o.call_id for o in outputs] == ["call_1"]


def test_metrics_collected(outcomes: dict[str, Outcome]) -> None:
    out = outcomes["main"]
    llm_metrics = out.metrics_of(metrics.LLMMetrics)
    assert len(llm_metrics) == 3
    for m in llm_metrics:
        assert (m.prompt_tokens, m.completion_tokens, m.total_tokens) == (50, 20, 70)

    stt_metrics = out.metrics_of(metrics.STTMetrics)
    assert len(stt_metrics) == 2
    vad_min_silence = out.call.vad.min_silence_duration
    for m, turn in zip(stt_metrics, MAIN.user_turns, strict=True):
        assert m.audio_duration == pytest.approx(turn.duration + vad_min_silence, abs=0.05)

    eou_metrics = out.metrics_of(metrics.EOUMetrics)
    assert len(eou_metrics) == 2
    for m in eou_metrics:
        assert 0.2 <= m.end_of_utterance_delay < 0.8

    tts_metrics = out.metrics_of(metrics.TTSMetrics)
    spoken = [GREETING, ASK_NUMBER, SHIPPED]
    assert sum(m.characters_count for m in tts_metrics) == sum(len(t) for t in spoken)
    assert sum(m.audio_duration for m in tts_metrics) == pytest.approx(
        sum(MAIN.speech_seconds(t) for t in spoken), abs=1e-3
    )
    for m in tts_metrics:  # synthesized ~10x faster than real time
        assert m.duration < m.audio_duration / 4

    assert out.metrics_of(metrics.VADMetrics)


@pytest.mark.skipif(
    "metrics" not in llm.ChatMessage.model_fields,
    reason="this livekit-agents has no ChatMessage.metrics (speaking times)",
)
def test_chat_message_speaking_times(outcomes: dict[str, Outcome]) -> None:
    out = outcomes["main"]
    users = [m for m in out.messages() if m.role == "user"]
    assistants = [m for m in out.messages() if m.role == "assistant"]
    audio_in = out.call.input
    for msg, onset, offset in zip(users, audio_in.turn_onsets, audio_in.turn_offsets, strict=True):
        assert msg.metrics["started_speaking_at"] == pytest.approx(onset, abs=0.1)
        assert msg.metrics["stopped_speaking_at"] == pytest.approx(offset, abs=0.1)
    for msg, seg in zip(assistants, out.call.output.segments, strict=True):
        started, stopped = msg.metrics["started_speaking_at"], msg.metrics["stopped_speaking_at"]
        assert seg.started_at is not None
        assert started == pytest.approx(seg.started_at, abs=0.05)
        assert stopped - started == pytest.approx(seg.played_seconds, abs=0.1)
        assert not msg.interrupted


def test_output_truth_plays_in_real_time(outcomes: dict[str, Outcome]) -> None:
    out = outcomes["main"]
    segments = out.call.output.segments
    assert len(segments) == 3
    for seg, text in zip(segments, [GREETING, ASK_NUMBER, SHIPPED], strict=True):
        assert not seg.interrupted
        assert seg.played_seconds == pytest.approx(MAIN.speech_seconds(text), abs=0.06)
        assert seg.played_seconds == pytest.approx(_expected_seconds(MAIN, text), abs=1e-6)
        assert seg.started_at is not None
        # played at real-time speed although the TTS delivered it 10x faster
        assert seg.finished_at - seg.started_at == pytest.approx(seg.played_seconds, abs=0.1)


def test_input_truth_matches_script(outcomes: dict[str, Outcome]) -> None:
    audio_in = outcomes["main"].call.input
    assert audio_in.done
    assert audio_in.onsets_relative() == pytest.approx([t.at for t in MAIN.user_turns], abs=0.03)
    assert audio_in.started_at is not None
    offsets = [t - audio_in.started_at for t in audio_in.turn_offsets]
    assert offsets == pytest.approx([t.end for t in MAIN.user_turns], abs=0.03)


def test_job_runs_like_livekit(outcomes: dict[str, Outcome]) -> None:
    out = outcomes["main"]
    assert out.ctx.job.id == "job-test"
    assert out.ctx.job.room.name == "test-room"
    assert out.ctx.room.name == "test-room"
    # LiveKit's runner closes the primary session before the shutdown callbacks run; 1.x
    # releases without a primary session close it from a shutdown callback of its own,
    # concurrently with (here: after) the user's
    closes_first = hasattr(out.ctx, "_primary_agent_session")
    assert out.shutdown == [("room deleted", closes_first)]
    assert len(out.of("close")) == 1


# -- other calls -----------------------------------------------------------------------


def test_interruption(outcomes: dict[str, Outcome]) -> None:
    out = outcomes["interrupt"]
    assert out.transcript() == [
        ("user", "Tell me about my order."),
        ("assistant", LONG_REPLY),
        ("user", "Stop, please."),
        ("assistant", "Okay, sorry."),
    ]
    interrupted = {m.text_content: m.interrupted for m in out.messages() if m.role == "assistant"}
    assert interrupted == {LONG_REPLY: True, "Okay, sorry.": False}

    long_seg, short_seg = out.call.output.segments
    full = _expected_seconds(INTERRUPT, LONG_REPLY)
    assert long_seg.interrupted
    assert long_seg.captured_seconds == pytest.approx(full, abs=1e-6)
    assert 0.5 < long_seg.played_seconds < full - 2.0
    # the agent went quiet shortly after the caller barged in
    barge_in = out.call.input.turn_onsets[1]
    assert long_seg.started_at is not None
    stopped_at = long_seg.started_at + long_seg.played_seconds
    assert barge_in < stopped_at < barge_in + 0.7
    assert not short_seg.interrupted
    assert short_seg.played_seconds == pytest.approx(
        _expected_seconds(INTERRUPT, "Okay, sorry."), abs=1e-6
    )


def test_48khz_stereo_10ms_input(outcomes: dict[str, Outcome]) -> None:
    out = outcomes["stereo"]
    assert out.transcript() == [
        ("assistant", "Hi, order desk."),
        ("user", "Where is order 99?"),
        ("assistant", "Order 99 is on its way."),
    ]
    audio_in = out.call.input
    assert (audio_in.sample_rate, audio_in.num_channels) == (48000, 2)
    assert audio_in.frames_sent == round(STEREO.caller_seconds / 0.01)
    assert audio_in.onsets_relative() == pytest.approx([1.4], abs=0.03)
    played = [s.played_seconds for s in out.call.output.segments]
    expected = [STEREO.speech_seconds(t) for t in ("Hi, order desk.", "Order 99 is on its way.")]
    assert played == pytest.approx(expected, abs=0.06)


def test_tool_error_with_odd_frame_size(outcomes: dict[str, Outcome]) -> None:
    out = outcomes["tool_error"]
    (ev,) = out.of("function_tools_executed")
    (output,) = ev.function_call_outputs
    assert output.call_id == "call_bad"
    assert output.is_error
    assert "Unknown order id" in output.output
    assert out.transcript() == [
        ("user", "My order is abc."),
        ("assistant", "Sorry, that order number looks wrong."),
    ]
    assert out.call.input.onsets_relative() == pytest.approx([0.3], abs=0.03)


# -- single parts ----------------------------------------------------------------------


def test_llm_streams_replies_then_falls_back() -> None:
    async def main() -> None:
        model = ScriptedLLM(
            [
                LLMReply("One two three four five six.", (ToolCallStep("f", {"a": 1}, "c1"),)),
            ],
            prompt_tokens=7,
            completion_tokens=3,
        )
        collected: list[metrics.LLMMetrics] = []
        model.on("metrics_collected", collected.append)
        chunks = []
        async with model.chat(chat_ctx=llm.ChatContext.empty()) as stream:
            async for chunk in stream:
                chunks.append(chunk)
        texts = [c.delta.content for c in chunks if c.delta and c.delta.content]
        assert len(texts) >= 2 and "".join(texts) == "One two three four five six."
        calls = [tc for c in chunks if c.delta for tc in c.delta.tool_calls]
        assert [(tc.name, json.loads(tc.arguments), tc.call_id) for tc in calls] == [
            ("f", {"a": 1}, "c1")
        ]
        async with model.chat(chat_ctx=llm.ChatContext.empty()) as stream:
            fallback = [c.delta.content async for c in stream if c.delta and c.delta.content]
        assert "".join(fallback) == "Okay."
        assert [(m.prompt_tokens, m.completion_tokens, m.total_tokens) for m in collected] == [
            (7, 3, 10),
            (7, 3, 10),
        ]

    asyncio.run(main())


def _frames(
    pattern: list[tuple[float, bool]], *, rate: int, frame_ms: float
) -> list[rtc.AudioFrame]:
    spf = round(rate * frame_ms / 1000)
    total = sum(round(seconds * rate) for seconds, _ in pattern)
    pcm = np.zeros(total, dtype=np.int16)
    pos = 0
    for seconds, speech in pattern:
        count = round(seconds * rate)
        if speech:
            pcm[pos : pos + count] = (0.3 * 32767 * np.sin(np.arange(count) * 0.27)).astype(
                np.int16
            )
        pos += count
    return [
        rtc.AudioFrame(
            data=pcm[i : i + spf].tobytes(),
            sample_rate=rate,
            num_channels=1,
            samples_per_channel=len(pcm[i : i + spf]),
        )
        for i in range(0, total, spf)
    ]


def test_vad_segments_speech_with_odd_frames() -> None:
    async def main() -> None:
        detector = ScriptedVAD(min_speech_duration=0.05, min_silence_duration=0.3)
        stream = detector.stream()
        pattern = [(0.2, False), (0.5, True), (0.5, False), (0.3, True), (0.4, False)]
        for frame in _frames(pattern, rate=16000, frame_ms=7.3):
            stream.push_frame(frame)
        stream.end_input()
        events = [ev async for ev in stream]
        await stream.aclose()

        edges = [ev for ev in events if ev.type != vad.VADEventType.INFERENCE_DONE]
        assert [ev.type for ev in edges] == [
            vad.VADEventType.START_OF_SPEECH,
            vad.VADEventType.END_OF_SPEECH,
        ] * 2
        sos, eos = edges[0], edges[1]
        assert 0.05 <= sos.speech_duration < 0.05 + 0.0073 + 1e-6
        assert sos.timestamp == pytest.approx(0.25, abs=0.01)
        assert eos.speech_duration == pytest.approx(0.5, abs=0.01)
        assert eos.silence_duration == pytest.approx(0.3, abs=0.01)
        assert sum(f.duration for f in eos.frames) == pytest.approx(0.8, abs=0.015)
        inference = [ev for ev in events if ev.type == vad.VADEventType.INFERENCE_DONE]
        assert all(ev.probability in (0.0, 1.0) for ev in inference)
        assert any(ev.speaking and ev.raw_accumulated_speech > 0 for ev in inference)

    asyncio.run(main())


def test_audio_input_is_paced_and_exact() -> None:
    async def main() -> None:
        turn = UserTurn("hi", at=0.1, duration=0.2)
        audio_in = ScriptedAudioInput([turn], total_seconds=0.5, frame_ms=13.7)
        loop = asyncio.get_running_loop()
        frames: list[tuple[float, rtc.AudioFrame]] = []
        async for frame in audio_in:
            frames.append((loop.time(), frame))
        start = frames[0][0]
        pos = 0
        for handed_at, frame in frames:
            assert handed_at - start >= pos / 16000 - 0.002
            pos += frame.samples_per_channel
        assert pos == 8000
        pcm = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for _, f in frames])
        assert not pcm[:1600].any() and not pcm[4800:].any()
        assert np.sqrt(np.mean((pcm[1600:4800] / 32768.0) ** 2)) > 0.2
        assert audio_in.done and len(audio_in.turn_onsets) == len(audio_in.turn_offsets) == 1

    asyncio.run(main())


def test_audio_output_pause_and_clear() -> None:
    async def main() -> None:
        speaker = RealtimeAudioOutput()
        tenth = rtc.AudioFrame.create(24000, 1, 2400)
        started = time.monotonic()
        await speaker.capture_frame(tenth)
        await speaker.capture_frame(tenth)
        speaker.flush()
        speaker.pause()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(speaker.wait_for_playout()), 0.3)
        speaker.resume()
        ev = await asyncio.wait_for(speaker.wait_for_playout(), 2.0)
        assert not ev.interrupted
        assert ev.playback_position == pytest.approx(0.2, abs=1e-6)
        assert time.monotonic() - started >= 0.48  # 0.2 s of audio + 0.3 s paused

        # a segment being played and one queued behind it are both cut by clear_buffer()
        await speaker.capture_frame(tenth)
        speaker.flush()
        await speaker.capture_frame(tenth)
        speaker.flush()
        speaker.clear_buffer()
        ev = await asyncio.wait_for(speaker.wait_for_playout(), 1.0)
        first, second = speaker.segments[1:]
        assert first.interrupted and first.played_seconds < 0.05
        assert second.interrupted and second.started_at is None and second.played_seconds == 0
        await asyncio.wait_for(speaker.wait_idle(), 1.0)
        assert speaker.idle
        await speaker.aclose()

    asyncio.run(main())


def test_run_job_times_out_clearly() -> None:
    async def main() -> None:
        call = ScriptedCall(CallScript(user_turns=[], llm_replies=[], caller_audio_seconds=0.4))

        async def stuck(ctx: JobContext) -> None:
            await asyncio.Event().wait()

        with pytest.raises(ScriptedCallTimeout, match="entrypoint did not return"):
            await run_job(stuck, call=call, timeout=0.2)
        with pytest.raises(ScriptedCallTimeout, match="session=not built"):
            await call.wait_until_done(timeout=0.05)

    asyncio.run(main())


def test_script_validation() -> None:
    with pytest.raises(ValueError):
        CallScript(user_turns=[UserTurn("a", at=1.0), UserTurn("b", at=1.5)], llm_replies=[])
    with pytest.raises(ValueError, match="apart"):
        ScriptedCall(
            CallScript(
                user_turns=[UserTurn("a", at=0.0, duration=1.0), UserTurn("b", at=1.1)],
                llm_replies=[],
            )
        )
