"""Every kind of call a user brings to ``roark dev``, observed for real and opened in a real
browser (headless Chromium): a long call, an interrupted call, tool errors (async tools'
final results too), chunks refused by Roark (a hole, or no audio at all), a text-only
session, a job process killed before its call-ended and then recovered (``process-died``),
agent handoffs, and a realtime model.

The scripted calls run once, concurrently, in a module fixture, through ``@roark.observe``
and the viewer's real HTTP ingest; each test opens one call's page and checks what a user
sees: the marks, the texts, the pixels where it matters, and no JavaScript error.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit.agents import JobContext

from roark._config import resolve
from roark._threads.worker import Worker
from roark.dev.server import DevServer
from roark.testing import observed_by
from roark.testing.scripted import (
    CallScript,
    LLMReply,
    ParcelAgent,
    ScriptedCall,
    ToolCallStep,
    UserTurn,
)
from roark.testing.server.contract import STORAGE_PREFIX, UPLOAD_URL_PATH
from roark.testing.server.replies import Reply, s3_error

from .browser import chromium_browser, why_no_browser
from .calls import GREETING, QUESTION
from .png import decode_png
from .scenarios import Scenario, run_scenario
from .synthetic import SyntheticCall
from .test_dev_browser import lane_rows
from .test_handoffs import SCRIPT as HANDOFFS
from .test_handoffs import TOOLS as HANDOFF_TOOLS
from .test_handoffs import FrontDesk
from .test_handoffs import _body as handoffs_body
from .test_local_roark import KEY
from .test_observed_call import INTERRUPT
from .test_realtime import _call as realtime_call
from .test_realtime import _model as realtime_model
from .test_realtime import _realtime_body
from .test_session_shapes import ANSWER as TEXT_ANSWER
from .test_session_shapes import QUESTION as TEXT_QUESTION
from .test_session_shapes import _text_only

_NO_BROWSER = why_no_browser()
pytestmark = pytest.mark.skipif(_NO_BROWSER is not None, reason=f"browser tests: {_NO_BROWSER}")

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 0.06  # where speech lands on the recording vs when it happened
LONG_MINUTES = 10
# a chunk is 2.73 s at 24 kHz: the first answer plays well inside chunk 0, the second
# question and its answer well after it
REFUSED = CallScript(
    user_turns=[
        UserTurn(QUESTION, at=0.4, duration=0.6),
        UserTurn("And order 99?", at=4.4, duration=0.8),
    ],
    llm_replies=[LLMReply("Order 4217 has shipped."), LLMReply("Order 99 is on its way.")],
)
TOOL_ERRORS = CallScript(
    greeting=GREETING,
    user_turns=[UserTurn("Track order 4217, refund it, and check order abc.", at=1.2)],
    llm_replies=[
        LLMReply(
            tool_calls=(
                ToolCallStep("track_parcel", {"order_id": "4217"}, "call_track"),
                ToolCallStep("request_refund", {"order_id": "4217"}, "call_refund"),
                ToolCallStep("lookup_order", {"order_id": "abc"}, "call_bad"),
            )
        ),
        LLMReply("I am on it."),
        LLMReply("The refund was refused."),
        LLMReply("Your parcel is in Lyon."),
    ],
    caller_audio_seconds=5.5,
)


class RefusingChunks:
    """Roark's storage refusing chosen chunks (400, as S3 refuses an upload it will not
    take): the viewer's own ingest answers everything else."""

    def __init__(self, server: DevServer) -> None:
        self._handle = server.ingest.handle
        server.ingest.handle = self.handle  # type: ignore[method-assign]
        self.refuse: dict[str, set[int]] = {}
        self._tokens: set[str] = set()

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes, mono: float):
        if method == "PUT" and path.removeprefix(STORAGE_PREFIX) in self._tokens:
            return s3_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum")
        reply: Reply = self._handle(method, path, headers, body, mono)
        if method == "POST" and path == UPLOAD_URL_PATH and reply.status == 200:
            asked = json.loads(body)
            if asked["chunkIndex"] in self.refuse.get(asked["livekitCallId"], ()):
                url = json.loads(reply.body)["data"]["uploadUrl"]
                self._tokens.add(url.removeprefix(f"{self._base(url)}{STORAGE_PREFIX}"))
        return reply

    @staticmethod
    def _base(url: str) -> str:
        return url[: url.index(STORAGE_PREFIX)]


