"""The door: the taps' audio buffers join frames into runs within a budget, and a call's
channel hands its records over after the audio that came before them."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from roark._config import resolve
from roark._failures import Stats
from roark._handoff.audio_buffer import AudioBuffer
from roark._handoff.channel import CallChannel, HandOff
from roark._handoff.records import AgentAudio, CallerAudio, End, PlaybackStarted
from roark._threads.worker import Worker
from roark.testing import LocalRoark

from .synthetic import SyntheticCall


def pcm(samples: int, value: int = 0, channels: int = 1) -> memoryview:
    # the shape LiveKit hands the taps: AudioFrame.data is an int16 memoryview
    return memoryview(np.full(samples * channels, value, dtype=np.int16).tobytes()).cast("h")


def test_caller_frames_join_into_runs_until_format_or_clock_breaks() -> None:
    buffer = AudioBuffer(HandOff(), Stats())
    t = 100.0
    for i in range(5):  # 5 x 20 ms at 16 kHz, arriving on time
        buffer.append(t + i * 0.02, pcm(320, i), 16000, 1)
    buffer.append(t + 0.1 + 0.05, pcm(320, 7), 16000, 1)  # 50 ms late: within tolerance
    buffer.append(t + 0.5, pcm(480, 8), 24000, 1)  # another rate
    buffer.append(t + 2.0, pcm(480, 9), 24000, 1)  # the source paused for 1.5 s
    buffer.append(t + 2.02, pcm(480, 1, channels=2), 24000, 2)  # stereo now

    items = buffer.take()

    assert [type(i) for i in items] == [CallerAudio] * 4
    assert [(i.at, i.rate, i.channels) for i in items] == [
        (100.0, 16000, 1),
        (100.5, 24000, 1),
        (102.0, 24000, 1),
        (102.02, 24000, 2),
    ]
    first = np.frombuffer(items[0].data, dtype=np.int16)
    assert len(first) == 6 * 320
    assert list(first[::320]) == [0, 1, 2, 3, 4, 7]
    assert len(items[3].data) == 480 * 2 * 2
    assert buffer.take() == []


def test_a_take_leaves_the_run_open_where_it_stopped() -> None:
    buffer = AudioBuffer(HandOff(), Stats())
    buffer.append(10.0, pcm(320), 16000, 1)
    buffer.append(10.02, pcm(320), 16000, 1)
    (before,) = buffer.take()
    buffer.append(10.041, pcm(320), 16000, 1)  # 1 ms late: the same run goes on
    (after,) = buffer.take()

    assert before.at == 10.0 and len(before.data) == 2 * 640
    assert after.at == pytest.approx(10.04)


def _ramp(first: int, count: int) -> memoryview:
    """Frames of one signal that says where each sample is: sample ``n`` is ``n``."""
    return memoryview(np.arange(first, first + count, dtype=np.int16).tobytes()).cast("h")


def _samples(items: list) -> list[int]:
    return [int(v) for i in items for v in np.frombuffer(i.data, dtype=np.int16)]


FRAME = 320  # 20 ms at 16 kHz


def _stall(buffer: AudioBuffer, frames: range, *, arrived: float) -> None:
    """Frames ``frames`` of a source that began at 100.0, handed over together at
    ``arrived`` (the loop was blocked while the native stream queued them)."""
    for k in frames:
        buffer.append(arrived - 0.02, _ramp(k * FRAME, FRAME), 16000, 1)


def _on_time(buffer: AudioBuffer, frames: range) -> None:
    for k in frames:
        buffer.append(100.0 + k * 0.02, _ramp(k * FRAME, FRAME), 16000, 1)


def test_a_stalled_loops_burst_follows_on_from_the_run_before_it() -> None:
    buffer = AudioBuffer(HandOff(), Stats())
    _on_time(buffer, range(10))
    _stall(buffer, range(10, 30), arrived=100.6)  # 0.4 s of frames, 0.4 s late at most
    _on_time(buffer, range(30, 40))

    items = buffer.take()

    # the burst began where the frames before it ended, and the frames after it keep to
    # that clock: the recording sees one stream, sample after sample
    assert [i.at for i in items] == [100.0, pytest.approx(100.2)]
    assert _samples(items) == list(range(40 * FRAME))


def test_a_burst_taken_in_parts_moves_its_first_part_back_where_it_began() -> None:
    buffer = AudioBuffer(HandOff(), Stats())
    _on_time(buffer, range(10))
    _stall(buffer, range(10, 15), arrived=100.6)
    first = buffer.take()
    _stall(buffer, range(15, 30), arrived=100.6)
    _on_time(buffer, range(30, 35))
    second = buffer.take()

    # the part taken mid-burst looked late (its frames had all arrived at once); the rest
    # shows where it really began: just after the run before it, where it follows on
    assert [i.at for i in first] == [100.0, pytest.approx(100.5)]
    assert [i.at for i in second] == [pytest.approx(100.3)]
    assert _samples(first + second) == list(range(35 * FRAME))


def test_a_paused_source_starts_a_run_where_it_resumed() -> None:
    buffer = AudioBuffer(HandOff(), Stats())
    _on_time(buffer, range(10))
    _on_time(buffer, range(60, 70))  # no frames for 1 s (a muted mic), then real time again

    items = buffer.take()

    assert [i.at for i in items] == [100.0, pytest.approx(101.2)]


def test_a_run_is_anchored_by_its_least_late_frame() -> None:
    buffer = AudioBuffer(HandOff(), Stats())
    buffer.append(100.03, _ramp(0, FRAME), 16000, 1)  # the first frame, 30 ms late
    _on_time(buffer, range(1, 5))
    buffer.append(100.1 + 0.09, _ramp(5 * FRAME, FRAME), 16000, 1)  # 90 ms late: jitter

    (item,) = buffer.take()

    assert item.at == pytest.approx(100.0)
    assert _samples([item]) == list(range(6 * FRAME))


def test_agent_frames_keep_to_their_segment() -> None:
    buffer = AudioBuffer(HandOff(), Stats())
    buffer.append(5.0, pcm(240, 1), 24000, 1, segment=0)
    buffer.append(5.0, pcm(240, 1), 24000, 1, segment=0)
    buffer.append(9.0, pcm(240, 2), 24000, 1, segment=1)

    items = buffer.take()

    assert [(type(i), i.segment, i.at, len(i.data)) for i in items] == [
        (AgentAudio, 0, 5.0, 960),
        (AgentAudio, 1, 9.0, 480),
    ]


def test_over_the_budget_frames_are_dropped_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats = Stats()
    buffer = AudioBuffer(HandOff(audio_budget=3 * 640), stats)
    with caplog.at_level(logging.WARNING, logger="roark"):
        for i in range(5):
            buffer.append(i * 0.02, pcm(320), 16000, 1)
    assert stats.get("audio_frames_dropped") == 2
    assert caplog.text.count("dropping audio frames") == 1

    (taken,) = buffer.take()  # taking frees the budget
    assert len(taken.data) == 3 * 640
    buffer.append(0.1, pcm(320), 16000, 1)
    assert stats.get("audio_frames_dropped") == 2
    assert len(buffer.take()[0].data) == 640


def test_a_closed_buffer_takes_nothing_more() -> None:
    buffer = AudioBuffer(HandOff(), Stats())
    buffer.append(0.0, pcm(320), 16000, 1)
    buffer.closed = True
    buffer.append(0.02, pcm(320), 16000, 1)
    (item,) = buffer.take()
    assert len(item.data) == 640


def test_a_record_is_handed_over_after_the_audio_appended_before_it() -> None:
    handoff = HandOff()
    channel = CallChannel(handoff, Stats())
    caller, agent = channel.new_audio_buffer(), channel.new_audio_buffer()
    caller.append(1.0, pcm(320), 16000, 1)
    agent.append(1.0, pcm(480), 24000, 1, segment=0)
    channel.post(PlaybackStarted(segment=0, at=1.1))
    caller.append(1.02, pcm(320), 16000, 1)
    channel.post(End(at=1.2, reason="agent-ended"))

    queued = handoff.collect(0.0)
    assert [type(e.record) for e in queued] == [
        CallerAudio,
        AgentAudio,
        PlaybackStarted,
        CallerAudio,
        End,
    ]
    assert {e.channel for e in queued} == {channel}
    assert queued[3].record.at == pytest.approx(1.02)


def test_a_closed_channel_takes_nothing_more_and_one_never_used_is_delivered() -> None:
    handoff = HandOff()
    used, unused = CallChannel(handoff, Stats()), CallChannel(handoff, Stats())
    buffer = used.new_audio_buffer()
    used.post(End(at=1.0, reason="agent-ended"))
    used.close()
    unused.close()
    buffer.append(1.02, pcm(320), 16000, 1)
    used.post(PlaybackStarted(segment=0, at=1.1))  # a tap outliving the call

    assert [type(e.record) for e in handoff.collect(0.0)] == [End]
    assert not used.delivered.done()  # it has a call to deliver: the thread side resolves it
    assert unused.delivered.result(timeout=0) is True


def test_the_processor_reads_a_taps_audio_in_the_order_it_was_appended(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    settings = resolve(
        {
            "api_key": roark_server.api_key,
            "base_url": roark_server.base_url,
            "spool_dir": tmp_path / "spool",
        },
        env={},
    )
    worker = Worker(settings)
    try:
        t0 = time.time() - 5.0
        call = SyntheticCall(worker, "RM_order", t0=t0, rate_in=16000, rate_out=16000)
        buffer = call.channel.new_audio_buffer()

        def frames(ks: range) -> None:
            for k in ks:
                buffer.append(t0 + 1.0 + k * 0.02, _ramp(k * FRAME, FRAME), 16000, 1)

        collect, between = worker.handoff.collect, threading.Event()

        def collect_then_the_loop_goes_on(wait: float) -> list:
            batch = collect(wait)
            if not between.is_set():
                between.set()
                # the loop, after the processor collected and before it takes the buffers:
                # a record posted (queuing the frames so far), then more frames
                call.post(PlaybackStarted(segment=7, at=t0 + 1.1))
                frames(range(10, 20))
            return batch

        frames(range(10))
        worker.handoff.collect = collect_then_the_loop_goes_on  # type: ignore[method-assign]
        assert between.wait(timeout=10) and worker.sync(timeout=10)
        worker.handoff.collect = collect  # type: ignore[method-assign]
        frames(range(20, 30))
        call.end()
        assert call.done.result(timeout=30) is True
        received = roark_server.wait_for_call("RM_order", timeout=10)
    finally:
        worker.stop(5.0)

    left = received.recording[:, 0]
    start = round(1.0 * 16000)
    assert np.array_equal(left[start : start + 30 * FRAME], np.arange(30 * FRAME, dtype=np.int16))
