"""Taps on the session's own audio I/O (asyncio side): stamp, copy, hand over; nothing more.

The taps are LiveKit's public ``AudioInput``/``AudioOutput`` classes wrapped around whatever
the session's input and output audio are, so they work the same for RoomIO (``dev``/``start``),
the console and custom I/O, with or without LiveKit's own ``RecorderIO`` in the chain.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from livekit import rtc
from livekit.agents.voice import io

from .._failures import failed
from .._handoff.channel import CallChannel
from .._handoff.records import PlaybackFinished, PlaybackProgressed, PlaybackStarted

logger = logging.getLogger("roark.taps")


def _forward_getattr(obj: Any, inner_attr: str, name: str) -> Any:
    # reached only for attributes the tap itself lacks: a custom I/O's own methods keep working
    if name.startswith("__"):
        raise AttributeError(name)
    inner = obj.__dict__.get(inner_attr)
    if inner is None:
        raise AttributeError(name)
    return getattr(inner, name)


class UserAudioTap(io.AudioInput):
    """Wraps the session's audio input; each frame is stamped with its arrival and copied."""

    def __init__(self, source: io.AudioInput, channel: CallChannel) -> None:
        super().__init__(label="RoarkTap", source=source)
        self._roark_source = source
        self._buffer = channel.new_audio_buffer()
        self._clock = channel.clock

    def __aiter__(self) -> AsyncIterator[rtc.AudioFrame]:
        return self

    async def __anext__(self) -> rtc.AudioFrame:
        frame = await self._roark_source.__anext__()
        try:
            # frames carry no capture time: one arrives when it is complete, so it began earlier
            self._buffer.append(
                self._clock.now() - frame.duration,
                frame.data,
                frame.sample_rate,
                frame.num_channels,
            )
        except Exception:
            failed("the user audio tap")
        return frame

    # LiveKit 1.2's AudioInput.on_attached/on_detached call themselves, not the source's
    def on_attached(self) -> None:
        self._roark_source.on_attached()

    def on_detached(self) -> None:
        self._roark_source.on_detached()

    def __getattr__(self, name: str) -> Any:
        return _forward_getattr(self, "_roark_source", name)


class AgentAudioTap(io.AudioOutput):
    """Wraps the session's audio output; sees what was captured and what was really played."""

    def __init__(self, next_in_chain: io.AudioOutput, channel: CallChannel) -> None:
        super().__init__(
            label="RoarkTap",
            capabilities=io.AudioOutputCapabilities(pause=True),
            next_in_chain=next_in_chain,
        )
        self._post = channel.post
        self._buffer = channel.new_audio_buffer()
        self._clock = channel.clock
        self._segment = -1
        self._capturing = False
        self._unfinished: deque[int] = deque()  # segments captured, not reported finished
        self._started: set[int] = set()

    def emit(self, event: Any, *args: Any) -> None:
        # every playback event passes here, also a cancellation LiveKit forwards without
        # calling on_playback_finished; listening to our own events would cost a signature
        # inspection per event in LiveKit's emitter
        super().emit(event, *args)
        try:
            if event == "playback_started":
                self._on_started(args[0])
            elif event == "playback_progressed":
                self._on_progressed(args[0])
            elif event == "playback_finished":
                self._on_finished(args[0])
        except Exception:
            failed("the agent audio tap's playback events")

    @property
    def sample_rate(self) -> int | None:
        return self.next_in_chain.sample_rate if self.next_in_chain else self._sample_rate

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        try:
            if not self._capturing:
                self._capturing = True
                self._segment += 1
                self._unfinished.append(self._segment)
            self._buffer.append(
                self._clock.now(),
                frame.data,
                frame.sample_rate,
                frame.num_channels,
                self._segment,
            )
        except Exception:
            failed("the agent audio tap")
        if self.next_in_chain:
            await self.next_in_chain.capture_frame(frame)

    def flush(self) -> None:
        super().flush()
        self._capturing = False
        if self.next_in_chain:
            self.next_in_chain.flush()

    def clear_buffer(self) -> None:
        if self.next_in_chain:
            self.next_in_chain.clear_buffer()

    def _current(self) -> int | None:
        return self._unfinished[0] if self._unfinished else None

    def _on_started(self, ev: io.PlaybackStartedEvent) -> None:
        segment = self._current()
        if segment is None or segment in self._started:
            return
        self._started.add(segment)
        at = self._clock.from_wall(ev.created_at)
        self._post(PlaybackStarted(segment=segment, at=at))

    def _on_progressed(self, ev: Any) -> None:
        segment = self._current()
        if segment is not None:
            self._post(
                PlaybackProgressed(
                    segment=segment,
                    at=self._clock.from_wall(ev.started_at),
                    offset=ev.offset,
                    duration=ev.duration,
                )
            )

    def _on_finished(self, ev: io.PlaybackFinishedEvent) -> None:
        if not self._unfinished:
            return
        segment = self._unfinished.popleft()
        self._started.discard(segment)
        if segment == self._segment:
            self._capturing = False
        played = max(0.0, float(ev.playback_position))
        self._post(PlaybackFinished(segment=segment, at=self._clock.now(), played=played))

    def __getattr__(self, name: str) -> Any:
        return _forward_getattr(self, "_next_in_chain", name)


