"""Where speech is on a stitched recording, measured from the samples themselves."""

from __future__ import annotations

from datetime import datetime

import numpy as np

WINDOW = 0.005  # seconds per energy window


def parse_iso(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def active_runs(
    channel: np.ndarray, rate: int, *, threshold: float = 0.03, bridge: float = 0.05
) -> list[tuple[float, float]]:
    """(start, end) seconds of the stretches where ``channel`` is clearly not silent.

    Gaps shorter than ``bridge`` (a tone's zero crossings, a frame boundary) are bridged.
    """
    win = max(1, round(WINDOW * rate))
    n = len(channel) // win
    if n == 0:
        return []
    blocks = np.abs(channel[: n * win].astype(np.float64)).reshape(n, win).max(axis=1)
    active = blocks > threshold * 32768
    runs: list[list[float]] = []
    start = None
    for i, on in enumerate(active):
        if on and start is None:
            start = i
        elif not on and start is not None:
            runs.append([start * WINDOW, i * WINDOW])
            start = None
    if start is not None:
        runs.append([start * WINDOW, n * WINDOW])
    merged: list[list[float]] = []
    for run in runs:
        if merged and run[0] - merged[-1][1] <= bridge:
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    return [(a, b) for a, b in merged]


def energy(channel: np.ndarray, rate: int, start: float, end: float) -> float:
    """RMS (as a fraction of full scale) of ``channel`` over [start, end) seconds."""
    lo, hi = max(0, round(start * rate)), max(0, round(end * rate))
    piece = channel[lo:hi].astype(np.float64)
    return float(np.sqrt(np.mean(piece**2)) / 32768) if len(piece) else 0.0


def check_placement(
    rec: np.ndarray,
    rate: int,
    user: list[tuple[float, float]],
    agent: list[tuple[float, float]],
    tolerance: float,
) -> None:
    """Each side's speech is one run on its own channel where it happened, and only there.

    ``user`` and ``agent`` are the (onset, offset) seconds, from the recording's first sample,
    where the caller really spoke and the agent's audio really played.
    """
    left, right = active_runs(rec[:, 0], rate), active_runs(rec[:, 1], rate)
    assert len(left) == len(user), (left, user)
    assert len(right) == len(agent), (right, agent)
    for (got_on, got_off), (want_on, want_off) in zip(left + right, user + agent, strict=True):
        assert abs(got_on - want_on) < tolerance, (got_on, want_on)
        assert abs(got_off - want_off) < tolerance, (got_off, want_off)
    # nothing of one side leaks onto the other (where they did not really talk over each other)
    for mine, theirs, other in ((user, agent, 1), (agent, user, 0)):
        for on, off in mine:
            if not any(a < off and on < b for a, b in theirs):
                assert energy(rec[:, other], rate, on + tolerance, off - tolerance) == 0.0
