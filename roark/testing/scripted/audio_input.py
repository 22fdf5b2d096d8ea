"""The scripted caller: real-time paced audio with a 700 Hz tone during each user turn.

``ScriptedAudioInput`` is the session's ``input.audio``: it hands out frames at the pace
of real audio and is exact digital silence between the script's turns. It records the
truth of when each turn was handed out (``turn_onsets``, ``turn_offsets``), when it was
due at the audio's own pace (:meth:`ScriptedAudioInput.turns_due`) and how late a stalled
event loop ever made it (``max_lateness``), so a test can check where an observer placed
the caller's speech. :class:`~roark.testing.scripted.ScriptedCall` builds it from the
script; a test can also assign one to ``session.input.audio`` itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import numpy as np
from livekit import rtc
from livekit.agents.voice import io

from ._shared import AMPLITUDE, CALLER_TONE_HZ, tone
from .script import UserTurn

__all__ = ["ScriptedAudioInput"]


def _init_audio_input(obj: io.AudioInput, label: str) -> None:
    try:
        io.AudioInput.__init__(obj, label=label)
    except TypeError:  # very old 1.x: no label
        io.AudioInput.__init__(obj)


class ScriptedAudioInput(io.AudioInput):
    """The caller: real-time paced audio with a 700 Hz tone during each turn.

    Frame ``k`` (``frame_ms`` long) is handed out no earlier than ``start + k * frame``,
    where ``start`` is the time of the first ``__anext__``; frames the loop could not hand
    out in time (it was blocked) are handed out at once when it can, as LiveKit's
    ``rtc.AudioStream`` queues them. Outside the turns the audio is exact digital silence.
    During ``pauses`` ((start, seconds) of the audio) the source produces no frames at all,
    as a muted or unpublished track; it resumes at its own pace. After ``total_seconds``
    the iterator ends (LiveKit's session just stops forwarding audio). It records the
    truth: ``started_at`` (wall time the first frame was handed out), ``turn_onsets`` /
    ``turn_offsets`` (wall time the frame holding a turn's first speech sample / first
    silent sample after it was handed out), :meth:`turns_due` (when those samples were
    due, at the audio's own steady pace) and ``max_lateness`` (how far behind that pace
    the event loop ever handed a frame out).

    Example::

        audio_in = ScriptedAudioInput([UserTurn("Hi", at=0.5)], total_seconds=2.0)
        session.input.audio = audio_in
    """

    def __init__(
        self,
        turns: Sequence[UserTurn],
        *,
        total_seconds: float,
        sample_rate: int = 16000,
        num_channels: int = 1,
        frame_ms: float = 20.0,
        pauses: Sequence[tuple[float, float]] = (),
        tone_hz: float = CALLER_TONE_HZ,
        amplitude: float = AMPLITUDE,
        label: str = "ScriptedAudioInput",
    ) -> None:
        _init_audio_input(self, label)
        self._sample_rate = sample_rate
        self._num_channels = num_channels
        self._samples_per_frame = max(1, round(sample_rate * frame_ms / 1000.0))
        self._total_samples = max(0, round(total_seconds * sample_rate))
        self._bounds = [(round(t.at * sample_rate), round(t.end * sample_rate)) for t in turns]
        self._pauses = sorted(
            (round(start * sample_rate), round((start + seconds) * sample_rate))
            for start, seconds in pauses
        )
        self._tone_hz = tone_hz
        self._amplitude = amplitude
        self._next_sample = 0
        self._t0: float | None = None
        self._closed = False
        self._done = asyncio.Event()
        self.turns = list(turns)
        self.started_at: float | None = None
        """Wall time (``time.time()``) the first frame was handed out."""
        self.ended_at: float | None = None
        """Wall time the audio ended (last frame handed out + its duration, or close)."""
        self.turn_onsets: list[float] = []
        """Wall time the first speech frame of each turn was handed out, in turn order."""
        self.turn_offsets: list[float] = []
        """Wall time the first silent frame after each turn was handed out, in turn order."""
        self.frames_sent = 0
        self.max_lateness = 0.0
        """Most seconds any frame was handed out after it was due (a stalled event loop)."""

    def turns_due(self) -> list[tuple[float, float]]:
        """Wall times each turn's first speech sample and first silent sample after it were due.

        Counted at the audio's pace from ``started_at``: where a recorder that takes the
        caller's audio as a steady stream places the turn, however late a stalled event loop
        handed the frames out.
        """
        base = self.started_at or 0.0
        rate = self._sample_rate
        return [(base + start / rate, base + end / rate) for start, end in self._bounds]

    def turn_audio(self, index: int) -> np.ndarray:
        """Turn ``index``'s speech as the source produced it (mono int16 at its own rate):
        what a recording at that rate holds sample for sample where the turn was spoken."""
        start, end = self._bounds[index]
        return tone(
            start,
            end - start,
            sample_rate=self._sample_rate,
            hz=self._tone_hz,
            amplitude=self._amplitude,
        )

    @property
    def started_loop_time(self) -> float | None:
        """Event loop time (``loop.time()``) the first frame was due; ``None`` before it.

        Unlike ``started_at`` it does not follow ``time.time()``, so it stays true under a
        test clock that patches the wall clock.
        """
        return self._t0

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        return self._num_channels

    @property
    def frame_seconds(self) -> float:
        """Duration of one full frame (the last one may be shorter)."""
        return self._samples_per_frame / self._sample_rate

    @property
    def done(self) -> bool:
        """Whether all the caller audio was handed out (or the input was closed)."""
        return self._done.is_set()

    async def wait_done(self) -> None:
        await self._done.wait()

    def onsets_relative(self) -> list[float]:
        """``turn_onsets`` relative to ``started_at``, in seconds."""
        base = self.started_at or 0.0
        return [t - base for t in self.turn_onsets]

    async def aclose(self) -> None:
        """Stop producing audio; the iterator ends."""
        self._closed = True
        self._finish()

    def _finish(self) -> None:
        if self._done.is_set():
            return
        if self.ended_at is None:
            self.ended_at = time.time()
        while len(self.turn_offsets) < len(self.turn_onsets):
            self.turn_offsets.append(self.ended_at)
        self._done.set()

    def __aiter__(self) -> AsyncIterator[rtc.AudioFrame]:
        return self

    async def __anext__(self) -> rtc.AudioFrame:
        if self._closed or self._next_sample >= self._total_samples:
            self._finish()
            raise StopAsyncIteration

        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        self._next_sample = self._after_pauses(self._next_sample)
        if self._next_sample >= self._total_samples:
            self._finish()
            raise StopAsyncIteration
        delay = self._t0 + self._next_sample / self._sample_rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._closed:
            self._finish()
            raise StopAsyncIteration

        first = self._next_sample
        last = min(first + self._samples_per_frame, self._total_samples, self._next_pause(first))
        due = self._t0 + first / self._sample_rate
        self.max_lateness = max(self.max_lateness, loop.time() - due)
        frame = self._render(first, last)
        self._next_sample = last
        self.frames_sent += 1
        self._record_handed_out(first, last)
        return frame

    def _after_pauses(self, sample: int) -> int:
        """``sample``, or the end of the pause it falls in."""
        for start, end in self._pauses:
            if start <= sample < end:
                sample = end
        return sample

    def _next_pause(self, sample: int) -> int:
        """Where the next pause from ``sample`` on begins (the end of the audio if none)."""
        return min(
            (start for start, _ in self._pauses if start > sample), default=self._total_samples
        )

    def _record_handed_out(self, first: int, last: int) -> None:
        """Note the wall time samples ``first:last`` were handed out, for the truth."""
        now = time.time()
        if self.started_at is None:
            self.started_at = now
        for start, end in self._bounds:
            if first <= start < last:
                self.turn_onsets.append(now)
            if first <= end < last and len(self.turn_offsets) < len(self.turn_onsets):
                self.turn_offsets.append(now)
        if last >= self._total_samples:
            self.ended_at = now + (last - first) / self._sample_rate

    def _render(self, first: int, last: int) -> rtc.AudioFrame:
        count = last - first
        pcm = np.zeros(count, dtype=np.int16)
        for start, end in self._bounds:
            lo, hi = max(start, first), min(end, last)
            if lo < hi:
                pcm[lo - first : hi - first] = tone(
                    lo,
                    hi - lo,
                    sample_rate=self._sample_rate,
                    hz=self._tone_hz,
                    amplitude=self._amplitude,
                )
        if self._num_channels > 1:
            pcm = np.repeat(pcm, self._num_channels)
        return rtc.AudioFrame(
            data=pcm.tobytes(),
            sample_rate=self._sample_rate,
            num_channels=self._num_channels,
            samples_per_channel=count,
        )
