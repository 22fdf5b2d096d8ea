"""Stories of calls under a test clock: ``time.time()`` moved without ``time.monotonic()``.

A user's own tests run their agent under a frozen or virtual wall clock (freezegun with
``real_asyncio``, time-machine, LiveKit's sped-up test sessions): ``time.time()`` is
replaced in the ``time`` module for the whole process, LiveKit's timestamps come from it,
and the event loop keeps the real monotonic clock. The transcript must come out in the
session's order with offsets inside the call. Each call runs alone (the clock is
process-wide): frozen, ticking (a virtual clock racing ahead in jumps), and travelled (a
constant offset set before the call, time-machine's ``travel(..., tick=True)``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator

import pytest
from livekit.agents import JobContext

from roark.testing import LocalRoark, observed_by_local_roark
from roark.testing.scripted import ScriptedCall, SupportAgent

from .audio_checks import WINDOW, active_runs, assert_speech_at, parse_iso
from .calls import ANSWER, GREETING, QUESTION, short_script
from .scenarios import Scenario, run_under_wall_clock

VIRTUAL_START = 1_735_732_800.0  # 2025-01-01T12:00:00Z
TOLERANCE = 0.06


class VirtualWallClock:
    """``time.time()`` as a test drives it; ``time.monotonic()`` is left alone.

    It starts at ``start`` and moves by ``jump`` seconds every ``every`` seconds of real
    time (never, with ``every=None``: frozen); with ``follow=True`` it runs with the real
    clock from ``start`` (a constant offset, as time-machine's ``tick=True``), and jumps on
    top of that with ``every`` set (a test that shifts a ticking clock now and then).
    """

    def __init__(
        self, start: float, *, every: float | None = None, jump: float = 0.0, follow: bool = False
    ) -> None:
        self.start = start
        self.every = every
        self.jump = jump
        self.follow = follow
        self._t0 = time.monotonic()

    def __call__(self) -> float:
        elapsed = time.monotonic() - self._t0
        jumped = 0.0 if self.every is None else math.floor(elapsed / self.every) * self.jump
        if self.follow:
            return self.start + elapsed + jumped
        return self.start + jumped


CLOCKS = {
    "frozen": lambda: VirtualWallClock(VIRTUAL_START),
    "ticking": lambda: VirtualWallClock(VIRTUAL_START, every=0.25, jump=1.0),
    "travelled": lambda: VirtualWallClock(VIRTUAL_START, follow=True),
}


async def _body(ctx: JobContext, scenario: Scenario) -> None:
    assert scenario.call is not None
    session = scenario.session = scenario.call.build_session()
    # the session's own order: the order it added its conversation items in
    added: list[tuple[str, str]] = scenario.seen.setdefault("added", [])
    # where the speaker started each segment, on the loop's clock (no test clock moves it)
    loop = asyncio.get_running_loop()
    played_at: list[float] = scenario.seen.setdefault("played_at", [])
    scenario.call.output.on("playback_started", lambda _ev: played_at.append(loop.time()))
    session.on(
        "conversation_item_added",
        lambda ev: (
            added.append((ev.item.role, ev.item.text_content or ""))
            if ev.item.type == "message"
            else None
        ),
    )
    await session.start(agent=SupportAgent(greeting=GREETING))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Scenario]]:
    with observed_by_local_roark(tmp_path_factory.mktemp("virtual-clock")) as server:
        yield {name: _run_under(server, name) for name in CLOCKS}


def _run_under(server: LocalRoark, name: str) -> Scenario:
    scenario = Scenario(name, ScriptedCall(short_script()))
    return run_under_wall_clock(server, scenario, CLOCKS[name](), _body)


@pytest.mark.parametrize("clock", list(CLOCKS))
def test_transcript_and_tools_are_delivered(runs: dict[str, Scenario], clock: str) -> None:
    run = runs[clock]
    assert sorted(run.spoken()) == sorted(
        [("assistant", GREETING), ("user", QUESTION), ("assistant", ANSWER)]
    )
    assert [(t["kind"], t["toolCallId"]) for t in run.got.tool_calls] == [
        ("tool_call", "call_1"),
        ("tool_result", "call_1"),
    ]


def _truth_on_loop_clock(run: Scenario) -> tuple[list, list]:
    """Where each side really was, from the caller's run on the recording and loop times.

    The caller's audio is stamped by roark's own clock, so its run on the left channel is
    where it was spoken; the agent's segments started ``played_at - spoken_at`` later.
    """
    assert run.call is not None
    rec, rate = run.got.recording, run.got.sample_rate
    ((heard_on, heard_off),) = active_runs(rec[:, 0], rate)
    (turn,) = run.call.script.user_turns
    spoken_at = run.call.input.started_loop_time + turn.at
    agent = [
        (heard_on + at - spoken_at, heard_on + at - spoken_at + segment.played_seconds)
        for at, segment in zip(run.seen["played_at"], run.call.output.segments, strict=True)
    ]
    return [(heard_on, heard_off)], agent


@pytest.mark.parametrize("clock", list(CLOCKS))
def test_recording_places_each_turn_where_it_played(runs: dict[str, Scenario], clock: str) -> None:
    run = runs[clock]
    rec, rate = run.got.recording, run.got.sample_rate
    user, agent = _truth_on_loop_clock(run)
    # measured in 5 ms windows: where the turn falls across them moves its length by one
    assert [off - on for on, off in user] == [pytest.approx(0.8, abs=WINDOW + 1e-6)]
    assert_speech_at(rec, rate, user, agent, TOLERANCE)
    ended = run.got.ended
    call_seconds = parse_iso(ended["callEndedAt"]) - parse_iso(ended["callStartedAt"])
    assert abs(run.got.duration_s - call_seconds) < 0.05


def test_a_travelled_clock_keeps_offsets_on_the_speech(runs: dict[str, Scenario]) -> None:
    run = runs["travelled"]
    assert run.spoken() == [("assistant", GREETING), ("user", QUESTION), ("assistant", ANSWER)]
    rec, rate = run.got.recording, run.got.sample_rate
    speech = {"user": active_runs(rec[:, 0], rate), "assistant": active_runs(rec[:, 1], rate)}
    for entry in run.got.transcript:
        onsets = [on for on, _ in speech[entry["role"]]]
        assert min(abs(on - entry["audioOffsetMs"] / 1000) for on in onsets) < TOLERANCE, entry


@pytest.mark.parametrize("clock", list(CLOCKS))
def test_transcript_in_the_sessions_order(runs: dict[str, Scenario], clock: str) -> None:
    run = runs[clock]
    assert run.seen["added"] == [("assistant", GREETING), ("user", QUESTION), ("assistant", ANSWER)]
    assert run.spoken() == run.seen["added"]


@pytest.mark.parametrize("clock", ["frozen", "ticking"])
def test_offsets_are_inside_the_call_and_in_order(runs: dict[str, Scenario], clock: str) -> None:
    run = runs[clock]
    ended = run.got.ended
    started_at, ended_at = parse_iso(ended["callStartedAt"]), parse_iso(ended["callEndedAt"])
    length_ms = run.got.duration_s * 1000
    onsets = [t["audioOffsetMs"] for t in run.got.transcript]
    assert onsets == sorted(onsets)
    for entry in run.got.transcript:
        assert 0 < entry["audioOffsetMs"] <= entry["endAudioOffsetMs"] <= length_ms, entry
        assert started_at <= parse_iso(entry["timestamp"]) <= ended_at, entry
        assert parse_iso(entry["endTimestamp"]) <= ended_at, entry
    # the caller spoke after the greeting began and before the answer began
    greeting, question, answer = onsets
    assert greeting < question < answer