def _plain(refusing: RefusingChunks | None = None, chunks: frozenset[int] = frozenset()):
    async def body(ctx: JobContext, scenario: Scenario) -> None:
        assert scenario.call is not None
        if refusing is not None:
            refusing.refuse[ctx.job.room.sid] = set(chunks)
        scenario.session = scenario.call.build_session()
        await scenario.session.start(agent=scenario.call.make_agent())

    return body


@dataclass
class Crashed:
    """A job process killed once its call's first chunk was stored; never recovered here."""

    call_id: str
    spool: Path


def _crash_a_call(server: DevServer, spool: Path) -> Crashed:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.child_call", server.base_url, server.api_key, str(spool)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        call_id = next(line.split()[1] for line in child.stdout if line.startswith("CALL "))
        stored = server.store.wait(
            lambda: any(r["chunk_list"] for r in server.store.rows(call_id=call_id)) or None, 30
        )
        assert stored, "the child's first chunk never arrived"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    return Crashed(call_id, spool)


def _long_call(server: DevServer, spool: Path) -> str:
    """Ten minutes of a caller and an agent taking turns, fed on a simulated clock through
    roark's own worker, spool, recording and HTTP."""
    settings = resolve(
        {"api_key": server.api_key, "base_url": server.base_url, "spool_dir": spool}, env={}
    )
    worker = Worker(settings)
    try:
        call = SyntheticCall(worker, "RM_ten_minutes", t0=time.time() - LONG_MINUTES * 60)
        call.feed(LONG_MINUTES * 60.0)
        call.end()
        assert call.done.result(timeout=60) is True
    finally:
        worker.stop(5.0)
    return "RM_ten_minutes"


@dataclass
class Calls:
    server: DevServer
    runs: dict[str, Scenario]
    crashed: Crashed
    long_id: str

    def url(self, name: str) -> str:
        return self.server.call_url(self.call_id(name))

    def call_id(self, name: str) -> str:
        return self.long_id if name == "long" else self.runs[name].room_sid


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Calls]:
    folder = tmp_path_factory.mktemp("dev-calls")
    with DevServer(folder / ".roark", api_key=KEY) as server:
        refusing = RefusingChunks(server)
        kinds = [
            (Scenario("interrupted", ScriptedCall(INTERRUPT)), _plain()),
            (Scenario("tool-errors", ScriptedCall(TOOL_ERRORS, tools_agent=ParcelAgent)), _plain()),
            (Scenario("hole", ScriptedCall(REFUSED)), _plain(refusing, frozenset({1}))),
            (Scenario("no-chunk", ScriptedCall(REFUSED)), _plain(refusing, frozenset({0}))),
            (Scenario("text-only"), _text_only),
            (Scenario("handoffs", ScriptedCall(HANDOFFS, tools_agent=FrontDesk)), handoffs_body),
            (
                Scenario("realtime", realtime_call()),
                _realtime_body(realtime_model("audio", report_turn_start=False), with_tts=False),
            ),
        ]

        async def run_all() -> None:
            await asyncio.gather(
                *(run_scenario(s, b, agent_id=f"{s.name}-agent") for s, b in kinds)
            )

        with ThreadPoolExecutor(1) as pool:
            crashing = pool.submit(_crash_a_call, server, folder / "crashed-spool")
            with observed_by(server, folder / "spool"):
                asyncio.run(run_all())
            crashed = crashing.result(timeout=60)
        for scenario, _ in kinds:
            scenario.received = server.wait_for_call(scenario.room_sid, timeout=20)
        long_id = _long_call(server, folder / "long-spool")
        server.wait_for_call(long_id, timeout=30)
        yield Calls(server, {s.name: s for s, _ in kinds}, crashed, long_id)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as b:
        yield b


class Viewer:
    """One browser page, with every JavaScript error and error logged on its console."""

    def __init__(self, browser: Any, width: int = 1100) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": 1000})
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on(
            "console",
            lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None,
        )

    def open(self, url: str) -> Any:
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready='1']", timeout=15_000)
        return self.page

    def texts(self, selector: str) -> list[str]:
        return self.page.locator(selector).all_inner_texts()

    def shadow(self, script: str) -> Any:
        """Evaluate ``script`` with ``root``, the waveform's shadow root (where wavesurfer
        draws the lanes, the marks and the timeline)."""
        return self.page.evaluate(
            f"(() => {{ const root = document.querySelector('#waveform > div').shadowRoot;"
            f" return {script}; }})()"
        )

    def labels(self) -> list[tuple[str, str | None]]:
        """The marks' labels on the lanes that show (text, background colour)."""
        shown = self.shadow(
            "[...root.querySelectorAll('.region-label')]"
            ".filter((l) => l.style.display !== 'none')"
            ".map((l) => [l.textContent, l.style.background || null])"
        )
        return [tuple(label) for label in shown]


