"""Stories of the agent's audio beyond TTS replies: pre-synthesized ``say()``, speech the caller
cannot interrupt, background and thinking sounds, and an avatar that plays the agent's audio.

- ``session.say(text, audio=...)`` plays audio the agent already has (a 450 Hz tone here,
  not the TTS's 300 Hz): the recording carries that audio, the transcript the text;
- ``say(..., allow_interruptions=False)``: the caller talks over a notice that plays to
  its end; LiveKit keeps the caller's words from the STT meanwhile, the recording has them;
- ``BackgroundAudioPlayer`` plays a thinking sound while a slow tool runs, on a track of
  its own (in an :class:`~roark.testing.scripted.OfflineRoom`). Decision: the agent channel
  is what the agent said (the session's audio output); background and thinking sounds,
  which the caller hears beside it but which never pass the session's output, are not on
  the recording;
- an avatar: ``DataStreamAudioOutput`` streams the agent's audio to a
  :class:`~roark.testing.scripted.ScriptedAvatar` worker, which starts playing it after its
  rendering latency and reports playback over RPC; the agent's audio belongs where the
  avatar played it.

All the calls run once, concurrently, in a module fixture.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import JobContext, function_tool
from livekit.agents.voice.avatar import DataStreamAudioOutput
from livekit.agents.voice.background_audio import BackgroundAudioPlayer

from roark.testing import LocalRoark, observed_by_local_roark
from roark.testing.scripted import (
    CallScript,
    LLMReply,
    OfflineRoom,
    ScriptedAvatar,
    ScriptedCall,
    ScriptedSTT,
    SupportAgent,
    UserTurn,
)

from .audio_checks import active_runs, assert_speech_at
from .calls import ANSWER, GREETING, QUESTION, short_script
from .scenarios import Scenario, run_scenarios

TOLERANCE = 0.06
PRERECORDED_HZ = 450.0
PRERECORDED_SECONDS = 1.2
NOTICE = "Please note that this call is recorded for quality and training purposes."
AVATAR_LATENCY = 0.3


async def _tone(hz: float, seconds: float | None, rate: int, pulled: list[float]) -> AsyncIterator:
    """Frames of a tone (forever with ``seconds=None``); ``pulled`` counts what was taken."""
    per_frame = rate // 100
    n = 0
    while seconds is None or n < seconds * rate:
        t = np.arange(n, n + per_frame) / rate
        pcm = np.round(0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
        n += per_frame
        pulled.append(per_frame / rate)
        yield rtc.AudioFrame(pcm.tobytes(), rate, 1, per_frame)


def _pitch(channel: np.ndarray, rate: int, start: float, end: float) -> float:
    """The tone's frequency over [start, end), from its zero crossings."""
    piece = channel[round(start * rate) : round(end * rate)].astype(np.float64)
    crossings = np.count_nonzero(np.diff(np.signbit(piece)))
    return crossings / 2 / (len(piece) / rate)


class PrerecordedGreeting(SupportAgent):
    async def on_enter(self) -> None:
        audio = _tone(PRERECORDED_HZ, PRERECORDED_SECONDS, 24000, [])
        self.session.say(GREETING, audio=audio)


class RecordedNotice(SupportAgent):
    async def on_enter(self) -> None:
        self.session.say(NOTICE, allow_interruptions=False)


class SlowLookup(SupportAgent):
    @function_tool
    async def lookup_order(self, order_id: str) -> str:
        """Look up an order (slowly).

        Args:
            order_id: The order number.
        """
        await asyncio.sleep(1.0)
        return f"Order {order_id} has shipped."


def _start(agent: SupportAgent, **session_kwargs: Any):
    async def body(ctx: JobContext, scenario: Scenario) -> None:
        assert scenario.call is not None
        scenario.session = scenario.call.build_session(**session_kwargs)
        await scenario.session.start(agent=agent)

    return body


async def _background(ctx: JobContext, scenario: Scenario) -> None:
    assert scenario.call is not None
    session = scenario.session = scenario.call.build_session()
    pulled: list[float] = scenario.seen.setdefault("thinking_pulled", [])
    player = BackgroundAudioPlayer(thinking_sound=_tone(PRERECORDED_HZ, None, 48000, pulled))
    await player.start(room=OfflineRoom(), agent_session=session)
    ctx.add_shutdown_callback(player.aclose)
    await session.start(agent=SlowLookup(greeting=GREETING))


def _avatar(*, wait_playback_start: bool):
    async def body(ctx: JobContext, scenario: Scenario) -> None:
        assert scenario.call is not None
        room = OfflineRoom()
        # DataStreamAudioOutput keeps its RPC handlers per avatar identity, process-wide
        avatar = scenario.seen["avatar"] = ScriptedAvatar(
            room, identity=f"avatar-{scenario.name}", latency=AVATAR_LATENCY
        )
        session = scenario.session = scenario.call.build_session()
        session.output.audio = DataStreamAudioOutput(
            room, destination_identity=avatar.identity, wait_playback_start=wait_playback_start
        )
        ctx.add_shutdown_callback(lambda _reason: avatar.aclose())
        await session.start(agent=SupportAgent(greeting=GREETING))

    return body


