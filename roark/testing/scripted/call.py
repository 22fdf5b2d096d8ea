"""Scripted, deterministic parts for driving a real LiveKit ``AgentSession`` offline.

Everything here subclasses LiveKit Agents' own base classes, so a real
:class:`livekit.agents.AgentSession` runs its normal pipeline (VAD, STT, endpointing,
LLM with function tools, TTS, playout, interruptions) against a scripted caller, with
no network and no API keys:

* :class:`ScriptedAudioInput` is the caller: real-time paced audio with a tone during
  each :class:`UserTurn` and exact digital silence elsewhere.
* :class:`ScriptedVAD` is an energy VAD, :class:`ScriptedSTT` returns the N-th scripted
  transcript for the N-th detected speech segment, :class:`ScriptedLLM` replays
  :class:`LLMReply` items in order, :class:`ScriptedTTS` renders a tone whose length is
  proportional to the text.
* :class:`RealtimeAudioOutput` is the agent's speaker: it accepts audio faster than real
  time and reports playback in real time, like a device.
* :class:`ScriptedCall` wires them into a session and :func:`run_job` runs an entrypoint
  the way LiveKit's job runner does, inside ``fake_job_context``, including shutdown.

The parts record the ground truth (when the caller spoke, what the speaker played) so
tests can compare what an observer reports against what really happened.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import itertools
import json
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents import Agent, AgentSession, JobContext, function_tool, llm, stt, tts, utils, vad
from livekit.agents.llm import ToolError
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)
from livekit.agents.voice import io

__all__ = [
    "CallScript",
    "LLMReply",
    "PlayedSegment",
    "RealtimeAudioOutput",
    "ScriptedAudioInput",
    "ScriptedCall",
    "ScriptedCallTimeout",
    "ScriptedLLM",
    "ScriptedSTT",
    "ScriptedTTS",
    "ScriptedVAD",
    "SupportAgent",
    "ToolCallStep",
    "UserTurn",
    "run_job",
]

_PROVIDER = "roark-scripted"
_CALLER_TONE_HZ = 700.0
_AGENT_TONE_HZ = 300.0
_AMPLITUDE = 0.3
_EPS = 1e-6


# --------------------------------------------------------------------------------------
# the script
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# STT
# --------------------------------------------------------------------------------------


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
        return _PROVIDER

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


# --------------------------------------------------------------------------------------
# VAD
# --------------------------------------------------------------------------------------


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
        return _PROVIDER

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
    samples: int = 0
    timestamp: float = 0.0
    speaking: bool = False
    speech_duration: float = 0.0
    raw_speech: float = 0.0
    raw_silence: float = 0.0
    pending: list[rtc.AudioFrame] = field(default_factory=list)
    speech_frames: list[rtc.AudioFrame] = field(default_factory=list)


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
            duration = item.samples_per_channel / item.sample_rate
            is_speech = _rms(item) >= opts.activation_level
            st.samples += item.samples_per_channel
            st.timestamp += duration
            if is_speech:
                st.raw_speech += duration
                st.raw_silence = 0.0
            else:
                st.raw_silence += duration
                st.raw_speech = 0.0

            if st.speaking:
                st.speech_frames.append(item)
                st.speech_duration += duration
            elif is_speech:
                st.pending.append(item)
            else:
                st.pending.clear()

            inference_duration = time.perf_counter() - started
            self._event_ch.send_nowait(
                _vad_event(
                    type=vad.VADEventType.INFERENCE_DONE,
                    samples_index=st.samples,
                    timestamp=st.timestamp,
                    speech_duration=st.speech_duration if st.speaking else 0.0,
                    silence_duration=st.raw_silence,
                    frames=[item],
                    probability=1.0 if is_speech else 0.0,
                    inference_duration=inference_duration,
                    speaking=st.speaking,
                    raw_accumulated_silence=st.raw_silence,
                    raw_accumulated_speech=st.raw_speech,
                )
            )

            if not st.speaking and st.raw_speech >= opts.min_speech_duration - _EPS:
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
            elif st.speaking and st.raw_silence >= opts.min_silence_duration - _EPS:
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


# --------------------------------------------------------------------------------------
# LLM
# --------------------------------------------------------------------------------------


class ScriptedLLM(llm.LLM):
    """LLM replaying :class:`LLMReply` items in order, one per ``chat()`` call.

    Text is streamed in a few chunks, tool calls are yielded as ``FunctionToolCall`` with
    the scripted ``call_id``, and the last chunk carries the scripted token usage, so
    LiveKit's ``LLMStream`` emits ``LLMMetrics`` with those counts. When the replies run
    out it answers ``fallback_text`` (it never hangs).

    Example::

        llm = ScriptedLLM([LLMReply("Hello there.")], prompt_tokens=50, completion_tokens=20)
    """

    def __init__(
        self,
        replies: Sequence[LLMReply],
        *,
        prompt_tokens: int = 50,
        completion_tokens: int = 20,
        fallback_text: str = "Okay.",
        chunk_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self._replies: collections.deque[LLMReply] = collections.deque(replies)
        self._prompt_tokens = prompt_tokens
        self._completion_tokens = completion_tokens
        self._fallback_text = fallback_text
        self._chunk_delay = chunk_delay
        self.requests: list[llm.ChatContext] = []
        """A copy of the chat context of every ``chat()`` call, in order."""
        self.replies_used: list[LLMReply] = []

    @property
    def model(self) -> str:
        return "scripted-llm"

    @property
    def provider(self) -> str:
        return _PROVIDER

    @property
    def remaining(self) -> int:
        """Scripted replies not yet consumed."""
        return len(self._replies)

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[Any] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[Any] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        reply = self._replies.popleft() if self._replies else LLMReply(self._fallback_text)
        self.requests.append(chat_ctx.copy())
        self.replies_used.append(reply)
        return _ScriptedLLMStream(
            self, reply=reply, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )


def _text_chunks(text: str, parts: int = 3) -> list[str]:
    words = re.findall(r"\S+\s*|\s+", text)
    if not words:
        return []
    size = max(1, math.ceil(len(words) / parts))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


class _ScriptedLLMStream(llm.LLMStream):
    def __init__(
        self,
        llm_: ScriptedLLM,
        *,
        reply: LLMReply,
        chat_ctx: llm.ChatContext,
        tools: list[Any],
        conn_options: APIConnectOptions,
    ) -> None:
        super().__init__(llm_, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._reply = reply
        self._scripted = llm_

    async def _run(self) -> None:
        request_id = utils.shortuuid("scripted_llm_")
        for chunk in _text_chunks(self._reply.text):
            self._event_ch.send_nowait(
                llm.ChatChunk(id=request_id, delta=llm.ChoiceDelta(role="assistant", content=chunk))
            )
            await asyncio.sleep(self._scripted._chunk_delay)

        if self._reply.tool_calls:
            calls = [
                llm.FunctionToolCall(
                    name=step.name, arguments=json.dumps(step.arguments), call_id=step.call_id
                )
                for step in self._reply.tool_calls
            ]
            self._event_ch.send_nowait(
                llm.ChatChunk(
                    id=request_id, delta=llm.ChoiceDelta(role="assistant", tool_calls=calls)
                )
            )

        prompt, completion = self._scripted._prompt_tokens, self._scripted._completion_tokens
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=request_id,
                usage=llm.CompletionUsage(
                    completion_tokens=completion,
                    prompt_tokens=prompt,
                    total_tokens=prompt + completion,
                ),
            )
        )


# --------------------------------------------------------------------------------------
# TTS
# --------------------------------------------------------------------------------------


def _tone(start: int, count: int, *, sample_rate: int, hz: float, amplitude: float) -> np.ndarray:
    n = np.arange(start, start + count, dtype=np.float64)
    return np.round(amplitude * 32767.0 * np.sin(2.0 * math.pi * hz * n / sample_rate)).astype(
        np.int16
    )


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
        tone_hz: float = _AGENT_TONE_HZ,
        amplitude: float = _AMPLITUDE,
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
        return _PROVIDER

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
            pcm = _tone(
                pushed, count, sample_rate=sample_rate, hz=t._tone_hz, amplitude=t._amplitude
            )
            output_emitter.push(pcm.tobytes())
            pushed += count
            delay = started + pushed / sample_rate / t._realtime_factor - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)


# --------------------------------------------------------------------------------------
# audio input (the caller)
# --------------------------------------------------------------------------------------


def _init_audio_input(obj: io.AudioInput, label: str) -> None:
    try:
        io.AudioInput.__init__(obj, label=label)
    except TypeError:  # very old 1.x: no label
        io.AudioInput.__init__(obj)


class ScriptedAudioInput(io.AudioInput):
    """The caller: real-time paced audio with a 700 Hz tone during each turn.

    Frame ``k`` (``frame_ms`` long) is handed out no earlier than ``start + k * frame``,
    where ``start`` is the time of the first ``__anext__``. Outside the turns the audio is
    exact digital silence. After ``total_seconds`` the iterator ends (LiveKit's session
    just stops forwarding audio). It records the truth: ``started_at`` (wall time the
    first frame was handed out), ``turn_onsets`` / ``turn_offsets`` (wall time the frame
    holding a turn's first speech sample / first silent sample after it was handed out),
    :meth:`turns_due` (when those samples were due, at the audio's own steady pace) and
    ``max_lateness`` (how far behind that pace the event loop ever handed a frame out).

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
        tone_hz: float = _CALLER_TONE_HZ,
        amplitude: float = _AMPLITUDE,
        label: str = "ScriptedAudioInput",
    ) -> None:
        _init_audio_input(self, label)
        self._sample_rate = sample_rate
        self._num_channels = num_channels
        self._samples_per_frame = max(1, round(sample_rate * frame_ms / 1000.0))
        self._total_samples = max(0, round(total_seconds * sample_rate))
        self._bounds = [(round(t.at * sample_rate), round(t.end * sample_rate)) for t in turns]
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
        delay = self._t0 + self._next_sample / self._sample_rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._closed:
            self._finish()
            raise StopAsyncIteration

        first = self._next_sample
        last = min(first + self._samples_per_frame, self._total_samples)
        due = self._t0 + first / self._sample_rate
        self.max_lateness = max(self.max_lateness, loop.time() - due)
        frame = self._render(first, last)
        self._next_sample = last
        self.frames_sent += 1

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
        return frame

    def _render(self, first: int, last: int) -> rtc.AudioFrame:
        count = last - first
        pcm = np.zeros(count, dtype=np.int16)
        for start, end in self._bounds:
            lo, hi = max(start, first), min(end, last)
            if lo < hi:
                pcm[lo - first : hi - first] = _tone(
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


# --------------------------------------------------------------------------------------
# audio output (the agent's speaker)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlayedSegment:
    """What the speaker did with one playback segment (audio between two flushes).

    Example::

        seg = call.output.segments[0]
        assert not seg.interrupted and abs(seg.played_seconds - 1.6) < 0.06
    """

    started_at: float | None
    """Wall time the first frame started playing; ``None`` if nothing was played."""
    played_seconds: float
    """Seconds of audio actually played (pauses excluded)."""
    interrupted: bool
    """Whether ``clear_buffer()`` cut the segment short."""
    captured_seconds: float
    """Seconds of audio the segment received."""
    finished_at: float
    """Wall time playback finished or was interrupted."""


@dataclass(eq=False)
class _Segment:
    captured: float = 0.0
    flushed: bool = False
    played_base: float = 0.0
    anchor: float | None = None  # monotonic time the device (re)started consuming audio
    started_at: float | None = None


def _init_audio_output(obj: io.AudioOutput, label: str, sample_rate: int | None) -> None:
    try:
        io.AudioOutput.__init__(
            obj,
            label=label,
            capabilities=io.AudioOutputCapabilities(pause=True),
            sample_rate=sample_rate,
        )
    except (TypeError, AttributeError):  # older 1.x: no capabilities
        io.AudioOutput.__init__(obj, label=label, next_in_chain=None, sample_rate=sample_rate)


class RealtimeAudioOutput(io.AudioOutput):
    """The agent's speaker: accepts audio faster than real time, plays it in real time.

    ``capture_frame`` never blocks; a background task models a device consuming the
    buffered audio at real-time speed. It reports ``playback_started`` when a segment's
    first frame starts playing and ``playback_finished`` once per segment: when a flushed
    segment has fully played, or on ``clear_buffer()`` with the position reached.
    ``pause()``/``resume()`` stop and restart the device clock. An underrun (audio
    arriving slower than real time) stalls playback like a real device would. The truth
    is in :attr:`segments`.

    Example::

        speaker = RealtimeAudioOutput()
        session.output.audio = speaker
        ...
        assert not speaker.segments[0].interrupted
    """

    def __init__(
        self, *, sample_rate: int | None = None, label: str = "RealtimeAudioOutput"
    ) -> None:
        _init_audio_output(self, label, sample_rate)
        self._queue: collections.deque[_Segment] = collections.deque()
        self._capturing: _Segment | None = None
        self._paused = False
        self._wake = asyncio.Event()
        self._idle_event = asyncio.Event()
        self._idle_event.set()
        self._task: asyncio.Task[None] | None = None
        self.segments: list[PlayedSegment] = []
        """Finished segments, in order."""

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def idle(self) -> bool:
        """Nothing buffered, playing or being captured."""
        return not self._queue and self._capturing is None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        seg = self._capturing
        if seg is None:
            seg = self._capturing = _Segment()
            self._queue.append(seg)
            self._idle_event.clear()
        self._rebase(seg)
        seg.captured += frame.samples_per_channel / frame.sample_rate
        self._maybe_start()
        self._kick()

    def flush(self) -> None:
        super().flush()
        if self._capturing is not None:
            self._capturing.flushed = True
            self._capturing = None
            self._kick()

    def clear_buffer(self) -> None:
        if self._capturing is not None:
            # clear_buffer ends the segment being captured too; keep the base counters right
            io.AudioOutput.flush(self)
            self._capturing.flushed = True
            self._capturing = None
        while self._queue:
            seg = self._queue.popleft()
            complete = seg.flushed and self._played(seg) >= seg.captured - _EPS
            self._finish(seg, interrupted=not complete)
        self._wake.set()
        self._idle_event.set()

    def pause(self) -> None:
        if self._paused:
            return
        if self._queue:
            self._rebase(self._queue[0])
            self._queue[0].anchor = None
        self._paused = True
        self._wake.set()

    def resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if self._queue and self._queue[0].started_at is not None:
            self._queue[0].anchor = time.monotonic()
        self._maybe_start()
        self._kick()

    async def aclose(self) -> None:
        """Stop the playback task; unfinished segments are reported as interrupted."""
        if self._queue or self._capturing is not None:
            self.clear_buffer()
        if self._task is not None:
            await utils.aio.cancel_and_wait(self._task)
            self._task = None

    async def wait_idle(self) -> None:
        """Wait until nothing is buffered or playing."""
        while not self.idle:
            await self._idle_event.wait()

    def _played(self, seg: _Segment) -> float:
        if seg.anchor is None:
            return min(seg.played_base, seg.captured)
        return min(seg.captured, seg.played_base + (time.monotonic() - seg.anchor))

    def _rebase(self, seg: _Segment) -> None:
        # folding the elapsed time in (clamped to what was captured) also models an underrun:
        # the device stalls at the end of the buffer and restarts from `now`
        if seg.anchor is not None:
            seg.played_base = self._played(seg)
            seg.anchor = time.monotonic()

    def _maybe_start(self) -> None:
        if not self._queue or self._paused:
            return
        seg = self._queue[0]
        if seg.started_at is None and seg.captured > 0:
            seg.started_at = time.time()
            seg.anchor = time.monotonic()
            if hasattr(self, "on_playback_started"):
                self.on_playback_started(created_at=seg.started_at)

    def _finish(self, seg: _Segment, *, interrupted: bool) -> None:
        played = self._played(seg)
        self.segments.append(
            PlayedSegment(
                started_at=seg.started_at,
                played_seconds=played,
                interrupted=interrupted,
                captured_seconds=seg.captured,
                finished_at=time.time(),
            )
        )
        self.on_playback_finished(playback_position=played, interrupted=interrupted)

    def _kick(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._playout(), name="RealtimeAudioOutput._playout")

    async def _playout(self) -> None:
        while self._queue:
            self._wake.clear()
            seg = self._queue[0]
            self._maybe_start()
            timeout: float | None = None
            if seg.flushed and not self._paused:
                remaining = seg.captured - self._played(seg)
                if remaining <= _EPS:
                    self._queue.popleft()
                    self._finish(seg, interrupted=False)
                    continue
                timeout = remaining
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        if self._capturing is None:
            self._idle_event.set()


# --------------------------------------------------------------------------------------
# example agent
# --------------------------------------------------------------------------------------


class _JSONDict(dict):  # type: ignore[type-arg]
    # LiveKit stringifies a tool's return value with str(); render dicts as JSON instead
    def __str__(self) -> str:
        return json.dumps(self)


_SUPPORT_INSTRUCTIONS = (
    "You are a friendly customer support agent for an online shop. "
    "Help callers find out where their orders are. Use lookup_order to check an order."
)


class SupportAgent(Agent):
    """Example support agent with an order-lookup tool; says ``greeting`` when it enters.

    ``lookup_order`` returns ``{"order_id": ..., "status": "shipped"}`` (rendered as JSON
    in the tool output) for an all-digit id and raises ``ToolError`` otherwise.

    Example::

        await session.start(agent=SupportAgent(greeting="Hello! How can I help you today?"))
    """

    def __init__(
        self, *, greeting: str | None = None, instructions: str = _SUPPORT_INSTRUCTIONS
    ) -> None:
        super().__init__(instructions=instructions)
        self.greeting = greeting

    async def on_enter(self) -> None:
        if self.greeting:
            self.session.say(self.greeting)

    @function_tool
    async def lookup_order(self, order_id: str) -> dict[str, str]:
        """Look up the shipping status of an order.

        Args:
            order_id: The order number (digits only).
        """
        order_id = order_id.strip()
        if not order_id.isdigit():
            raise ToolError(f"Unknown order id {order_id!r}: order ids are digits only.")
        return _JSONDict(order_id=order_id, status="shipped")


# --------------------------------------------------------------------------------------
# harness
# --------------------------------------------------------------------------------------


class ScriptedCallTimeout(TimeoutError):
    """A scripted call or job did not reach the expected state in time.

    Example::

        with pytest.raises(ScriptedCallTimeout):
            await call.wait_until_done(timeout=0.1)
    """


_ENDPOINTING_DELAY = 0.25
_INTERRUPTION_MIN_DURATION = 0.3


def _default_session_kwargs() -> dict[str, Any]:
    params = inspect.signature(AgentSession.__init__).parameters
    opts: dict[str, Any] = {}
    if "turn_handling" in params:
        opts["turn_handling"] = {
            # explicit "vad": the default is LiveKit's model-based turn detector
            "turn_detection": "vad",
            "endpointing": {"min_delay": _ENDPOINTING_DELAY, "max_delay": 3.0},
            # explicit "vad": "adaptive" interruption needs LiveKit inference (network)
            "interruption": {"mode": "vad", "min_duration": _INTERRUPTION_MIN_DURATION},
            # a preemptive generation would consume scripted LLM replies out of order
            "preemptive_generation": {"enabled": False},
        }
    else:
        opts.update(
            turn_detection="vad",
            min_endpointing_delay=_ENDPOINTING_DELAY,
            max_endpointing_delay=3.0,
            min_interruption_duration=_INTERRUPTION_MIN_DURATION,
            preemptive_generation=False,
        )
    # AEC warmup ignores barge-in for the first seconds of agent speech; there is no echo here
    opts["aec_warmup_duration"] = None
    opts["session_close_transcript_timeout"] = 0.5
    return {k: v for k, v in opts.items() if k in params}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class ScriptedCall:
    """One scripted voice call: the scripted parts, the session, and the truth.

    Example::

        call = ScriptedCall(script)

        async def entrypoint(ctx: JobContext) -> None:
            session = call.build_session()
            await session.start(agent=SupportAgent(greeting=script.greeting))

        await run_job(entrypoint, call=call)
        print(call.input.onsets_relative(), call.output.segments)
    """

    def __init__(self, script: CallScript, *, tools_agent: type[Agent] | None = None) -> None:
        self.script = script
        self.tools_agent: type[Agent] = tools_agent or SupportAgent
        self.vad = ScriptedVAD()
        self.stt = ScriptedSTT([t.text for t in script.user_turns])
        self.llm = ScriptedLLM(
            script.llm_replies,
            prompt_tokens=script.llm_prompt_tokens,
            completion_tokens=script.llm_completion_tokens,
        )
        self.tts = ScriptedTTS(
            sample_rate=script.output_sample_rate,
            seconds_per_char=script.seconds_per_char,
            realtime_factor=script.tts_realtime_factor,
        )
        self.input = ScriptedAudioInput(
            script.user_turns,
            total_seconds=script.caller_seconds,
            sample_rate=script.input_sample_rate,
            num_channels=script.input_channels,
            frame_ms=script.input_frame_ms,
        )
        self.output = RealtimeAudioOutput()
        self.session: AgentSession | None = None
        self._session_closed = False
        self._check_gaps()

    def _check_gaps(self) -> None:
        min_gap = self.vad.min_silence_duration + self.input.frame_seconds
        turns = self.script.user_turns
        for prev, nxt in itertools.pairwise(turns):
            if nxt.at - prev.end < min_gap:
                raise ValueError(
                    f"turns {prev.text!r} and {nxt.text!r} are {nxt.at - prev.end:.2f}s apart; "
                    f"the VAD needs more than {min_gap:.2f}s of silence to split them"
                )
        if turns and self.script.caller_seconds - turns[-1].end < min_gap:
            raise ValueError(
                "the caller audio must continue for at least "
                f"{min_gap:.2f}s after the last turn so the VAD can detect its end"
            )

    def make_agent(self) -> Agent:
        """An instance of ``tools_agent`` (``SupportAgent`` gets the script's greeting)."""
        if issubclass(self.tools_agent, SupportAgent):
            return self.tools_agent(greeting=self.script.greeting)
        return self.tools_agent()

    def build_session(self, **session_kwargs: Any) -> AgentSession:
        """Create the ``AgentSession`` with the scripted parts and deterministic options.

        ``session_kwargs`` override the defaults (dicts such as ``turn_handling`` are
        merged). The scripted audio input and speaker are assigned before ``start()``,
        so no RoomIO is created.
        """
        if self.session is not None:
            raise RuntimeError("build_session() was already called for this ScriptedCall")
        kwargs = _merge(
            {
                "stt": self.stt,
                "vad": self.vad,
                "llm": self.llm,
                "tts": self.tts,
                **_default_session_kwargs(),
            },
            session_kwargs,
        )
        session: AgentSession = AgentSession(**kwargs)
        session.input.audio = self.input
        session.output.audio = self.output
        session.on("close", self._on_session_close)
        self.session = session
        return session

    def _on_session_close(self, _ev: Any) -> None:
        self._session_closed = True

    def _idle(self) -> bool:
        session = self.session
        if session is None:
            return False
        if self._session_closed:
            return True
        return (
            self.input.done
            and self.output.idle
            and session.agent_state in ("listening", "idle")
            and session.user_state != "speaking"
        )

    def describe(self) -> str:
        """A one-line summary of the call state, for error messages."""
        session = self.session
        return (
            f"session={'built' if session else 'not built'}, "
            f"agent_state={session.agent_state if session else None}, "
            f"user_state={session.user_state if session else None}, "
            f"input_done={self.input.done}, output_idle={self.output.idle}, "
            f"stt_recognized={len(self.stt.recognized)}/{len(self.script.user_turns)}, "
            f"llm_replies_left={self.llm.remaining}, played_segments={len(self.output.segments)}"
        )

    async def wait_until_done(self, timeout: float = 30.0, *, settle: float = 0.5) -> None:
        """Wait until the caller audio is over and the agent is idle.

        Idle means: nothing playing or buffered, agent ``listening``, user not speaking,
        held for ``settle`` seconds (so a reply about to be scheduled is not missed), or
        the session closed. Raises :class:`ScriptedCallTimeout` after ``timeout``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        idle_since: float | None = None
        while True:
            now = loop.time()
            if self._idle():
                idle_since = now if idle_since is None else idle_since
                if now - idle_since >= settle or self._session_closed:
                    return
            else:
                idle_since = None
            if now >= deadline:
                raise ScriptedCallTimeout(
                    f"scripted call not done after {timeout:.1f}s: {self.describe()}"
                )
            await asyncio.sleep(0.02)

    async def aclose(self) -> None:
        """Stop the scripted input and the speaker's playback task."""
        await self.input.aclose()
        await self.output.aclose()


def _construct(cls: Callable[..., Any], **kwargs: Any) -> Any:
    # LiveKit's job classes gained keyword arguments over 1.x releases; pass only the ones
    # this version's constructor accepts
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return cls(**kwargs)


@contextlib.contextmanager
def _legacy_fake_job_context(*, room: rtc.Room, job_id: str) -> Iterator[JobContext]:
    # mirrors livekit.agents.testing.fake_job_context for 1.x releases that lack it
    from livekit.agents import job as lk_job
    from livekit.protocol import agent as agent_proto
    from livekit.protocol import models

    info = _construct(
        lk_job.RunningJobInfo,
        accept_arguments=lk_job.JobAcceptArguments(identity="fake-agent", name="", metadata=""),
        job=agent_proto.Job(
            id=job_id,
            room=models.Room(name=room.name or "fake-room", sid=utils.shortuuid("RM_")),
            type=agent_proto.JobType.JT_ROOM,
        ),
        url="",
        token="",
        worker_id="fake",
        fake_job=True,  # newer 1.x only
    )
    proc = _construct(
        lk_job.JobProcess,
        executor_type=lk_job.JobExecutorType.THREAD,
        user_arguments=None,
        http_proxy=None,
    )
    ctx = _construct(
        lk_job.JobContext,
        proc=proc,
        info=info,
        room=room,
        on_connect=lambda: None,
        on_shutdown=lambda _reason: None,
        inference_executor=None,
    )
    ctx._connected = True  # type: ignore[attr-defined]
    token = lk_job._JobContextVar.set(ctx)
    try:
        yield ctx
    finally:
        lk_job._JobContextVar.reset(token)


@contextlib.contextmanager
def _job_context(*, job_id: str, room_name: str) -> Iterator[JobContext]:
    room = rtc.Room()
    with contextlib.suppress(Exception):
        # an unconnected rtc.Room has no public way to carry a name
        room._info.name = room_name
    factory: Callable[..., contextlib.AbstractContextManager[JobContext]]
    try:
        from livekit.agents.testing import fake_job_context as factory
    except ImportError:
        factory = _legacy_fake_job_context
    with factory(room=room, job_id=job_id) as ctx:
        yield ctx


_SHUTDOWN_STEP_TIMEOUT = 10.0


async def _shutdown_job(ctx: JobContext, reason: str) -> None:
    """What LiveKit's job runner does on shutdown (``_shutdown_job``), minus the network."""
    errors: list[str] = []
    session = getattr(ctx, "_primary_agent_session", None)
    if session is not None:
        try:
            await asyncio.wait_for(session.aclose(), _SHUTDOWN_STEP_TIMEOUT)
        except asyncio.TimeoutError:
            errors.append(f"AgentSession.aclose() did not finish in {_SHUTDOWN_STEP_TIMEOUT}s")

    callbacks: list[Callable[[str], Awaitable[None]]] = list(
        getattr(ctx, "_shutdown_callbacks", [])
    )
    failures: list[BaseException] = []
    if callbacks:
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(cb(reason) for cb in callbacks), return_exceptions=True),
                _SHUTDOWN_STEP_TIMEOUT,
            )
            failures = [r for r in results if isinstance(r, BaseException)]
        except asyncio.TimeoutError:
            errors.append(f"shutdown callbacks did not finish in {_SHUTDOWN_STEP_TIMEOUT}s")

    pending = [t for t in getattr(ctx, "_pending_tasks", []) if not t.done()]
    if pending:
        await utils.aio.cancel_and_wait(*pending)

    if errors:
        raise ScriptedCallTimeout("job shutdown timed out: " + "; ".join(errors))
    if failures:
        # the real runner only logs these; a test wants to see them
        raise failures[0]


