"""The caller's channel of the stitched recording: one stream, placed where it was spoken.

The recording is fed the caller audio records the taps' buffer hands over (a run's start
and its samples) as the processor would, and cut into chunks; the chunks are read back.
The caller's signal says where each of its samples belongs (sample ``n`` of the source is
``n``), so a gap, an overlap or a misplaced stretch shows as a sample out of place.
"""

from __future__ import annotations

import numpy as np

from roark._threads.recording import Recording

RATE = 16000
T0 = 100.0
CHUNK_FRAMES = RATE // 4  # chunks of 0.25 s: cuts happen all along these calls


class Recorded:
    """A 16 kHz recording from ``T0``, its chunks kept."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.rec = Recording(
            t0=T0,
            sample_rate=RATE,
            chunk_bytes=CHUNK_FRAMES * 4,
            emit=lambda index, data: self.chunks.append(data),
        )

    def caller(self, at: float, first: int, count: int, *, now: float | None = None) -> None:
        """Source samples ``first..first+count`` in one record, their run said to have begun
        at ``at``; handled at ``now`` (default: as the last of them is complete)."""
        data = signal(first, count).tobytes()
        done = at + count / RATE if now is None else now
        self.rec.add_caller_audio(at, data, RATE, 1, done)
        self.rec.cut(done)

    def on_time(self, at: float, first: int, seconds: float) -> None:
        """``seconds`` of the source from sample ``first``, begun at ``at``, in the takes of
        a processor that takes every 0.2 s, each record on its run's clock."""
        for i in range(round(seconds / 0.2)):
            self.caller(at + i * 0.2, first + i * 3200, 3200)

    def left(self, ended_at: float) -> np.ndarray:
        self.rec.finish(ended_at)
        pcm = np.frombuffer(b"".join(self.chunks), dtype="<i2").reshape(-1, 2)
        return pcm[:, 0]


def signal(first: int, count: int) -> np.ndarray:
    """Source samples ``first..first+count``: sample ``n`` is ``n`` (as int16 wraps it)."""
    return np.arange(first, first + count).astype(np.int16)


def at_sample(seconds: float) -> int:
    return round((seconds - T0) * RATE)


def test_a_burst_after_a_stalled_loop_is_placed_back_behind_the_audio_before_it() -> None:
    recorded = Recorded()
    recorded.on_time(101.0, 0, 1.0)
    # the loop was blocked from 102.0 to 102.4; the take came mid-burst, whose frames
    # all arrived late: the first part looks like it began at 102.3
    recorded.caller(102.3, 16000, 1600, now=102.4)
    # the rest of the burst shows where that part really began (the buffer says so)
    recorded.caller(102.1, 17600, 4800 + 3200, now=102.6)
    recorded.caller(102.6, 17600 + 8000, 4800)

    left = recorded.left(104.0)

    start = at_sample(101.0)
    assert not left[:start].any()
    # one stream, sample after sample: no gap where the loop stalled, no overlap after it
    assert np.array_equal(left[start : start + 30400], signal(0, 30400))
    assert not left[start + 30400 :].any()


def test_the_cut_waits_while_a_late_run_may_still_move() -> None:
    recorded = Recorded()
    recorded.on_time(101.0, 0, 1.0)
    recorded.caller(102.3, 16000, 1600, now=102.4)
    for _ in range(3):  # passes of the processor while the burst's rest is on its way
        recorded.rec.cut(102.5)
    recorded.caller(102.1, 17600, 8000, now=102.6)

    left = recorded.left(104.0)

    # had the timeline been cut up to the first part's end (102.4), the run could not have
    # moved back behind it
    start = at_sample(101.0)
    assert np.array_equal(left[start : start + 25600], signal(0, 25600))
    assert not left[start + 25600 :].any()


def test_a_pause_of_the_source_stays_a_silence_of_its_length() -> None:
    recorded = Recorded()
    recorded.on_time(101.0, 0, 1.0)
    # the mic was muted for 1 s: its frames stopped, then came again in real time
    recorded.on_time(103.0, 16000, 1.0)

    left = recorded.left(105.0)

    before, after = at_sample(101.0), at_sample(103.0)
    assert np.array_equal(left[before : before + 16000], signal(0, 16000))
    assert not left[before + 16000 : after].any()
    assert np.array_equal(left[after : after + 16000], signal(16000, 16000))


def test_a_late_first_record_after_a_pause_moves_to_where_its_run_began() -> None:
    recorded = Recorded()
    recorded.caller(101.0, 0, 16000)
    # resumed at 103.0 after a 1 s pause, but the loop handed its first frames over 0.3 s
    # late: the next record shows it began at 103.0, still long after the pause began
    recorded.caller(103.3, 16000, 1600, now=103.4)
    recorded.caller(103.1, 17600, 14400, now=104.0)

    left = recorded.left(105.0)

    after = at_sample(103.0)
    assert not left[at_sample(102.0) : after].any()
    assert np.array_equal(left[after : after + 16000], signal(16000, 16000))


def test_audio_already_cut_is_never_moved() -> None:
    recorded = Recorded()
    recorded.caller(101.0, 0, 16000)
    recorded.on_time(103.0, 16000, 1.6)  # after a pause: cut well into it
    cut = len(recorded.chunks) * CHUNK_FRAMES
    assert cut > at_sample(103.5)
    # a record earlier than its run's clock: the run stays whole where it was placed
    recorded.caller(104.4, 16000 + 8 * 3200, 3200)

    left = recorded.left(106.0)

    after = at_sample(103.0)
    want = signal(16000, 9 * 3200)
    assert np.array_equal(left[after : after + len(want)], want)
    assert not left[after + len(want) :].any()


def test_a_stall_longer_than_a_second_keeps_its_burst_whole_after_the_cut() -> None:
    recorded = Recorded()
    recorded.caller(101.0, 0, 16000)
    # no caller audio for over a second: the timeline is cut as silence up to a second ago
    recorded.rec.cut(103.5)
    # then the burst of a loop blocked all that time: it began where the audio before it
    # ended, which is cut already; it is kept whole, as soon after as the cut allows
    recorded.caller(102.0, 16000, 16000, now=103.6)

    left = recorded.left(105.0)

    start = at_sample(101.0)
    assert np.array_equal(left[start : start + 16000], signal(0, 16000))
    burst = start + 16000 + int(np.flatnonzero(left[start + 16000 :])[0])
    assert burst == at_sample(102.5)
    assert np.array_equal(left[burst : burst + 16000], signal(16000, 16000))
    assert not left[burst + 16000 :].any()
