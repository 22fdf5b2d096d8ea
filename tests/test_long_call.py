"""A ten-minute call, fed on a simulated clock: chunks stream out and memory stays flat."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from roark._config import resolve
from roark._threads.worker import Worker
from roark.testing.server import LocalRoark

from .synthetic import SyntheticCall

MINUTES = 10


def test_ten_minute_call_streams_chunks_with_bounded_buffers(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    settings = resolve(
        {
            "api_key": roark_server.api_key,
            "base_url": roark_server.base_url,
            "spool_dir": tmp_path / "own-spool",
        },
        env={},
    )
    worker = Worker(settings)
    try:
        call = SyntheticCall(worker, "RM_long", t0=time.time() - MINUTES * 60)
        chunk_frames = settings.chunk_bytes // 4
        uploaded_midway = 0
        for minute in range(1, MINUTES + 1):
            call.feed(minute * 60.0)
            # the processor has handled the minute (and cut what it could) before the next
            assert worker.sync(timeout=30)
            if minute == MINUTES // 2:
                roark_server.wait_until(lambda s: len(s.call("RM_long").chunk_puts) > 50)
                uploaded_midway = len(roark_server.call("RM_long").chunk_puts)
        recording = call.assembler.recording
        assert recording is not None
        call.end()
        assert call.done.result(timeout=60) is True
        # read once the processor is done with the call (its end is delivered)
        peak_buffered = recording.high_water
        received = roark_server.wait_for_call("RM_long", timeout=10)
    finally:
        worker.stop(5.0)

    # streamed during the call, not at its end
    assert uploaded_midway > 50
    # never more than a chunk plus one agent turn (2 s) plus the turn gap held in memory
    assert peak_buffered < chunk_frames + 3 * 24000 * 2
    rate = received.sample_rate
    assert rate == 24000
    assert received.recording is not None
    assert abs(len(received.recording) / rate - MINUTES * 60) < 0.05
    assert received.chunk_puts == list(range(len(received.chunks)))
    assert len(received.transcript) == 2 * MINUTES * 10
    # the last agent turn sits where it was played: period 6 s, answer from 2.5 s to 4.5 s
    # (ten minutes in: a clock that drifted by a frame per turn would be off by two seconds)
    last_turn = (MINUTES * 10 - 1) * 6.0
    right = received.recording[:, 1].astype(np.float64)
    seg = right[round((last_turn + 2.5) * rate) : round((last_turn + 4.5) * rate)]
    gap = right[round((last_turn + 4.6) * rate) : round((last_turn + 5.9) * rate)]
    assert np.sqrt(np.mean(seg**2)) > 3000
    assert np.abs(gap).max() == 0
    # and the caller's last turn where it was said: from 0 s to 2 s of the period, then quiet
    left = received.recording[:, 0].astype(np.float64)
    around = left[round((last_turn - 1.0) * rate) : round((last_turn + 0.5) * rate)]
    onset = (np.flatnonzero(around)[0] / rate) - 1.0
    assert abs(onset) < 0.002
    said = left[round((last_turn + 0.05) * rate) : round((last_turn + 1.95) * rate)]
    quiet = left[round((last_turn + 2.05) * rate) : round((last_turn + 5.95) * rate)]
    assert np.sqrt(np.mean(said**2)) > 3000
    assert np.abs(quiet).max() == 0
    assert not roark_server.violations
