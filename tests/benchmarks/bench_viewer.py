"""How fast the viewer opens a 60-minute call: page load to interactive, in Chromium.

Run from the repository root (needs ``pip install -e ".[dev]"`` and ``apt-get install
chromium``)::

    python -m tests.benchmarks.bench_viewer [--minutes 60] [--loads 5] [--keep DIR]

It builds a call in a fresh ``roark dev`` folder through the store's own interface
(call-started, 256 KiB PCM chunks of synthetic stereo speech at 24 kHz, call-ended with a
realistic transcript, tool calls and metrics; then the stitch and the analysis, timed),
serves it with ``DevServer``, and opens the call's page in headless Chromium ``--loads``
times. "Interactive" is when the page has drawn both lanes from the peaks and the player
is ready to seek (the page sets ``data-ready``); each load then clicks a transcript turn
near the end of the call and waits for playback to get there (a range request deep into
the WAV). Figures are the first (cold) load and the median of the rest, from navigation
start as the page measures it, with the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from roark.dev.server import DevServer
from tests.browser import chromium_browser, why_no_browser

RATE = 24_000
CHUNK_FRAMES = 65_536  # 256 KiB of 16-bit stereo
CALL_ID = "RM_bench_60min"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)

SAYINGS = [
    ("user", "Hi, I'm calling about my order, it hasn't arrived yet."),
    ("assistant", "I'm sorry to hear that. Could you give me the order number?"),
    ("user", "Sure, it's four two one seven."),
    ("assistant", "Thanks. Order 4217 left our warehouse on Monday and is with the courier."),
    ("user", "Can you tell me when it will be delivered?"),
    ("assistant", "The courier expects to deliver it on Friday between nine and noon."),
]


def iso(seconds: float) -> str:
    return (
        (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def schedule(minutes: float, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Alternating caller and agent turns filling ``minutes``: (role, start, end, text)."""
    turns, t, i = [], 0.5, 0
    while True:
        role, text = SAYINGS[i % len(SAYINGS)]
        length = len(text) * 0.06 * rng.uniform(0.8, 1.2)
        if t + length > minutes * 60 - 1.0:
            return turns
        turns.append({"role": role, "start": t, "end": t + length, "text": text})
        t += length + (rng.uniform(0.5, 1.4) if role == "user" else rng.uniform(0.3, 1.0))
        i += 1


def speech_like(rng: np.random.Generator, seconds: float = 3.0) -> np.ndarray:
    """Noise shaped by a 4 Hz syllable envelope: a loop of int16 speech-like audio."""
    n = int(seconds * RATE)
    noise = np.convolve(rng.standard_normal(n), np.ones(6) / 6, mode="same")
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * np.arange(n) / RATE)
    return (0.25 * 32767 * noise / np.abs(noise).max() * envelope).astype(np.int16)


def render(first: int, last: int, turns: list[dict[str, Any]], voices: list[np.ndarray]) -> bytes:
    frames = np.zeros((last - first, 2), dtype=np.int16)
    for turn in turns:
        channel = 0 if turn["role"] == "user" else 1
        lo, hi = max(first, int(turn["start"] * RATE)), min(last, int(turn["end"] * RATE))
        if lo < hi:
            voice = voices[channel]
            frames[lo - first : hi - first, channel] = voice[np.arange(lo, hi) % len(voice)]
    return frames.tobytes()


def tool_records(call_id: str, at_ms: int, *, failed: bool) -> list[dict[str, Any]]:
    """A lookup the agent makes after a caller turn, and its result."""
    common = {"toolCallId": call_id, "timestamp": iso(at_ms / 1000), "audioOffsetMs": at_ms}
    return [
        {"kind": "tool_call", "name": "lookup_order", "arguments": '{"order": 4217}', **common},
        {"kind": "tool_result", "content": '{"status": "shipped"}', "isError": failed, **common},
    ]