@pytest.fixture
def viewer(browser: Any) -> Iterator[Viewer]:
    v = Viewer(browser)
    yield v
    v.page.close()
    assert v.errors == []


def turn_rows(viewer: Viewer) -> list[tuple[str, str]]:
    """(role as shown, text) of each transcript row."""
    rows = []
    for row in viewer.page.locator(".turn").all():
        role = row.locator(".role").inner_text().splitlines()[0]
        rows.append((role, row.locator(".text").inner_text()))
    return rows


def spoken(run: Scenario) -> list[tuple[str, str]]:
    shown = {"user": "caller", "assistant": "agent"}
    return [(shown[t["role"]], t["content"]) for t in run.got.transcript]


def latency_turns(viewer: Viewer) -> list[int]:
    return [
        int(t)
        for t in viewer.page.locator("#latency tbody tr").evaluate_all(
            "rows => rows.map((r) => r.dataset.turn)"
        )
    ]


# ------------------------------------------------------------------------- the calls list


def test_the_list_shows_every_kind_of_call_as_it_arrived(calls: Calls, viewer: Viewer) -> None:
    viewer.open(calls.server.base_url + "/")
    cells = {
        row.get_attribute("data-id"): row.locator("td").all_inner_texts()
        for row in viewer.page.locator("tr.call-row").all()
    }
    # agent, end reason, turns, tool calls, arrived
    shown = {cid: (c[1], c[3], c[4], c[5], c[7]) for cid, c in cells.items()}
    runs = calls.runs
    assert shown[calls.call_id("interrupted")] == (
        "interrupted-agent",
        "job-shutdown",
        "4",
        "0",
        "whole",
    )
    assert shown[calls.call_id("tool-errors")] == (
        "tool-errors-agent",
        "job-shutdown",
        "5",
        "5 (2 failed)",
        "whole",
    )
    assert shown[calls.call_id("hole")][4] == "chunk(s) 1 asked for an upload URL but never stored"
    assert shown[calls.call_id("no-chunk")][4] == (
        "chunk(s) 0 asked for an upload URL but never stored"
    )
    assert shown[calls.call_id("text-only")][1:] == ("job-shutdown", "2", "1", "whole")
    assert shown[calls.call_id("long")] == (
        "synthetic-agent",
        "participant-disconnected",
        str(20 * LONG_MINUTES),
        "0",
        "whole",
    )
    # the killed job's call: started, a chunk, and nothing since
    assert shown[calls.crashed.call_id] == (
        "test-agent",
        "in progress",
        "—",
        "—",
        "no call-ended (yet)",
    )
    assert len(cells) == len(runs) + 2


# ------------------------------------------------------------------------- one call each


def fraction(x: float, duration: float) -> float:
    return min(1.0, max(0.0, x / duration))


def test_an_interrupted_turn_is_marked_where_its_audio_stopped(
    calls: Calls, viewer: Viewer
) -> None:
    run = calls.runs["interrupted"]
    page = viewer.open(calls.url("interrupted"))
    assert turn_rows(viewer) == spoken(run)
    cut = page.locator(".turn.assistant").first
    assert cut.locator(".flag").inner_text().strip() == "(interrupted)"
    assert "⚠" not in viewer.page.locator("#transcript").inner_text()  # its audio is in place
    # the mark sits where the agent's audio really stopped (LiveKit may end the turn later)
    played = run.call.output.segments[0]
    assert played.interrupted
    stopped = played.started_at + played.played_seconds - run.t0
    analysis = page.evaluate("window.roarkViewer.page.analysis")
    (mark,) = analysis["interruptions"]
    assert mark["turn"] == 1 and mark["stopped_s"] == pytest.approx(stopped, abs=TOLERANCE)
    assert viewer.labels() == [("interrupted", "rgba(255, 255, 255, 0.85)")]
    # on the lanes: the agent speaks up to the mark, then is silent until its next turn
    page.wait_for_timeout(300)  # the regions' fade-in
    image = decode_png(page.locator("#waveform").screenshot())
    duration = analysis["duration_s"]
    next_start = run.call.output.segments[1].started_at - run.t0
    before = (fraction(stopped - 0.6, duration), fraction(stopped - 0.1, duration))
    after = (fraction(stopped + 0.1, duration), fraction(next_start - 0.1, duration))
    assert lane_rows(image, 1, *before)[1] > 20
    assert lane_rows(image, 1, *after)[1] <= 3
    # both agent turns answer a caller turn: both measured
    assert latency_turns(viewer) == [1, 3]
    assert not page.locator("#latency-skipped").count()


