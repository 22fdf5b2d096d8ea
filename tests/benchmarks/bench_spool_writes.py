"""What keeping the recording's tail in the spool costs in disk writes, per call-minute.

Run from the repository root::

    python -m tests.benchmarks.bench_spool_writes            # two calls of 60 s
    python -m tests.benchmarks.bench_spool_writes --seconds 20

One call at a time, fed live into a real worker (its processor, spool and delivery to the
local Roark, which answers): the caller's audio every 20 ms at 16 kHz, a caller turn of 2 s
every 6 s and the agent's answer of 2.5 s playing 0.5 s after it (its playback reported
started when it starts and finished when it ends, as LiveKit does), recorded at 24 kHz.
The same call runs twice: with the tail kept in the spool (roark as it is) and with it
switched off (``Recording.sync_tail`` a no-op: what roark wrote before it kept the tail).
Every write roark makes to the spool (``spool_files.write_all``: chunks, the tail, records,
events, meta) is counted, with its bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from roark._config import resolve
from roark._handoff.records import (
    AgentAudio,
    Begin,
    CallDetails,
    CallerAudio,
    End,
    Message,
    PlaybackFinished,
    PlaybackStarted,
)
from roark._threads import spool_files
from roark._threads.recording import Recording
from roark._threads.worker import Worker
from roark.testing import LocalRoark

from ..synthetic import AGENT_HZ, USER_HZ, tone

FRAME, RATE_IN, RATE_OUT = 0.02, 16000, 24000
PERIOD, SPEECH, REPLY_AFTER, REPLY = 6.0, 2.0, 0.5, 2.5


class Writes:
    """Counts the spool writes (calls and bytes) while installed."""

    def __init__(self) -> None:
        self.calls = 0
        self.bytes = 0

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        original = spool_files.write_all

        def write_all(fd: int, data: Any) -> None:
            self.calls += 1
            self.bytes += len(data)
            original(fd, data)

        spool_files.write_all = write_all  # type: ignore[assignment]
        try:
            yield
        finally:
            spool_files.write_all = original  # type: ignore[assignment]


@contextlib.contextmanager
def tail_off() -> Iterator[None]:
    original = Recording.sync_tail
    Recording.sync_tail = lambda self, now: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Recording.sync_tail = original  # type: ignore[method-assign]


def live_call(worker: Worker, seconds: float) -> None:
    """One call fed as it would happen, in real time."""
    channel = worker.open_call()
    t0 = time.time()
    details = CallDetails(agent_id="bench-agent", is_test=True)
    channel.post(Begin(at=t0, details=details, sample_rate=RATE_OUT, call_id=f"RM_w{t0:.0f}"))
    playing: list[tuple[float, int]] = []  # (end, segment)
    for n in range(round(seconds / FRAME)):
        at = t0 + n * FRAME
        time.sleep(max(0.0, at - time.time()))
        phase = (n * FRAME) % PERIOD
        speaking = phase < SPEECH
        pcm = tone(USER_HZ, FRAME, RATE_IN) if speaking else np.zeros(320, np.int16)
        channel.post(CallerAudio(at=at, data=pcm.tobytes(), rate=RATE_IN, channels=1))
        turn = int(n * FRAME // PERIOD)
        if abs(phase - (SPEECH + REPLY_AFTER)) < FRAME / 2:
            _reply(channel, turn, at)
            playing.append((at + REPLY, turn))
        for end, segment in [p for p in playing if p[0] <= at]:
            channel.post(PlaybackFinished(segment=segment, at=end, played=REPLY))
            playing.remove((end, segment))
    channel.post(End(at=time.time(), reason="participant-disconnected"))
    assert channel.delivered.result(timeout=30)


def _reply(channel: Any, turn: int, at: float) -> None:
    said = at - REPLY_AFTER - SPEECH
    channel.post(Message("user", f"question {turn}", said, said + SPEECH, False, None))
    audio = tone(AGENT_HZ, REPLY, RATE_OUT).tobytes()
    channel.post(AgentAudio(segment=turn, at=at - 0.3, data=audio, rate=RATE_OUT, channels=1))
    channel.post(PlaybackStarted(segment=turn, at=at))
    channel.post(Message("assistant", f"answer {turn}", at, at + REPLY, False, None))


def measure(seconds: float, *, tail: bool) -> Writes:
    writes = Writes()
    with LocalRoark() as server, tempfile.TemporaryDirectory() as folder:
        settings = resolve(
            {"api_key": server.api_key, "base_url": server.base_url, "spool_dir": folder},
            env={},
        )
        worker = Worker(settings)
        try:
            with writes.counting(), contextlib.nullcontext() if tail else tail_off():
                live_call(worker, seconds)
        finally:
            worker.stop(2.0)
        assert not list(Path(folder).iterdir())  # delivered, nothing left
    return writes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_spool_writes")
    parser.add_argument("--seconds", type=float, default=60.0, help="each call (60)")
    args = parser.parse_args(argv)
    rows = {name: measure(args.seconds, tail=tail) for name, tail in (("off", False), ("on", True))}
    per_minute = 60.0 / args.seconds
    print("| the tail in the spool | writes per call-minute | MB written per call-minute |")
    print("|---|---|---|")
    for name, w in rows.items():
        print(f"| {name} | {w.calls * per_minute:.0f} | {w.bytes * per_minute / 1e6:.2f} |")
    on, off = rows["on"], rows["off"]
    extra = (on.bytes - off.bytes) * per_minute / 1e6
    print(
        f"\nextra per call-minute: {(on.calls - off.calls) * per_minute:.0f} writes, "
        f"{extra:+.2f} MB ({(on.bytes / off.bytes - 1) * 100:+.1f} %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
