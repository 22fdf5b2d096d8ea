"""The scripted STT: the N-th detected speech segment is heard as the N-th scripted text.

It is a non-streaming ``stt.STT``, so ``AgentSession`` wraps it in LiveKit's
``stt.StreamAdapter`` with the session's VAD and real transcripts, ``STTMetrics`` and
user turns follow from the caller audio. A test reads :attr:`ScriptedSTT.recognized` for
what was "heard", in order; :class:`~roark.testing.scripted.ScriptedCall` feeds it the
texts of the script's user turns.
"""

from __future__ import annotations

from collections.abc import Sequence

from livekit.agents import stt, utils
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)

from ._shared import PROVIDER

__all__ = ["ScriptedSTT"]


class ScriptedSTT(stt.STT):
    """Non-streaming STT returning the N-th scripted transcript for the N-th speech segment.

    It declares ``streaming=False``, so ``AgentSession`` wraps it in LiveKit's
    ``stt.StreamAdapter`` with the session VAD: each VAD end-of-speech becomes one
    ``recognize()`` call and one FINAL_TRANSCRIPT. ``STT.recognize`` emits
    ``STTMetrics`` through ``metrics_collected``. When the transcripts run out it returns
    an empty transcript, which LiveKit ignores.

    Example::

        stt = ScriptedSTT(["Hi, where is my order?", "It is 4 2 1 7."])
    """

    def __init__(self, transcripts: Sequence[str], *, language: str = "en") -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._transcripts = list(transcripts)
        self._language = language
        self.recognized: list[str] = []
        """Transcripts returned so far, in order (the truth of what the STT 'heard')."""
        self.recognized_audio_seconds: list[float] = []

    @property
    def model(self) -> str:
        return "scripted-stt"

    @property
    def provider(self) -> str:
        return PROVIDER

    @property
    def remaining(self) -> int:
        """Scripted transcripts not yet returned."""
        return max(0, len(self._transcripts) - len(self.recognized))

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        index = len(self.recognized)
        text = self._transcripts[index] if index < len(self._transcripts) else ""
        self.recognized.append(text)
        self.recognized_audio_seconds.append(_buffer_seconds(buffer))
        lang = language if utils.is_given(language) else self._language
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=utils.shortuuid("scripted_stt_"),
            alternatives=[stt.SpeechData(language=lang, text=text, confidence=1.0)],
        )


def _buffer_seconds(buffer: utils.AudioBuffer) -> float:
    frames = buffer if isinstance(buffer, list) else [buffer]
    return sum(f.samples_per_channel / f.sample_rate for f in frames)
