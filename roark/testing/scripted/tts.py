"""The scripted TTS: renders each text as a 300 Hz tone whose length is set by the text.

``len(text) * seconds_per_char`` seconds of tone, delivered ``realtime_factor`` times
faster than real time, so where the agent's speech lands on a recording is known in
advance (:meth:`ScriptedTTS.audio_seconds`, :meth:`CallScript.speech_seconds
<roark.testing.scripted.CallScript.speech_seconds>`). It is a non-streaming ``tts.TTS``
that LiveKit wraps in its ``tts.StreamAdapter`` and that emits ``TTSMetrics``; a test
reads :attr:`ScriptedTTS.synthesized` for every text spoken.
"""

from __future__ import annotations

import asyncio

from livekit.agents import tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from ._shared import AGENT_TONE_HZ, AMPLITUDE, PROVIDER, tone

__all__ = ["ScriptedTTS"]


class ScriptedTTS(tts.TTS):
    """Non-streaming TTS rendering ``len(text) * seconds_per_char`` seconds of a 300 Hz tone.

    Audio is 16-bit mono at ``sample_rate`` and is delivered ``realtime_factor`` times
    faster than real time. ``AgentSession`` wraps it in LiveKit's ``tts.StreamAdapter``
    (a sentence tokenizer that keeps the whitespace), so the audio of a reply is
    ``len(reply) * seconds_per_char`` long overall. ``ChunkedStream`` emits
    ``TTSMetrics`` for every synthesis.

    Example::

        tts = ScriptedTTS(sample_rate=24000, seconds_per_char=0.05, realtime_factor=10.0)
    """

    def __init__(
        self,
        *,
        sample_rate: int = 24000,
        seconds_per_char: float = 0.05,
        realtime_factor: float = 10.0,
        tone_hz: float = AGENT_TONE_HZ,
        amplitude: float = AMPLITUDE,
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=sample_rate,
            num_channels=1,
        )
        self._seconds_per_char = seconds_per_char
        self._realtime_factor = realtime_factor
        self._tone_hz = tone_hz
        self._amplitude = amplitude
        self.synthesized: list[str] = []
        """Every text synthesized, in order."""

    @property
    def model(self) -> str:
        return "scripted-tts"

    @property
    def provider(self) -> str:
        return PROVIDER

    def audio_seconds(self, text: str) -> float:
        """Length of the audio rendered for ``text``."""
        return self._num_samples(text) / self.sample_rate

    def _num_samples(self, text: str) -> int:
        if not text.strip():
            return 0
        return max(1, round(len(text) * self._seconds_per_char * self.sample_rate))

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _ScriptedChunkedStream(tts_=self, input_text=text, conn_options=conn_options)


class _ScriptedChunkedStream(tts.ChunkedStream):
    def __init__(
        self, *, tts_: ScriptedTTS, input_text: str, conn_options: APIConnectOptions
    ) -> None:
        super().__init__(tts=tts_, input_text=input_text, conn_options=conn_options)
        self._scripted = tts_

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        t = self._scripted
        sample_rate = t.sample_rate
        output_emitter.initialize(
            request_id=utils.shortuuid("scripted_tts_"),
            sample_rate=sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
        )
        t.synthesized.append(self.input_text)
        total = t._num_samples(self.input_text)
        chunk = max(1, sample_rate // 25)  # 40 ms of audio per push
        loop = asyncio.get_running_loop()
        started = loop.time()
        pushed = 0
        while pushed < total:
            count = min(chunk, total - pushed)
            pcm = tone(
                pushed, count, sample_rate=sample_rate, hz=t._tone_hz, amplitude=t._amplitude
            )
            output_emitter.push(pcm.tobytes())
            pushed += count
            delay = started + pushed / sample_rate / t._realtime_factor - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