def _uninterruptible_call() -> ScriptedCall:
    script = CallScript(
        user_turns=[
            UserTurn("Hello? Hello?", at=1.0, duration=0.8),  # over the notice
            UserTurn(QUESTION, at=5.4, duration=0.8),
        ],
        llm_replies=[LLMReply(ANSWER)],
    )
    call = ScriptedCall(script)
    # LiveKit keeps the words said over uninterruptible speech from the STT
    call.stt = ScriptedSTT([QUESTION])
    return call


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRoark]:
    with observed_by_local_roark(tmp_path_factory.mktemp("agent-audio")) as local:
        yield local


@pytest.fixture(scope="module")
def runs(server: LocalRoark) -> dict[str, Scenario]:
    slow_script = short_script()
    return run_scenarios(
        server,
        [
            (Scenario("prerecorded", ScriptedCall(short_script())), _start(PrerecordedGreeting())),
            (Scenario("uninterruptible", _uninterruptible_call()), _start(RecordedNotice())),
            (Scenario("background", ScriptedCall(slow_script)), _background),
            (
                Scenario("avatar", ScriptedCall(short_script())),
                _avatar(wait_playback_start=True),
            ),
            (
                Scenario("avatar-default", ScriptedCall(short_script())),
                _avatar(wait_playback_start=False),
            ),
        ],
    )


def test_prerecorded_say_is_on_the_recording_with_its_text(runs: dict[str, Scenario]) -> None:
    run = runs["prerecorded"]
    assert run.call is not None
    assert run.spoken() == [("assistant", GREETING), ("user", QUESTION), ("assistant", ANSWER)]
    assert run.call.tts.synthesized == [ANSWER]  # the greeting never went through the TTS
    rec, rate = run.got.recording, run.got.sample_rate
    assert_speech_at(rec, rate, run.user_truth(), run.agent_truth(), TOLERANCE)
    (greeting_on, greeting_off), (answer_on, answer_off) = active_runs(rec[:, 1], rate)
    assert abs((greeting_off - greeting_on) - PRERECORDED_SECONDS) < TOLERANCE
    assert abs(_pitch(rec[:, 1], rate, greeting_on, greeting_off) - PRERECORDED_HZ) < 5
    assert abs(_pitch(rec[:, 1], rate, answer_on, answer_off) - 300.0) < 5


def test_uninterruptible_speech_plays_whole_over_the_caller(runs: dict[str, Scenario]) -> None:
    run = runs["uninterruptible"]
    assert run.call is not None
    notice = run.call.output.segments[0]
    assert not notice.interrupted
    assert abs(notice.played_seconds - run.call.script.speech_seconds(NOTICE)) < TOLERANCE
    assert run.spoken() == [("assistant", NOTICE), ("user", QUESTION), ("assistant", ANSWER)]
    assert run.got.transcript[0]["interrupted"] is False
    # both of the caller's turns are on the left channel, the one over the notice included
    assert_speech_at(
        run.got.recording, run.got.sample_rate, run.user_truth(), run.agent_truth(), TOLERANCE
    )


def test_thinking_sounds_stay_off_the_agent_channel(runs: dict[str, Scenario]) -> None:
    run = runs["background"]
    assert sum(run.seen["thinking_pulled"]) > 0.5  # the thinking sound did play
    assert run.spoken() == [("assistant", GREETING), ("user", QUESTION), ("assistant", ANSWER)]
    assert [t["kind"] for t in run.got.tool_calls] == ["tool_call", "tool_result"]
    # the agent channel is the agent's speech where it played, digital silence elsewhere
    assert_speech_at(
        run.got.recording, run.got.sample_rate, run.user_truth(), run.agent_truth(), TOLERANCE
    )


def test_avatar_audio_is_placed_where_the_avatar_played_it(runs: dict[str, Scenario]) -> None:
    run = runs["avatar"]
    avatar: ScriptedAvatar = run.seen["avatar"]
    assert [s.interrupted for s in avatar.segments] == [False, False]
    assert run.spoken() == [("assistant", GREETING), ("user", QUESTION), ("assistant", ANSWER)]
    assert_speech_at(
        run.got.recording,
        run.got.sample_rate,
        run.user_truth(),
        run.agent_truth(avatar.segments),
        TOLERANCE,
    )


def test_avatar_audio_without_start_reports_is_placed_by_the_avatars_finish(
    runs: dict[str, Scenario],
) -> None:
    run = runs["avatar-default"]
    avatar: ScriptedAvatar = run.seen["avatar"]
    assert_speech_at(
        run.got.recording,
        run.got.sample_rate,
        run.user_truth(),
        run.agent_truth(avatar.segments),
        TOLERANCE,
    )