async def run_job(
    entrypoint: Callable[[JobContext], Awaitable[None]],
    *,
    call: ScriptedCall | None = None,
    shutdown_reason: str = "room deleted",
    job_id: str = "job-test",
    room_name: str = "test-room",
    timeout: float = 30.0,
) -> JobContext:
    """Run ``entrypoint`` like LiveKit's job runner, inside ``fake_job_context``.

    Awaits the entrypoint, then (with ``call``) waits for the call to be done, then
    emulates the runner's shutdown: ``aclose()`` of the primary ``AgentSession``, then the
    context's shutdown callbacks with ``shutdown_reason`` (all run; the first one that
    raised is re-raised). Shutdown also runs when the entrypoint or the wait fails.
    Raises :class:`ScriptedCallTimeout` on timeouts.

    Example::

        ctx = await run_job(entrypoint, call=call, shutdown_reason="room deleted")
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def remaining() -> float:
        return max(0.0, deadline - loop.time())

    with _job_context(job_id=job_id, room_name=room_name) as ctx:
        failed = False
        try:
            try:
                await asyncio.wait_for(entrypoint(ctx), remaining())
            except asyncio.TimeoutError as e:
                raise ScriptedCallTimeout(
                    f"entrypoint did not return within {timeout:.1f}s"
                    + (f": {call.describe()}" if call else "")
                ) from e
            if call is not None:
                await call.wait_until_done(timeout=remaining())
        except BaseException:
            failed = True
            raise
        finally:
            try:
                await _shutdown_job(ctx, shutdown_reason)
            except Exception:
                if not failed:
                    raise
            finally:
                if call is not None:
                    await call.aclose()
    return ctx
