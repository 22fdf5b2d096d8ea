"""Stories of the user's own audio I/O objects under observation: they stay what they were.

A user sets ``session.input.audio`` / ``session.output.audio`` to objects of their own (here
subclasses of the scripted caller and speaker with an attribute and a close counter of
their own), or to LiveKit's ``TranscriptSynchronizer`` outputs as LiveKit's own session
tests do, and after ``start()`` reads them back: a type check, an attribute read or write,
``aclose()``. Both calls run once, concurrently, in a module fixture that also collects
the tasks still running once both jobs are over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from livekit.agents import JobContext
from livekit.agents.voice import io
from livekit.agents.voice.transcription.synchronizer import (
    TranscriptSynchronizer,
    _SyncedAudioOutput,
)

from roark.testing import LocalRoark, observed_by_local_roark
from roark.testing.scripted import (
    RealtimeAudioOutput,
    ScriptedAudioInput,
    ScriptedCall,
    SupportAgent,
)

from .audio_checks import assert_speech_at
from .calls import ANSWER, GREETING, QUESTION, short_script
from .scenarios import Scenario, run_scenario

TOLERANCE = 0.06
SETTLE = 2.0  # seconds the tasks of a closed session get to finish


class MySpeaker(RealtimeAudioOutput):
    """A user's own audio output: a volume knob and a close counter of its own."""

    def __init__(self) -> None:
        super().__init__(label="MySpeaker")
        self.volume = 1.0
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1
        await super().aclose()


class MyCaller(ScriptedAudioInput):
    """A user's own audio input."""

    device_name = "headset"


class SealedSpeaker(MySpeaker):
    """A user's output that refuses to have its methods replaced on an instance."""

    def __setattr__(self, name: str, value: Any) -> None:
        if callable(getattr(type(self), name, None)):
            raise AttributeError(f"{name} is sealed")
        super().__setattr__(name, value)


class FinalCaller(MyCaller):
    """A user's input whose class refuses subclasses (a 'final' class)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("FinalCaller is final")


class CapturedText(io.TextOutput):
    """The end of the transcription chain: what the synchronizer let through, in order."""

    def __init__(self) -> None:
        super().__init__(label="CapturedText", next_in_chain=None)
        self.text = ""

    async def capture_text(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        self.text += "\n"


def _own_io_call(caller: type[MyCaller], speaker: type[MySpeaker]) -> ScriptedCall:
    call = ScriptedCall(short_script())
    call.input = caller(call.script.user_turns, total_seconds=call.script.caller_seconds)
    call.output = speaker()
    return call


async def _own_io_body(ctx: JobContext, scenario: Scenario) -> None:
    assert scenario.call is not None
    session = scenario.session = scenario.call.build_session()
    await session.start(agent=SupportAgent(greeting=GREETING))
    # what user code does with the objects it set, read back through the session
    output, audio_in = session.output.audio, session.input.audio
    scenario.seen.update(output=output, input=audio_in)
    scenario.seen["output_is_mine"] = isinstance(output, type(scenario.call.output))
    scenario.seen["input_is_mine"] = isinstance(audio_in, type(scenario.call.input))
    scenario.seen["segments"] = _try(lambda: output.segments)
    scenario.seen["device"] = _try(lambda: audio_in.device_name)
    _try(lambda: setattr(output, "volume", 0.25))


async def _synced_body(ctx: JobContext, scenario: Scenario) -> None:
    assert scenario.call is not None
    session = scenario.session = scenario.call.build_session()
    text = scenario.seen["text"] = CapturedText()
    sync = TranscriptSynchronizer(next_in_chain_audio=scenario.call.output, next_in_chain_text=text)
    session.output.audio = sync.audio_output
    session.output.transcription = sync.text_output
    await session.start(agent=SupportAgent(greeting=GREETING))
    # LiveKit's own test helpers find the synchronizer this way, to close it at the end
    found = session.output.audio
    synchronizer = found._synchronizer if isinstance(found, _SyncedAudioOutput) else None
    scenario.seen["synchronizer_found"] = synchronizer is sync

    async def close_synchronizer(_reason: str) -> None:
        if synchronizer is not None:
            await synchronizer.aclose()

    ctx.add_shutdown_callback(close_synchronizer)


def _try(fn: Any) -> Any:
    try:
        return fn()
    except Exception as exc:  # what user code would have got
        return exc


async def _tasks_left(deadline: float) -> list[str]:
    """The coroutines of the tasks still running after ``deadline`` seconds to end."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        me = asyncio.current_task()
        left = sorted(
            getattr(t.get_coro(), "__qualname__", t.get_name())
            for t in asyncio.all_tasks()
            if t is not me and not t.done()
        )
        if not left or loop.time() >= end:
            return left
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRoark]:
    with observed_by_local_roark(tmp_path_factory.mktemp("session-io")) as local:
        yield local


