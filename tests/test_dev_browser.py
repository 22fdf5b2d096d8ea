"""The viewer in a real browser (headless Chromium), on a call delivered by a real observed
scripted call: the list, both lanes drawn, a click that plays from a turn, and the latency
table against the script's own truth."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from roark.dev.server import DevServer
from roark.testing import observed_by
from roark.testing.scripted import CallScript, LLMReply, ToolCallStep, UserTurn

from .browser import chromium_browser, why_no_browser
from .calls import ObservedRun
from .png import decode_png
from .test_dev_server import deliver, pretty_ended
from .test_local_roark import KEY, stereo_pcm

_NO_BROWSER = why_no_browser()
pytestmark = pytest.mark.skipif(_NO_BROWSER is not None, reason=f"browser tests: {_NO_BROWSER}")

SCREENSHOT = Path(__file__).parent.parent / "samples" / "screenshots" / "call-page.png"
# where speech lands on the recording vs when it happened (as in test_observed_call), and
# the speech detector's 10 ms windows
TOLERANCE = 0.06
SCRIPT = CallScript(
    greeting="Hello, order desk.",
    user_turns=[
        UserTurn("Where is order 4217?", at=1.2, duration=0.8),
        UserTurn("Thanks, bye.", at=4.6, duration=0.6),
    ],
    llm_replies=[
        LLMReply(tool_calls=(ToolCallStep("lookup_order", {"order_id": "4217"}, "call_1"),)),
        LLMReply("Order 4217 has shipped."),
        LLMReply("Goodbye."),
    ],
)


@dataclass
class Delivered:
    server: DevServer
    run: ObservedRun
    url: str

    def heard_truth(self) -> list[float]:
        """What the caller heard before each answer: from the end of the caller's turn (when
        its last sample was due) to the first played sample of the agent's answer."""
        caller_ends = [end for _, end in self.run.call.input.turns_due()]
        answers = [s.started_at for s in self.run.call.output.segments[1:]]
        return [start - end for start, end in zip(answers, caller_ends, strict=True)]


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Delivered]:
    folder = tmp_path_factory.mktemp("dev")
    with DevServer(folder / ".roark", api_key=KEY) as server:
        run = ObservedRun(
            SCRIPT,
            agent_id="support-bot-v3",
            agent_name="Ava (support)",
            agent_prompt="You are Ava, a support agent for an online shop.",
            is_test=True,
            tier="gold",
        )
        with observed_by(server, folder / "spool"):
            asyncio.run(run.run())
        server.wait_for_call(run.room_sid, timeout=20)
        yield Delivered(server, run, server.call_url(run.room_sid))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium_browser() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    p = browser.new_page(viewport={"width": 1100, "height": 1000})
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    p.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    yield p
    p.close()
    assert errors == []


def open_ready(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)


def test_the_calls_list_shows_the_call_and_updates_as_calls_arrive(
    delivered: Delivered, page: Any
) -> None:
    open_ready(page, delivered.server.base_url + "/")
    row = page.locator(f"tr.call-row[data-id='{delivered.run.room_sid}']")
    cells = row.locator("td").all_inner_texts()
    assert cells[1].splitlines() == ["Ava (support)", "support-bot-v3"]
    assert cells[3:8] == ["job-shutdown", "5", "1", "test", "whole"]
    # another call arrives while the page is open: it shows, newest first, without a reload
    later = "RM_arrives_later"
    deliver(delivered.server.base_url, later, stereo_pcm(1.0), pretty_ended(later))
    page.wait_for_function("document.querySelectorAll('tr.call-row').length === 2")
    first = page.locator("tr.call-row").first
    assert first.get_attribute("data-id") == "RM_arrives_later"
    page.select_option("#agent-filter", "support-bot-v3")
    page.wait_for_function("document.querySelectorAll('tr.call-row').length === 1")
    row.click()
    page.wait_for_url(delivered.url)


