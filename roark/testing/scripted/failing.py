"""Scripted providers that fail: an LLM and a TTS whose first attempts raise LiveKit API errors.

``FailingLLM`` and ``FailingTTS`` are the scripted LLM and TTS whose first ``failures``
attempts (every attempt with ``failures=None``) raise ``APIConnectionError``, the error a
provider's dropped connection gives. LiveKit's own retry loop (``conn_options.max_retry``)
retries them and emits each failure as an ``error`` event, recoverable while a retry is
left; when the retries run out the error is unrecoverable, and after the session's
``max_unrecoverable_errors`` the ``AgentSession`` closes with ``CloseReason.ERROR``. A test
reads :attr:`FailingLLM.attempts` for how often LiveKit tried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from livekit.agents import APIConnectionError, tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from .llm import ScriptedLLM, _ScriptedLLMStream
from .script import LLMReply
from .tts import ScriptedTTS, _ScriptedChunkedStream

__all__ = ["FailingLLM", "FailingTTS"]


class _Failures:
    """How many attempts fail, and how many were made."""

    def __init__(self, failures: int | None, message: str) -> None:
        self.failures = failures
        self.message = message
        self.attempts = 0

    def attempt(self) -> None:
        self.attempts += 1
        if self.failures is None or self.attempts <= self.failures:
            raise APIConnectionError(f"{self.message} (attempt {self.attempts})")


class FailingLLM(ScriptedLLM):
    """A scripted LLM whose first ``failures`` attempts fail (all of them with ``None``).

    Example::

        llm = FailingLLM([LLMReply("Hello.")], failures=1)  # the retry succeeds
    """

    def __init__(
        self,
        replies: Sequence[LLMReply] = (),
        *,
        failures: int | None = None,
        message: str = "scripted LLM connection lost",
        **kwargs: Any,
    ) -> None:
        super().__init__(replies, **kwargs)
        self._failures = _Failures(failures, message)

    @property
    def attempts(self) -> int:
        """Attempts LiveKit made (retries included)."""
        return self._failures.attempts


class _FailingLLMStream(_ScriptedLLMStream):
    async def _run(self) -> None:
        self._scripted._failures.attempt()  # type: ignore[attr-defined]
        await super()._run()


FailingLLM._stream_type = _FailingLLMStream


class FailingTTS(ScriptedTTS):
    """A scripted TTS whose first ``failures`` syntheses fail (all of them with ``None``).

    Example::

        tts = FailingTTS(failures=None)  # never speaks: the session closes with an error
    """

    def __init__(
        self,
        *,
        failures: int | None = None,
        message: str = "scripted TTS connection lost",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._failures = _Failures(failures, message)

    @property
    def attempts(self) -> int:
        return self._failures.attempts

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _FailingChunkedStream(tts_=self, input_text=text, conn_options=conn_options)


class _FailingChunkedStream(_ScriptedChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        failures: _Failures = self._scripted._failures  # type: ignore[attr-defined]
        failures.attempt()
        await super()._run(output_emitter)
