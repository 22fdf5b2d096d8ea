"""The scripted VAD: an energy detector that finds the caller's turns exactly.

The scripted caller is a tone over exact digital silence, so a frame is speech when its
RMS level reaches a threshold, and speech starts and ends where the script says (plus the
minimum speech and silence durations). It emits LiveKit's ``VADEvent`` stream like Silero
does, so the session's endpointing, interruptions and the STT adapter behave as in
production. :class:`~roark.testing.scripted.ScriptedCall` gives it to the session; a test
may build one with other durations or pass it to ``AgentSession(vad=...)`` itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import vad

from ._shared import PROVIDER, SECONDS_TOLERANCE

__all__ = ["ScriptedVAD"]


class ScriptedVAD(vad.VAD):
    """Deterministic energy VAD: a frame is speech when its RMS level reaches a threshold.

    The scripted caller produces exact digital silence between turns, so segmentation
    follows the script exactly. It emits LiveKit's ``VADEvent`` stream like Silero does:
    an INFERENCE_DONE per input frame, START_OF_SPEECH after ``min_speech_duration`` of
    speech (with the frames that triggered it) and END_OF_SPEECH after
    ``min_silence_duration`` of silence (with the whole segment's frames).

    Example::

        vad = ScriptedVAD(min_speech_duration=0.05, min_silence_duration=0.3)
    """

    def __init__(
        self,
        *,
        min_speech_duration: float = 0.05,
        min_silence_duration: float = 0.3,
        activation_level: float = 1e-3,
        update_interval: float = 0.032,
    ) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=update_interval))
        self._min_speech_duration = min_speech_duration
        self._min_silence_duration = min_silence_duration
        self._activation_level = activation_level

    @property
    def model(self) -> str:
        return "scripted-energy-vad"

    @property
    def provider(self) -> str:
        return PROVIDER

    @property
    def min_speech_duration(self) -> float:
        return self._min_speech_duration

    @property
    def min_silence_duration(self) -> float:
        return self._min_silence_duration

    @property
    def activation_level(self) -> float:
        """RMS level (full scale = 1.0) at or above which a frame counts as speech."""
        return self._activation_level

    def stream(self) -> vad.VADStream:
        return _ScriptedVADStream(self)


@dataclass
class _VADState:
    """Where one VAD stream is: totals, the current speech/silence runs, the frames held."""

    samples: int = 0
    timestamp: float = 0.0
    speaking: bool = False
    speech_duration: float = 0.0
    raw_speech: float = 0.0
    raw_silence: float = 0.0
    pending: list[rtc.AudioFrame] = field(default_factory=list)
    """Speech frames before START_OF_SPEECH (they become the segment's first frames)."""
    speech_frames: list[rtc.AudioFrame] = field(default_factory=list)

    def add(self, frame: rtc.AudioFrame, *, is_speech: bool) -> None:
        duration = frame.samples_per_channel / frame.sample_rate
        self.samples += frame.samples_per_channel
        self.timestamp += duration
        if is_speech:
            self.raw_speech += duration
            self.raw_silence = 0.0
        else:
            self.raw_silence += duration
            self.raw_speech = 0.0

        if self.speaking:
            self.speech_frames.append(frame)
            self.speech_duration += duration
        elif is_speech:
            self.pending.append(frame)
        else:
            self.pending.clear()


def _rms(frame: rtc.AudioFrame) -> float:
    data = np.frombuffer(frame.data, dtype=np.int16)
    if data.size == 0:
        return 0.0
    samples = data.astype(np.float64) / 32768.0
    return float(np.sqrt(np.mean(samples * samples)))


_VAD_EVENT_FIELDS = frozenset(f.name for f in fields(vad.VADEvent))


def _vad_event(**kwargs: Any) -> vad.VADEvent:
    # VADEvent gained fields over 1.x releases; only pass the ones this version has
    return vad.VADEvent(**{k: v for k, v in kwargs.items() if k in _VAD_EVENT_FIELDS})


class _ScriptedVADStream(vad.VADStream):
    def __init__(self, vad_: ScriptedVAD) -> None:
        self._scripted_vad = vad_
        super().__init__(vad_)

    async def _main_task(self) -> None:
        opts = self._scripted_vad
        st = _VADState()
        async for item in self._input_ch:
            if not isinstance(item, rtc.AudioFrame):
                st = _VADState()  # flush: hard segment boundary
                continue

            started = time.perf_counter()
            is_speech = _rms(item) >= opts.activation_level
            st.add(item, is_speech=is_speech)
            self._send_inference_done(st, item, is_speech, time.perf_counter() - started)

            if not st.speaking and st.raw_speech >= opts.min_speech_duration - SECONDS_TOLERANCE:
                self._start_of_speech(st)
            elif st.speaking and st.raw_silence >= opts.min_silence_duration - SECONDS_TOLERANCE:
                self._end_of_speech(st)

    def _send_inference_done(
        self, st: _VADState, frame: rtc.AudioFrame, is_speech: bool, inference_duration: float
    ) -> None:
        self._event_ch.send_nowait(
            _vad_event(
                type=vad.VADEventType.INFERENCE_DONE,
                samples_index=st.samples,
                timestamp=st.timestamp,
                speech_duration=st.speech_duration if st.speaking else 0.0,
                silence_duration=st.raw_silence,
                frames=[frame],
                probability=1.0 if is_speech else 0.0,
                inference_duration=inference_duration,
                speaking=st.speaking,
                raw_accumulated_silence=st.raw_silence,
                raw_accumulated_speech=st.raw_speech,
            )
        )

    def _start_of_speech(self, st: _VADState) -> None:
        st.speaking = True
        st.speech_frames = st.pending
        st.pending = []
        st.speech_duration = st.raw_speech
        self._event_ch.send_nowait(
            _vad_event(
                type=vad.VADEventType.START_OF_SPEECH,
                samples_index=st.samples,
                timestamp=st.timestamp,
                speech_duration=st.speech_duration,
                silence_duration=0.0,
                frames=list(st.speech_frames),
                speaking=True,
            )
        )

    def _end_of_speech(self, st: _VADState) -> None:
        self._event_ch.send_nowait(
            _vad_event(
                type=vad.VADEventType.END_OF_SPEECH,
                samples_index=st.samples,
                timestamp=st.timestamp,
                speech_duration=max(0.0, st.speech_duration - st.raw_silence),
                silence_duration=st.raw_silence,
                frames=st.speech_frames,
                speaking=False,
            )
        )
        st.speaking = False
        st.speech_frames = []
        st.speech_duration = 0.0
