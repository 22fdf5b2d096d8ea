"""What roark adds on the event loop per audio frame: the caller's and the agent's frame path.

A session's ``input``/``output`` (LiveKit's own ``AgentInput``/``AgentOutput``) get a bare
source and a bare sink; roark observes them as it observes a call's (``install_taps``), and
the loop pulls caller frames through ``session.input.audio`` and pushes agent frames into
``session.output.audio`` as LiveKit's session does. Reported: ns per frame, observed and
bare (the same objects unobserved), and the difference, as the minimum and the median over
rounds (the minimum is the least disturbed by other load). The processor thread is not
running: the buffers are emptied between rounds, outside the timed part.

    python -m tests.benchmarks.bench_frame_path [--frames 20000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from types import SimpleNamespace
from typing import Any

from livekit import rtc
from livekit.agents.voice import io

from roark._failures import Stats
from roark._handoff.channel import CallChannel, HandOff
from roark._loop.taps import install_taps, remove_taps

FRAME = rtc.AudioFrame(bytes(960), 24000, 1, 480)  # 20 ms of 24 kHz mono


class BareSource(io.AudioInput):
    def __init__(self) -> None:
        super().__init__(label="BareSource")

    async def __anext__(self) -> rtc.AudioFrame:
        return FRAME


class BareSink(io.AudioOutput):
    def __init__(self) -> None:
        super().__init__(label="BareSink", capabilities=io.AudioOutputCapabilities(pause=True))

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)

    def flush(self) -> None:
        super().flush()

    def clear_buffer(self) -> None:
        pass


def _session() -> Any:
    def nothing() -> None:
        pass

    session = SimpleNamespace(
        input=io.AgentInput(nothing, nothing), output=io.AgentOutput(nothing, nothing, nothing)
    )
    session.input.audio = BareSource()
    session.output.audio = BareSink()
    return session


async def _pull(session: Any, frames: int) -> float:
    stream = session.input.audio
    started = time.perf_counter_ns()
    count = 0
    async for _frame in stream:
        count += 1
        if count == frames:
            break
    return (time.perf_counter_ns() - started) / frames


async def _push(session: Any, frames: int) -> float:
    sink = session.output.audio
    started = time.perf_counter_ns()
    for i in range(frames):
        await sink.capture_frame(FRAME)
        if i % 100 == 99:
            sink.flush()  # a segment of 2 s
    sink.flush()
    return (time.perf_counter_ns() - started) / frames


async def _measure(frames: int, rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {k: [] for k in ("in-bare", "in", "out-bare", "out")}
    bare = _session()
    observed = _session()
    channel = CallChannel(HandOff(), Stats())
    install_taps(observed, channel)
    for _ in range(rounds):
        results["in-bare"].append(await _pull(bare, frames))
        results["in"].append(await _pull(observed, frames))
        results["out-bare"].append(await _push(bare, frames))
        results["out"].append(await _push(observed, frames))
        channel.take_audio()
    remove_taps(observed)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    results = asyncio.run(_measure(args.frames, args.rounds))
    for side in ("in", "out"):
        bare, seen = results[f"{side}-bare"], results[side]
        print(
            f"{'caller (input)' if side == 'in' else 'agent (output)':15s} "
            f"bare {min(bare):7.0f} ns  observed {min(seen):7.0f} ns  "
            f"added {min(seen) - min(bare):6.0f} ns (min)  "
            f"{statistics.median(seen) - statistics.median(bare):6.0f} ns (median)"
        )


if __name__ == "__main__":
    main()