def test_tool_errors_and_async_results_are_marked_and_listed(calls: Calls, viewer: Viewer) -> None:
    run = calls.runs["tool-errors"]
    page = viewer.open(calls.url("tool-errors"))
    rows = page.locator("#tools tbody tr")
    table = [
        (
            r.get_attribute("data-id"),
            r.locator("td").nth(1).inner_text().splitlines()[0],
            "error" in r.locator("td").nth(3).inner_text().splitlines()[0],
        )
        for r in rows.all()
    ]
    assert table == [
        ("call_track", "track_parcel", False),
        ("call_refund", "request_refund", False),
        ("call_bad", "lookup_order", True),
        ("call_refund_final", "request_refund", True),
        ("call_track_final", "track_parcel", False),
    ]
    results = [r.locator("pre").nth(1).inner_text() for r in rows.all()]
    assert results[2:] == [
        "Unknown order id 'abc': order ids are digits only.",
        "Order 4217 was already refunded.",
        "The parcel of order 4217 is in Lyon.",
    ]
    # an async tool's later result is its own pair of records: said whose it is
    assert viewer.texts("#tools .async") == [
        "the final result of call_refund",
        "the final result of call_track",
    ]
    # three calls at once and the refund's final result a moment later: one label for the
    # four, in the error colour as two of them failed; the track's final result on its own
    assert viewer.labels() == [
        ("track_parcel() +3", "rgb(217, 72, 15)"),
        ("track_parcel()", "rgb(180, 90, 214)"),
    ]
    title = viewer.shadow("root.querySelector('.region-label.tool').title")
    assert re.findall(r'^(\w+)\(\{"order_id"', title, re.MULTILINE) == [
        "track_parcel",
        "request_refund",
        "lookup_order",
        "request_refund",
    ]
    # the agent's follow-ups answer no caller turn: said so, not measured
    assert latency_turns(viewer) == [2]
    assert viewer.texts("#latency-skipped") == [
        "Not measured: #0 (no caller turn before it), #3 (no caller turn before it), "
        "#4 (no caller turn before it)."
    ]
    assert len(run.got.transcript) == 5


def test_a_refused_chunk_leaves_a_recording_that_ends_at_the_hole(
    calls: Calls, viewer: Viewer
) -> None:
    run = calls.runs["hole"]
    call = run.got
    # Roark refused chunk 1: roark sent no later chunk, and the recording ends before it
    assert call.chunk_puts == [0] and call.upload_url_requests == [0, 1]
    recorded = len(call.recording) / call.sample_rate
    after = [t for t in call.transcript if t["audioOffsetMs"] / 1000 >= recorded]
    assert len(after) >= 2
    page = viewer.open(calls.url("hole"))
    spoken_to = max(t["endAudioOffsetMs"] for t in call.transcript) / 1000
    assert viewer.texts("#not-whole") == [
        "Not whole: chunk(s) 1 asked for an upload URL but never stored; the recording ends at "
        f"{recorded:.1f} s, the transcript at {spoken_to:.1f} s"
    ]
    assert viewer.texts("#recording-ends") == [
        f"The recording ends at 0:0{recorded:.1f}: {len(after)} turn(s) after it have no audio "
        "(the call's later chunks never arrived: refused or lost)."
    ]
    assert viewer.labels() == [
        (f"recording ends: {len(after)} turn(s) after it", "rgb(217, 72, 15)")
    ]
    unheard = page.locator(".turn.unheard")
    assert unheard.count() == len(after)
    assert unheard.locator(".note").all_inner_texts() == [
        f"no audio to check: after the end of the recording ({recorded:.1f} s)"
    ] * len(after)
    assert "⚠" not in viewer.page.locator("#transcript").inner_text()
    # a turn with no audio does not play; one before the hole does
    unheard.first.click()
    assert page.evaluate("window.roarkViewer.ws.isPlaying()") is False
    # the answer before the hole is measured; the one in it cannot be
    answers = [i for i, t in enumerate(call.transcript) if t["role"] == "assistant"]
    measured = [i for i in answers if call.transcript[i]["audioOffsetMs"] / 1000 < recorded]
    assert len(measured) == 1 and latency_turns(viewer) == measured
    skipped = [f"#{i} (after the end of the recording)" for i in answers if i not in measured]
    assert viewer.texts("#latency-skipped") == [f"Not measured: {', '.join(skipped)}."]


