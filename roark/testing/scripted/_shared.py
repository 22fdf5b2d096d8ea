"""What several scripted parts share: the provider name, the tone signal and a tolerance.

The caller (:mod:`.audio_input`) and the agent (:mod:`.tts`) speak as pure tones of
different pitch over exact digital silence, so the energy VAD segments speech exactly
where the script puts it and a test can tell the two sides apart on a recording. The
scripted STT, VAD, LLM and TTS all report :data:`PROVIDER` in LiveKit's metrics.
"""

from __future__ import annotations

import math

import numpy as np

PROVIDER = "roark-scripted"
CALLER_TONE_HZ = 700.0
AGENT_TONE_HZ = 300.0
AMPLITUDE = 0.3
"""Peak level of both tones (full scale = 1.0)."""
SECONDS_TOLERANCE = 1e-6
"""Durations summed from frame lengths are equal when this close (float rounding)."""


def tone(start: int, count: int, *, sample_rate: int, hz: float, amplitude: float) -> np.ndarray:
    """``count`` int16 samples of a sine tone, from sample index ``start`` of the signal."""
    n = np.arange(start, start + count, dtype=np.float64)
    return np.round(amplitude * 32767.0 * np.sin(2.0 * math.pi * hz * n / sample_rate)).astype(
        np.int16
    )