def lane_rows(image: np.ndarray, lane: int, x0: float, x1: float) -> tuple[int, int]:
    """How tall the caller-blue and the agent-green drawing are (in pixel rows) in one lane
    between two x fractions: a silent lane is its thin centre line, a speaking one tall."""
    height, width = image.shape[:2]
    top = lane * height // 2
    box = image[top : top + height // 2, int(x0 * width) : int(x1 * width)].astype(int)
    r, g, b = box[..., 0], box[..., 1], box[..., 2]
    blue = (b > r + 80) & (b > g + 40)
    green = (g > r + 60) & (g > b + 30)
    return int(blue.any(axis=1).sum()), int(green.any(axis=1).sum())


def test_both_lanes_are_drawn_where_each_side_spoke(
    delivered: Delivered, page: Any, tmp_path: Path
) -> None:
    open_ready(page, delivered.url)
    page.wait_for_timeout(300)  # the regions' fade-in
    image = decode_png(page.locator("#waveform").screenshot())
    duration = delivered.server.wait_for_call(delivered.run.room_sid).duration_s
    speech = page.evaluate("window.roarkViewer.page.analysis.speech")
    (c0, c1), (a0, a1) = speech["caller"][0], speech["agent"][1]
    caller_turn = ((c0 + 0.2) / duration, (c1 - 0.2) / duration)
    answer = ((a0 + 0.2) / duration, (a1 - 0.2) / duration)
    # the caller's first turn: a tall blue waveform in the caller lane, the agent lane silent
    assert lane_rows(image, 0, *caller_turn)[0] > 20
    assert lane_rows(image, 1, *caller_turn)[1] <= 3
    # the agent's answer: a tall green waveform in the agent lane, the caller lane silent
    assert lane_rows(image, 1, *answer)[1] > 20
    assert lane_rows(image, 0, *answer)[0] <= 3
    # and nothing of one side's colour in the other's lane
    assert lane_rows(image, 0, *answer)[1] == lane_rows(image, 1, *caller_turn)[0] == 0
    update = os.environ.get("ROARK_UPDATE_SCREENSHOT") == "1"
    target = SCREENSHOT if update else tmp_path / "call-page.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))


def test_a_click_on_a_turn_plays_from_its_offset(delivered: Delivered, page: Any) -> None:
    open_ready(page, delivered.url)
    turn = page.locator(".turn.user").nth(1)
    offset = float(turn.get_attribute("data-start"))
    assert offset == pytest.approx(delivered.run.script.user_turns[1].at, abs=0.5)
    turn.click()
    page.wait_for_function(
        "t => window.roarkViewer.ws.isPlaying() && window.roarkViewer.ws.getCurrentTime() >= t",
        arg=offset,
        timeout=10_000,
    )
    now = page.evaluate("window.roarkViewer.ws.getMediaElement().currentTime")
    assert offset <= now < offset + 1.0
    assert "playing" in (turn.get_attribute("class") or "")


def cell_seconds(text: str) -> float | None:
    return None if text == "—" else float(text.removesuffix(" s"))


def test_the_latency_table_matches_the_script(delivered: Delivered, page: Any) -> None:
    open_ready(page, delivered.url)
    rows = page.locator("#latency tbody tr")
    truth = delivered.heard_truth()
    assert rows.count() == len(truth) == 2
    for i, want in enumerate(truth):
        cells = [cell_seconds(t) for t in rows.nth(i).locator("td.num").all_inner_texts()[2:]]
        heard, eou, _stt, ttft, ttfb, remainder = cells
        assert heard == pytest.approx(want, abs=TOLERANCE), (i, heard, want)
        assert eou is not None and ttft is not None and ttfb is not None
        # it adds up: each figure is rounded to the millisecond
        assert eou + ttft + ttfb + remainder == pytest.approx(heard, abs=0.002)
    median, worst = page.locator("#latency-summary").inner_text().split(" / ")
    assert cell_seconds(worst) == pytest.approx(max(truth), abs=TOLERANCE)
    assert cell_seconds(median) == pytest.approx(float(np.median(truth)), abs=TOLERANCE)