def test_a_call_without_any_chunk_has_a_transcript_and_no_lanes(
    calls: Calls, viewer: Viewer
) -> None:
    call = calls.runs["no-chunk"].got
    assert call.chunk_puts == [] and call.upload_url_requests == [0]
    assert "recordingSampleRate" not in call.ended  # the contract: no recording, no fields
    page = viewer.open(calls.url("no-chunk"))
    assert viewer.texts("#no-recording") == [
        "No recording: chunk(s) 0 asked for an upload URL but never stored (refused or lost), "
        "so no audio of this call arrived."
    ]
    assert not page.locator("#waveform").count()
    assert turn_rows(viewer) == spoken(calls.runs["no-chunk"])
    assert viewer.texts("#latency p") == ["No recording to measure on."]
    assert page.locator("#download-wav").count() == 0
    assert page.locator("#download-json").count() == 1


def test_a_text_only_call_shows_its_transcript_and_tools(calls: Calls, viewer: Viewer) -> None:
    page = viewer.open(calls.url("text-only"))
    assert viewer.texts("#no-recording") == [
        "No audio: the call sent no recording (a text-only session, or no audio I/O)."
    ]
    assert not page.locator("#waveform").count()
    assert turn_rows(viewer) == [("caller", TEXT_QUESTION), ("agent", TEXT_ANSWER)]
    assert page.locator("#tools tbody tr").get_attribute("data-id") == "call_1"
    assert viewer.texts(".badge.ok") == ["whole"]


def test_handoffs_show_which_agent_spoke_and_ran_each_tool(calls: Calls, viewer: Viewer) -> None:
    page = viewer.open(calls.url("handoffs"))
    assert viewer.texts("#agents") == ["Agents: front_desk → address_task → front_desk → billing"]
    agents = [r.locator(".agent-id").inner_text() for r in page.locator(".turn.assistant").all()]
    assert agents == ["front_desk", "address_task", "front_desk", "billing", "billing"]
    assert viewer.texts(".handoff") == [
        "handed over: front_desk → address_task",
        "handed over: address_task → front_desk",
        "handed over: front_desk → billing",
    ]
    tools = {
        r.get_attribute("data-id"): r.locator("td.agent-id").inner_text()
        for r in page.locator("#tools tbody tr").all()
    }
    assert tools == HANDOFF_TOOLS
    assert [label for label, _ in viewer.labels()] == [
        "confirm_address()",
        "record_street()",
        "transfer_to_billing()",
        "refund()",
    ]
    assert latency_turns(viewer) == [2, 4, 6, 8]


def test_a_realtime_call_has_its_models_time_to_first_token(calls: Calls, viewer: Viewer) -> None:
    run = calls.runs["realtime"]
    page = viewer.open(calls.url("realtime"))
    assert turn_rows(viewer) == spoken(run)
    assert "⚠" not in page.locator("#transcript").inner_text()
    (row,) = page.locator("#latency tbody tr").all()
    heard, eou, stt, ttft, ttfb, remainder = row.locator("td.num").all_inner_texts()[2:]
    # no EOU, STT or TTS stage in a realtime call: the model's own TTFT stands in for the LLM
    assert (eou, stt, ttfb) == ("—", "—", "—")
    assert ttft == "0.000 s"
    assert remainder == heard
    caller_end = run.user_truth()[0][1]
    answer = run.agent_truth()[1][0]
    assert float(heard.removesuffix(" s")) == pytest.approx(answer - caller_end, abs=TOLERANCE)


def drawn_width(viewer: Viewer) -> tuple[int, int]:
    """The waveform's width, and the right-most pixel column where a lane is drawn."""
    image = decode_png(viewer.page.locator("#waveform").screenshot()).astype(int)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    drawn = ((b > r + 80) & (b > g + 40)) | ((g > r + 60) & (g > b + 30))
    return image.shape[1], int(np.flatnonzero(drawn.any(axis=0)).max())


