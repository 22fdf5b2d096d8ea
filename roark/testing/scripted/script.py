"""The script of a call: what the caller says and when, and what the LLM answers.

A test writes a :class:`CallScript` (the caller's turns as :class:`UserTurn`, the LLM's
generations in order as :class:`LLMReply`, each possibly with :class:`ToolCallStep` tool
calls, and the audio formats) and hands it to :class:`~roark.testing.scripted.ScriptedCall`,
which builds every scripted part from it; the script is then the truth to compare what an
observer reports against. Plain data classes, with no LiveKit dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CallScript", "LLMReply", "ToolCallStep", "UserTurn"]


@dataclass(frozen=True)
class UserTurn:
    """One thing the caller says.

    Example::

        UserTurn("Hi, where is my order?", at=2.0, duration=1.0)
    """

    text: str
    """What the caller says; the scripted STT returns exactly this."""
    at: float
    """Seconds from the start of the caller audio when the caller starts speaking."""
    duration: float = 1.0
    """Seconds of speech audio."""

    @property
    def end(self) -> float:
        """Seconds from the start of the caller audio when the caller stops speaking."""
        return self.at + self.duration


@dataclass(frozen=True)
class ToolCallStep:
    """A function tool call the scripted LLM makes.

    Example::

        ToolCallStep("lookup_order", {"order_id": "4217"}, call_id="call_1")
    """

    name: str
    arguments: dict[str, Any]
    call_id: str


@dataclass(frozen=True)
class LLMReply:
    """One LLM generation; the scripted LLM consumes them in order, one per ``chat()``.

    Example::

        LLMReply(tool_calls=(ToolCallStep("lookup_order", {"order_id": "4217"}, "call_1"),))
        LLMReply("Your order 4217 has shipped.")
    """

    text: str = ""
    tool_calls: tuple[ToolCallStep, ...] = ()


@dataclass
class CallScript:
    """A whole scripted voice call.

    Example::

        script = CallScript(
            greeting="Hello! How can I help you today?",
            user_turns=[UserTurn("Hi, where is my order?", at=2.2)],
            llm_replies=[LLMReply("Sure. What is your order number?")],
        )
    """

    user_turns: list[UserTurn]
    llm_replies: list[LLMReply]
    greeting: str | None = None
    """If set, :class:`SupportAgent` says it with ``session.say`` when it enters."""
    caller_audio_seconds: float | None = None
    """Total length of the caller audio (default: end of the last turn + 1.5 s)."""
    input_sample_rate: int = 16000
    input_channels: int = 1
    input_frame_ms: float = 20.0
    input_pauses: tuple[tuple[float, float], ...] = ()
    """(start, seconds) spans of the caller audio its source produces no frames for (a muted
    mic, a track unpublished and published again); the audio goes on at its pace after."""
    output_sample_rate: int = 24000
    """TTS / agent output sample rate."""
    tts_realtime_factor: float = 10.0
    """The TTS produces audio this many times faster than real time."""
    seconds_per_char: float = 0.05
    """TTS audio length per character of text."""
    llm_prompt_tokens: int = 50
    llm_completion_tokens: int = 20

    def __post_init__(self) -> None:
        prev: UserTurn | None = None
        for turn in self.user_turns:
            if turn.at < 0 or turn.duration <= 0:
                raise ValueError(f"invalid user turn timing: {turn!r}")
            if prev is not None and turn.at < prev.end:
                raise ValueError(f"user turns must be sorted and not overlap: {prev!r}, {turn!r}")
            prev = turn
        if self.input_sample_rate <= 0 or self.output_sample_rate <= 0:
            raise ValueError("sample rates must be positive")
        if self.input_channels <= 0:
            raise ValueError("input_channels must be positive")
        if self.input_frame_ms <= 0:
            raise ValueError("input_frame_ms must be positive")
        if self.tts_realtime_factor <= 0 or self.seconds_per_char <= 0:
            raise ValueError("tts_realtime_factor and seconds_per_char must be positive")
        if any(start < 0 or seconds <= 0 for start, seconds in self.input_pauses):
            raise ValueError(f"invalid input pause: {self.input_pauses!r}")
        if self.caller_audio_seconds is not None and self.caller_audio_seconds <= 0:
            raise ValueError("caller_audio_seconds must be positive")

    @property
    def caller_seconds(self) -> float:
        """Total length of the caller audio, with the default applied."""
        if self.caller_audio_seconds is not None:
            return self.caller_audio_seconds
        last_end = max((t.end for t in self.user_turns), default=0.0)
        return last_end + 1.5

    def speech_seconds(self, text: str) -> float:
        """How long the scripted TTS audio for ``text`` is."""
        return len(text) * self.seconds_per_char