@pytest.fixture(scope="module")
def runs(server: LocalRoark) -> dict[str, Any]:
    own = Scenario("own-io", _own_io_call(MyCaller, MySpeaker))
    # classes that refuse roark's way of observing: their objects are wrapped
    wrapped = Scenario("wrapped-io", _own_io_call(FinalCaller, SealedSpeaker))
    synced = Scenario("synced", ScriptedCall(short_script()))

    async def run_all() -> list[str]:
        await asyncio.gather(
            run_scenario(own, _own_io_body),
            run_scenario(wrapped, _own_io_body),
            run_scenario(synced, _synced_body),
        )
        return await _tasks_left(SETTLE)

    left = asyncio.run(run_all())
    for scenario in (own, wrapped, synced):
        scenario.received = server.wait_for_call(scenario.room_sid, timeout=20)
    return {"own-io": own, "wrapped-io": wrapped, "synced": synced, "tasks_left": left}


def test_calls_are_delivered_whole_with_own_io(runs: dict[str, Any]) -> None:
    for name in ("own-io", "wrapped-io", "synced"):
        run: Scenario = runs[name]
        assert run.spoken() == [("assistant", GREETING), ("user", QUESTION), ("assistant", ANSWER)]
        assert_speech_at(
            run.got.recording, run.got.sample_rate, run.user_truth(), run.agent_truth(), TOLERANCE
        )


def test_livekits_synchronizer_still_synchronizes(runs: dict[str, Any]) -> None:
    text: CapturedText = runs["synced"].seen["text"]
    assert [line for line in text.text.split("\n") if line] == [GREETING, ANSWER]


@pytest.mark.parametrize("name", ["own-io", "wrapped-io"])
def test_the_sessions_audio_objects_keep_their_type(runs: dict[str, Any], name: str) -> None:
    seen = runs[name].seen
    assert seen["output_is_mine"] is True
    assert seen["input_is_mine"] is True


def test_the_sessions_audio_objects_are_the_users_own(runs: dict[str, Any]) -> None:
    run: Scenario = runs["own-io"]
    assert run.call is not None
    assert run.seen["output"] is run.call.output
    assert run.seen["input"] is run.call.input


def test_objects_that_refuse_observation_are_wrapped_transparently(
    runs: dict[str, Any],
) -> None:
    run: Scenario = runs["wrapped-io"]
    assert run.call is not None
    # the one thing that tells: the object read back is a wrapper, not the user's own
    assert run.seen["output"] is not run.call.output
    assert run.seen["input"] is not run.call.input
    assert type(run.call.input) is FinalCaller
    assert not {"capture_frame", "flush"} & set(vars(run.call.output))


def test_the_users_objects_are_as_they_were_after_the_call(runs: dict[str, Any]) -> None:
    run: Scenario = runs["own-io"]
    assert run.call is not None
    assert type(run.call.input) is MyCaller
    assert "_roark_tap" not in vars(run.call.input)
    assert type(run.call.output) is MySpeaker
    assert not {"capture_frame", "flush"} & set(vars(run.call.output))


@pytest.mark.parametrize("name", ["own-io", "wrapped-io"])
def test_attribute_reads_and_writes_reach_the_users_objects(
    runs: dict[str, Any], name: str
) -> None:
    run: Scenario = runs[name]
    assert run.call is not None
    assert run.seen["device"] == "headset"
    assert run.seen["segments"] is run.call.output.segments
    assert run.call.output.volume == 0.25


@pytest.mark.parametrize("name", ["own-io", "wrapped-io"])
def test_aclose_through_the_session_reaches_the_users_output(
    runs: dict[str, Any], name: str
) -> None:
    run: Scenario = runs[name]
    assert run.call is not None
    before = run.call.output.closed
    asyncio.run(run.seen["output"].aclose())
    assert run.call.output.closed == before + 1


def test_livekits_synchronizer_is_found_in_the_chain(runs: dict[str, Any]) -> None:
    assert runs["synced"].seen["synchronizer_found"] is True


def test_no_task_outlives_the_closed_sessions(runs: dict[str, Any]) -> None:
    assert runs["tasks_left"] == []