def test_a_long_call_opens_plays_deep_and_measures_every_turn(calls: Calls, viewer: Viewer) -> None:
    page = viewer.open(calls.url("long"))
    duration = LONG_MINUTES * 60.0
    image = decode_png(page.locator("#waveform").screenshot())
    # every 6 s the caller speaks 2 s, the agent answers 0.5 s later for 2 s: the last turn
    last = duration - 6.0
    assert lane_rows(image, 0, last / duration, (last + 1.9) / duration)[0] > 20
    assert lane_rows(image, 1, (last + 2.6) / duration, (last + 4.4) / duration)[1] > 20
    width, right = drawn_width(viewer)
    assert right >= width - 4
    # a click on a turn near the end plays from there (a range request deep into the WAV)
    turn = page.locator(".turn").last
    offset = float(turn.get_attribute("data-start"))
    assert offset == last + 2.5
    turn.click()
    page.wait_for_function(
        "t => window.roarkViewer.ws.getCurrentTime() >= t", arg=offset, timeout=10_000
    )
    page.evaluate("window.roarkViewer.ws.pause()")
    # every answer measured: 0.5 s of silence, no stage known (no metrics), all unexplained
    rows = [
        r[2:]
        for r in page.locator("#latency tbody tr").evaluate_all(
            "rows => rows.map((r) => [...r.querySelectorAll('td.num')].map((c) => c.textContent))"
        )
    ]
    assert rows == [["0.500 s", "—", "—", "—", "—", "0.500 s"]] * (10 * LONG_MINUTES)
    assert viewer.texts("#latency-summary") == ["0.500 s / 0.500 s"]
    # zoomed in, the timeline's labels follow: one every 2 s at 50 px a second
    page.locator("#zoom").fill("50")
    page.wait_for_function("window.roarkViewer.ws.getWrapper().scrollWidth > 20000")
    page.wait_for_timeout(200)  # the timeline's redraw
    labels = viewer.shadow(
        "[...root.querySelectorAll('[part~=timeline-notch-primary]')].map((n) => n.textContent)"
    )
    seconds = [int(m) * 60 + int(s) for m, s in (label.split(":") for label in labels)]
    assert len(seconds) > 3 and set(np.diff(seconds)) == {2}


def test_after_a_resize_the_lanes_and_labels_fit_the_new_width(
    calls: Calls, viewer: Viewer
) -> None:
    page = viewer.open(calls.url("tool-errors"))
    width, right = drawn_width(viewer)
    assert right >= width - 4
    assert len(viewer.labels()) == 2
    page.set_viewport_size({"width": 360, "height": 1000})
    page.wait_for_function("w => document.querySelector('#waveform').clientWidth < w", arg=width)
    # wavesurfer redraws 100 ms after the resize; the labels are laid out again then
    page.wait_for_function(
        "() => document.querySelector('#waveform > div').shadowRoot"
        ".querySelectorAll('.region-label[style*=\"display: none\"]').length === 4"
    )
    narrow, right = drawn_width(viewer)
    assert narrow < 340 and right >= narrow - 4
    assert viewer.labels() == [("track_parcel() +4", "rgb(217, 72, 15)")]
    page.set_viewport_size({"width": 1100, "height": 1000})
    page.wait_for_function(
        "() => document.querySelector('#waveform > div').shadowRoot"
        ".querySelectorAll('.region-label[style*=\"display: none\"]').length === 3"
    )
    assert drawn_width(viewer)[1] >= width - 4


# ------------------------------------------------------------------------- a crash, recovered


def test_a_killed_jobs_call_is_not_whole_until_recovered(
    calls: Calls, viewer: Viewer, tmp_path: Path
) -> None:
    # (after the list's test: this one delivers the call's call-ended)
    crashed, server = calls.crashed, calls.server
    (row,) = server.store.rows(call_id=crashed.call_id)
    stored = len(row["chunk_list"].split(","))
    page = viewer.open(server.call_url(crashed.call_id))
    assert viewer.texts("#not-whole") == ["Not whole: no call-ended (yet)"]
    assert viewer.texts("#no-recording") == [
        f"No recording yet: {stored} chunk(s) stored; the call is stitched when its call-ended "
        "arrives (it carries the sample rate)."
    ]
    assert viewer.texts("#transcript") == ["No transcript."]
    # the next process on that spool delivers the call; the open page shows it by itself
    with observed_by(server, crashed.spool):
        recovered = server.wait_for_call(crashed.call_id, timeout=30)
    assert recovered.reason == "process-died"
    page.wait_for_selector("#waveform", timeout=15_000)
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    assert viewer.texts("#reason") == ["ended: process-died"]
    assert turn_rows(viewer)[:2] == [("agent", GREETING), ("caller", QUESTION)]
    image = decode_png(page.locator("#waveform").screenshot())
    assert lane_rows(image, 1, 0.0, 0.2)[1] > 20  # the greeting