def ended_body(turns: list[dict[str, Any]], duration: float) -> dict[str, Any]:
    transcript, tools, metrics = [], [], []
    for i, turn in enumerate(turns):
        start_ms, end_ms = round(turn["start"] * 1000), round(turn["end"] * 1000)
        transcript.append(
            {
                "role": turn["role"],
                "content": turn["text"],
                "timestamp": iso(turn["start"]),
                "endTimestamp": iso(turn["end"]),
                "audioOffsetMs": start_ms,
                "endAudioOffsetMs": end_ms,
                "interrupted": turn["role"] == "assistant" and i % 37 == 0,
            }
        )
        role_fields = (
            {"endOfUtteranceDelay": 0.41, "transcriptionDelay": 0.22}
            if turn["role"] == "user"
            else {"extra": {"llmNodeTtft": 0.35, "ttsNodeTtfb": 0.18}}
        )
        record = {"kind": "turn", "timestamp": iso(turn["end"]), "audioOffsetMs": end_ms}
        extra = role_fields.pop("extra", {})
        metrics.append({**record, **role_fields, "extra": {**extra, "role": turn["role"]}})
        if turn["role"] == "user" and i % 16 == 2:
            tools += tool_records(f"call_{i}", end_ms + 300, failed=i % 48 == 2)
    return {
        "event": "call-ended",
        "livekitCallId": CALL_ID,
        "eventTimestamp": iso(duration + 1),
        "callStartedAt": iso(0),
        "callEndedAt": iso(duration),
        "callEndedReason": "participant-disconnected",
        "recordingSampleRate": RATE,
        "recordingNumChannels": 2,
        "transcript": transcript,
        "toolCalls": tools,
        "metrics": metrics,
    }


def build_call(server: DevServer, minutes: float) -> dict[str, float]:
    """The call, through the store's interface; returns how long each part took."""
    rng = np.random.default_rng(7)
    turns = schedule(minutes, rng)
    voices = [speech_like(rng), speech_like(rng)]
    total = int(minutes * 60 * RATE)
    store, started = (
        server.store,
        {
            "event": "call-started",
            "livekitCallId": CALL_ID,
            "eventTimestamp": iso(0),
            "agentId": "support-agent",
            "agentName": "Ava (support)",
            "isTest": True,
        },
    )
    t = time.monotonic()
    store.add_started(CALL_ID, started, json.dumps(started).encode())
    for index, first in enumerate(range(0, total, CHUNK_FRAMES)):
        last = min(total, first + CHUNK_FRAMES)
        store.add_chunk(CALL_ID, index, render(first, last, turns, voices))
    built = time.monotonic() - t
    body = ended_body(turns, total / RATE)
    t = time.monotonic()
    store.add_ended(CALL_ID, body, json.dumps(body).encode(), time.monotonic())
    store.finish(CALL_ID, RATE)
    return {"build_s": built, "finish_s": time.monotonic() - t, "turns": len(turns)}


def load_page(browser: Any, url: str) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        started = time.monotonic()
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        wall = time.monotonic() - started
        ready_ms = page.evaluate("window.roarkReadyAt")
        turns = page.locator(".turn")
        target = turns.nth(turns.count() - 3)
        offset = float(target.get_attribute("data-start"))
        clicked = time.monotonic()
        target.click()
        page.wait_for_function(
            "t => window.roarkViewer.ws.getCurrentTime() >= t - 0.05", arg=offset, timeout=30_000
        )
        return {
            "ready_ms": ready_ms,
            "wall_s": wall,
            "seek_s": time.monotonic() - clicked,
            "seek_to_s": offset,
        }
    finally:
        page.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--keep", default=None, help="build the call in this folder, keep it")
    args = parser.parse_args()
    why = why_no_browser()
    if why:
        print(f"cannot run: {why}")
        return 2
    folder = Path(args.keep or tempfile.mkdtemp(prefix="roark-bench-viewer-"))
    try:
        with DevServer(folder) as server:
            built = build_call(server, args.minutes)
            wav = server.store.call_folder(CALL_ID) / "recording.wav"
            print(
                f"{args.minutes:g}-minute call: {built['turns']} turns, "
                f"{wav.stat().st_size / 2**20:.0f} MiB WAV; chunks stored in "
                f"{built['build_s']:.1f} s, stitched and analysed in {built['finish_s']:.1f} s"
            )
            with chromium_browser() as browser:
                loads = [load_page(browser, server.call_url(CALL_ID)) for _ in range(args.loads)]
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    warm = [x["ready_ms"] for x in loads[1:]] or [loads[0]["ready_ms"]]
    print(
        f"page interactive (navigation start -> lanes drawn, player ready): "
        f"cold {loads[0]['ready_ms']:.0f} ms, warm median {statistics.median(warm):.0f} ms "
        f"(max {max(warm):.0f} ms) over {len(warm)} loads"
    )
    print(
        f"click on a turn at {loads[0]['seek_to_s']:.0f} s -> playback there: median "
        f"{statistics.median(x['seek_s'] for x in loads) * 1000:.0f} ms"
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average: {load} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
