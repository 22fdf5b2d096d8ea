"""The scripted realtime (speech-to-speech) model: hears the caller, answers in audio or text.

``ScriptedRealtimeModel`` is a LiveKit ``llm.RealtimeModel`` whose sessions behave like a
provider's server: an energy detector over the caller audio LiveKit pushes reports
``input_speech_started`` / ``input_speech_stopped`` (server-side turn detection), the N-th
detected turn is transcribed as the N-th scripted transcript
(``input_audio_transcription_completed``, so LiveKit adds the user turn from the model's own
transcription) and answered with the next :class:`~roark.testing.scripted.LLMReply` as a
generation: the reply's text, the agent's tone as audio (``modality="audio"``) and its tool
calls. LiveKit runs the tools and asks for the reply to their results with
``generate_reply()``, which takes the next scripted reply, as does a ``generate_reply()`` of
the agent's own (a greeting). With ``modality="text"`` the model only streams text and the
session's TTS speaks it, as with a text-only realtime model.

A test reads :attr:`ScriptedRealtimeModel.sessions` for what each session heard
(``transcribed``), answered (``replies_used``), was told (``chat_ctx``) and truncated.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from livekit import rtc
from livekit.agents import llm, utils

from ._shared import AGENT_TONE_HZ, AMPLITUDE, PROVIDER, tone
from .script import LLMReply

__all__ = ["RealtimeTurnDetector", "ScriptedRealtimeModel", "ScriptedRealtimeSession"]

Modality = Literal["audio", "text"]
_FRAME_SECONDS = 0.02


def _capabilities(audio_output: bool) -> llm.RealtimeCapabilities:
    wanted: dict[str, Any] = {
        "message_truncation": True,
        "turn_detection": True,
        "user_transcription": True,
        # LiveKit asks for the reply to tool results itself (generate_reply), so the script
        # decides which reply answers them
        "auto_tool_reply_generation": False,
        "audio_output": audio_output,
        "manual_function_calls": True,
        "mutable_chat_context": True,
        "mutable_instructions": True,
        "mutable_tools": True,
    }
    # the capabilities gained fields over 1.x releases: pass the ones this version has
    params = inspect.signature(llm.RealtimeCapabilities).parameters
    return llm.RealtimeCapabilities(**{k: v for k, v in wanted.items() if k in params})


class RealtimeTurnDetector:
    """The server's turn detection: speech is a frame whose RMS level reaches a threshold.

    ``push`` returns ``"started"`` on the frame that makes ``min_speech_duration`` of speech,
    ``"stopped"`` on the frame that makes ``min_silence_duration`` of silence after it, and
    ``None`` otherwise. ``started_at`` is the wall time the turn's first speech frame began.

    Example::

        detector = RealtimeTurnDetector(min_silence_duration=0.3)
        if detector.push(frame) == "stopped": ...
    """

    def __init__(
        self,
        *,
        min_speech_duration: float = 0.05,
        min_silence_duration: float = 0.3,
        activation_level: float = 1e-3,
    ) -> None:
        self.min_speech_duration = min_speech_duration
        self.min_silence_duration = min_silence_duration
        self.activation_level = activation_level
        self.speaking = False
        self.started_at: float | None = None
        self._speech = 0.0
        self._silence = 0.0

    def push(self, frame: rtc.AudioFrame) -> Literal["started", "stopped"] | None:
        pcm = np.frombuffer(frame.data, dtype=np.int16).astype(np.float64) / 32768.0
        level = math.sqrt(float(np.mean(pcm * pcm))) if pcm.size else 0.0
        seconds = frame.samples_per_channel / frame.sample_rate
        if level >= self.activation_level:
            if self._speech == 0.0:
                self.started_at = time.time() - seconds
            self._speech += seconds
            self._silence = 0.0
            if not self.speaking and self._speech >= self.min_speech_duration:
                self.speaking = True
                return "started"
            return None
        self._silence += seconds
        if not self.speaking:
            self._speech = 0.0
            return None
        if self._silence >= self.min_silence_duration:
            self.speaking = False
            self._speech = 0.0
            return "stopped"
        return None


@dataclass
class _Generation:
    """One response being streamed: its channels and the task feeding them."""

    reply: LLMReply
    text_ch: utils.aio.Chan[str]
    audio_ch: utils.aio.Chan[rtc.AudioFrame]
    function_ch: utils.aio.Chan[llm.FunctionCall]
    task: asyncio.Task[None] | None = None

    def close(self) -> None:
        for ch in (self.text_ch, self.audio_ch, self.function_ch):
            ch.close()


class ScriptedRealtimeModel(llm.RealtimeModel):
    """A realtime model that transcribes the caller and answers with scripted replies.

    ``transcripts[n]`` is what the caller said in the n-th turn the server detects;
    ``replies`` are consumed in order, one per response (a detected turn, a
    ``generate_reply()``, the reply to tool results). ``modality="audio"`` streams the reply
    as the agent's tone (``seconds_per_char`` seconds per character, ``realtime_factor``
    times faster than real time) with its text as the transcript; ``"text"`` streams text
    only, for the session's TTS. ``report_turn_start`` stamps each transcription with the
    turn's start (``InputTranscriptionCompleted.turn_started_at``), as some providers do.

    Example::

        model = ScriptedRealtimeModel(
            ["Where is my order?"], [LLMReply("Hello!"), LLMReply("It has shipped.")]
        )
        session = AgentSession(llm=model)
    """

    def __init__(
        self,
        transcripts: Sequence[str],
        replies: Sequence[LLMReply],
        *,
        modality: Modality = "audio",
        sample_rate: int = 24000,
        seconds_per_char: float = 0.05,
        realtime_factor: float = 10.0,
        transcription_delay: float = 0.05,
        report_turn_start: bool = False,
        min_silence_duration: float = 0.3,
    ) -> None:
        super().__init__(capabilities=_capabilities(audio_output=modality == "audio"))
        self.modality: Modality = modality
        self.sample_rate = sample_rate
        self.seconds_per_char = seconds_per_char
        self.realtime_factor = realtime_factor
        self.transcription_delay = transcription_delay
        self.report_turn_start = report_turn_start
        self.min_silence_duration = min_silence_duration
        self._transcripts: collections.deque[str] = collections.deque(transcripts)
        self._replies: collections.deque[LLMReply] = collections.deque(replies)
        self.sessions: list[ScriptedRealtimeSession] = []
        """Every session created, in order."""

    @property
    def model(self) -> str:
        return "scripted-realtime"

    @property
    def provider(self) -> str:
        return PROVIDER

    @property
    def remaining_replies(self) -> int:
        return len(self._replies)

    def speech_seconds(self, text: str) -> float:
        """How long the audio of a reply with ``text`` is (audio modality)."""
        return len(text) * self.seconds_per_char

    def next_transcript(self) -> str:
        return self._transcripts.popleft() if self._transcripts else ""

    def next_reply(self) -> LLMReply:
        return self._replies.popleft() if self._replies else LLMReply("Okay.")

    def session(self, *, turn_detection_disabled: bool = False) -> ScriptedRealtimeSession:
        session = ScriptedRealtimeSession(self)
        self.sessions.append(session)
        return session

    async def aclose(self) -> None:
        for session in self.sessions:
            await session.aclose()


class ScriptedRealtimeSession(llm.RealtimeSession):
    """One connection to :class:`ScriptedRealtimeModel`; see there for its behaviour."""

    def __init__(self, model: ScriptedRealtimeModel) -> None:
        super().__init__(model)
        self._model = model
        self._chat_ctx = llm.ChatContext.empty()
        self._tools = llm.ToolContext.empty()
        self._detector = RealtimeTurnDetector(min_silence_duration=model.min_silence_duration)
        self._current: _Generation | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.transcribed: list[str] = []
        """What the server transcribed of each caller turn, in order."""
        self.replies_used: list[LLMReply] = []
        self.truncated: list[tuple[str, int]] = []
        """``(message_id, audio_end_ms)`` of every truncation LiveKit asked for."""
        self.instructions: str | None = None

    # -- what LiveKit reads and updates ---------------------------------------------------

    @property
    def chat_ctx(self) -> llm.ChatContext:
        return self._chat_ctx

    @property
    def tools(self) -> llm.ToolContext:
        return self._tools

    async def update_instructions(self, instructions: str) -> None:
        self.instructions = instructions

    async def update_chat_ctx(self, chat_ctx: llm.ChatContext) -> None:
        self._chat_ctx = chat_ctx.copy()

    async def update_tools(self, tools: list[Any]) -> None:
        self._tools = llm.ToolContext(tools)

    def update_options(self, *, tool_choice: Any = None) -> None:
        pass

    def push_video(self, frame: rtc.VideoFrame) -> None:
        pass

    def commit_audio(self) -> None:
        pass

    def clear_audio(self) -> None:
        pass

    def truncate(
        self,
        *,
        message_id: str,
        modalities: list[Literal["text", "audio"]],
        audio_end_ms: int,
        audio_transcript: Any = None,
    ) -> None:
        self.truncated.append((message_id, audio_end_ms))

    def interrupt(self) -> None:
        gen, self._current = self._current, None
        if gen is not None:
            if gen.task is not None:
                gen.task.cancel()
            gen.close()

    async def aclose(self) -> None:
        self._closed = True
        self.interrupt()
        if self._tasks:
            await utils.aio.cancel_and_wait(*self._tasks)

    # -- the caller's audio -----------------------------------------------------------------

    def push_audio(self, frame: rtc.AudioFrame) -> None:
        if self._closed:
            return
        change = self._detector.push(frame)
        if change == "started":
            self.emit("input_speech_started", llm.InputSpeechStartedEvent())
        elif change == "stopped":
            self.emit(
                "input_speech_stopped",
                llm.InputSpeechStoppedEvent(user_transcription_enabled=True),
            )
            started_at = self._detector.started_at
            self._spawn(self._complete_turn(started_at), "ScriptedRealtime.turn")

    async def _complete_turn(self, started_at: float | None) -> None:
        await asyncio.sleep(self._model.transcription_delay)
        transcript = self._model.next_transcript()
        self.transcribed.append(transcript)
        item_id = utils.shortuuid("scripted_rt_item_")
        event = llm.InputTranscriptionCompleted(
            item_id=item_id, transcript=transcript, is_final=True
        )
        if self._model.report_turn_start and started_at is not None:
            event.turn_started_at = started_at
        self.emit("input_audio_transcription_completed", event)
        self._chat_ctx.add_message(role="user", content=transcript, id=item_id)
        # the server answers a detected turn on its own
        self.emit("generation_created", self._generate(user_initiated=False))

    # -- responses ----------------------------------------------------------------------------

    def generate_reply(
        self, *, instructions: Any = None, tool_choice: Any = None, tools: Any = None
    ) -> asyncio.Future[llm.GenerationCreatedEvent]:
        fut: asyncio.Future[llm.GenerationCreatedEvent] = asyncio.get_running_loop().create_future()
        fut.set_result(self._generate(user_initiated=True))
        return fut

    def _generate(self, *, user_initiated: bool) -> llm.GenerationCreatedEvent:
        self.interrupt()  # one response at a time, as the providers do
        reply = self._model.next_reply()
        self.replies_used.append(reply)
        response_id = utils.shortuuid("scripted_resp_")
        gen = _Generation(reply, utils.aio.Chan(), utils.aio.Chan(), utils.aio.Chan())
        message_ch = utils.aio.Chan[llm.MessageGeneration]()
        if reply.text:
            modalities: asyncio.Future[list[Literal["text", "audio"]]] = (
                asyncio.get_running_loop().create_future()
            )
            audio = self._model.modality == "audio"
            modalities.set_result(["audio", "text"] if audio else ["text"])
            message_ch.send_nowait(
                llm.MessageGeneration(
                    message_id=utils.shortuuid("scripted_rt_msg_"),
                    text_stream=gen.text_ch,
                    audio_stream=gen.audio_ch,
                    modalities=modalities,
                )
            )
        message_ch.close()
        gen.task = self._spawn(self._stream(gen, response_id), "ScriptedRealtime.stream")
        self._current = gen
        kwargs: dict[str, Any] = {
            "message_stream": message_ch,
            "function_stream": gen.function_ch,
            "user_initiated": user_initiated,
        }
        if "response_id" in inspect.signature(llm.GenerationCreatedEvent).parameters:
            kwargs["response_id"] = response_id
        return llm.GenerationCreatedEvent(**kwargs)

    async def _stream(self, gen: _Generation, response_id: str) -> None:
        started = time.time()
        try:
            if self._model.modality == "audio":
                await self._stream_audio(gen)
            else:
                for chunk in _text_chunks(gen.reply.text):
                    gen.text_ch.send_nowait(chunk)
            for step in gen.reply.tool_calls:
                gen.function_ch.send_nowait(
                    llm.FunctionCall(
                        call_id=step.call_id, name=step.name, arguments=json.dumps(step.arguments)
                    )
                )
        finally:
            gen.close()
            if self._current is gen:
                self._current = None
        self._emit_metrics(response_id, started)

    async def _stream_audio(self, gen: _Generation) -> None:
        rate = self._model.sample_rate
        total = round(self._model.speech_seconds(gen.reply.text) * rate)
        per_frame = round(rate * _FRAME_SECONDS)
        chunks = collections.deque(_text_chunks(gen.reply.text))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        pushed = 0
        while pushed < total:
            count = min(per_frame, total - pushed)
            pcm = tone(pushed, count, sample_rate=rate, hz=AGENT_TONE_HZ, amplitude=AMPLITUDE)
            gen.audio_ch.send_nowait(
                rtc.AudioFrame(
                    data=pcm.tobytes(), sample_rate=rate, num_channels=1, samples_per_channel=count
                )
            )
            # the transcript streams along with the audio, a chunk per third of it
            while chunks and pushed >= total * (1 - len(chunks) / 3):
                gen.text_ch.send_nowait(chunks.popleft())
            pushed += count
            delay = t0 + pushed / rate / self._model.realtime_factor - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        while chunks:
            gen.text_ch.send_nowait(chunks.popleft())

    def _emit_metrics(self, response_id: str, started: float) -> None:
        from livekit.agents.metrics import RealtimeModelMetrics

        with contextlib.suppress(Exception):  # the metric's fields vary over 1.x releases
            self.emit(
                "metrics_collected",
                RealtimeModelMetrics(
                    label=self._model.label,
                    request_id=response_id,
                    timestamp=started,
                    duration=time.time() - started,
                    ttft=0.0,
                    cancelled=False,
                    input_tokens=40,
                    output_tokens=10,
                    total_tokens=50,
                    tokens_per_second=0.0,
                    input_token_details=RealtimeModelMetrics.InputTokenDetails(),
                    output_token_details=RealtimeModelMetrics.OutputTokenDetails(),
                ),
            )

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _text_chunks(text: str, parts: int = 3) -> list[str]:
    words = text.split(" ")
    size = max(1, math.ceil(len(words) / parts))
    out = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [chunk + " " for chunk in out[:-1]] + out[-1:] if text else []