def input_is_tapped(stream: io.AudioInput | None) -> bool:
    while stream is not None:
        if isinstance(stream, UserAudioTap):
            return True
        stream = stream.source
    return False


def output_is_tapped(sink: io.AudioOutput | None) -> bool:
    while sink is not None:
        if isinstance(sink, AgentAudioTap):
            return True
        sink = sink.next_in_chain
    return False


class _TappingAgentInput(io.AgentInput):
    """``session.input`` whose audio, whatever it is set to, passes through a tap."""

    _roark_channel: CallChannel

    @property  # type: ignore[override]
    def audio(self) -> io.AudioInput | None:
        return io.AgentInput.audio.fget(self)  # type: ignore[attr-defined]

    @audio.setter
    def audio(self, stream: io.AudioInput | None) -> None:
        if stream is not None and not input_is_tapped(stream):
            logger.info("tapping user audio input (%s)", stream.label)
            stream = UserAudioTap(stream, self._roark_channel)
        io.AgentInput.audio.fset(self, stream)  # type: ignore[attr-defined]


class _TappingAgentOutput(io.AgentOutput):
    """``session.output`` whose audio, whatever it is set to, passes through a tap."""

    _roark_channel: CallChannel

    @property  # type: ignore[override]
    def audio(self) -> io.AudioOutput | None:
        return io.AgentOutput.audio.fget(self)  # type: ignore[attr-defined]

    @audio.setter
    def audio(self, sink: io.AudioOutput | None) -> None:
        if sink is not None and not output_is_tapped(sink):
            logger.info("tapping agent audio output (%s)", sink.label)
            sink = AgentAudioTap(sink, self._roark_channel)
        io.AgentOutput.audio.fset(self, sink)  # type: ignore[attr-defined]


def install_taps(session: Any, channel: CallChannel) -> None:
    """Tap the session's audio now and on every later assignment of its input/output audio.

    LiveKit assigns ``session.input.audio``/``session.output.audio`` inside ``start()``
    (RoomIO, console) or the developer does before it; the session's ``input``/``output``
    objects are re-classed to subclasses whose ``audio`` setter adds the tap, so every path
    is covered without touching LiveKit's private state.
    """
    agent_input, agent_output = session.input, session.output
    if type(agent_input) is io.AgentInput:
        agent_input._roark_channel = channel
        agent_input.__class__ = _TappingAgentInput
        if agent_input.audio is not None:
            agent_input.audio = agent_input.audio
    if type(agent_output) is io.AgentOutput:
        agent_output._roark_channel = channel
        agent_output.__class__ = _TappingAgentOutput
        if agent_output.audio is not None:
            agent_output.audio = agent_output.audio


def remove_taps(session: Any) -> None:
    """Stop tapping future assignments (the current chain is left as it is)."""
    for obj, base in ((session.input, io.AgentInput), (session.output, io.AgentOutput)):
        if isinstance(obj, (_TappingAgentInput, _TappingAgentOutput)):
            obj.__class__ = base
