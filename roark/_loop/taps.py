"""Taps on the session's own audio I/O (asyncio side): stamp, copy, hand over; nothing more.

They observe whatever the session's input and output audio are, so they work the same for
RoomIO (``dev``/``start``), the console and custom I/O, with or without LiveKit's own
``RecorderIO`` or ``TranscriptSynchronizer`` in the chain, and they leave the user's objects
what they are (``input_tap``, ``output_tap``).
"""

from __future__ import annotations

from typing import Any

from livekit.agents.voice import io

from .._failures import guard
from .._handoff.channel import CallChannel
from .input_tap import CallerTap
from .output_tap import AgentTap


class _TappingAgentInput(io.AgentInput):
    """``session.input`` whose audio, whatever it is set to, is observed."""

    _roark_tap: CallerTap

    @property  # type: ignore[override]
    def audio(self) -> io.AudioInput | None:
        return io.AgentInput.audio.fget(self)  # type: ignore[attr-defined]

    @audio.setter
    def audio(self, stream: io.AudioInput | None) -> None:
        with guard("tapping the user audio input (the call goes on without it)"):
            stream = self._roark_tap.observe(stream)
        io.AgentInput.audio.fset(self, stream)  # type: ignore[attr-defined]


class _TappingAgentOutput(io.AgentOutput):
    """``session.output`` whose audio, whatever it is set to, is observed."""

    _roark_tap: AgentTap

    @property  # type: ignore[override]
    def audio(self) -> io.AudioOutput | None:
        return io.AgentOutput.audio.fget(self)  # type: ignore[attr-defined]

    @audio.setter
    def audio(self, sink: io.AudioOutput | None) -> None:
        with guard("tapping the agent audio output (the call goes on without it)"):
            sink = self._roark_tap.observe(sink)
        io.AgentOutput.audio.fset(self, sink)  # type: ignore[attr-defined]


def install_taps(session: Any, channel: CallChannel) -> None:
    """Tap the session's audio now and on every later assignment of its input/output audio.

    LiveKit assigns ``session.input.audio``/``session.output.audio`` inside ``start()``
    (RoomIO, console, RecorderIO) or the developer does before it; the session's ``input``/
    ``output`` objects (LiveKit's ``AgentInput``/``AgentOutput``) are re-classed to
    subclasses whose ``audio`` setter observes what is set, so every path is covered
    without touching LiveKit's private state.
    """
    agent_input, agent_output = session.input, session.output
    if type(agent_input) is io.AgentInput:
        agent_input._roark_tap = CallerTap(channel)  # type: ignore[attr-defined]
        agent_input.__class__ = _TappingAgentInput
        if agent_input.audio is not None:
            agent_input.audio = agent_input.audio
    if type(agent_output) is io.AgentOutput:
        agent_output._roark_tap = AgentTap(channel)  # type: ignore[attr-defined]
        agent_output.__class__ = _TappingAgentOutput
        if agent_output.audio is not None:
            agent_output.audio = agent_output.audio


def remove_taps(session: Any) -> None:
    """Give the observed objects back as they were, and stop observing later assignments."""
    for obj, base in ((session.input, io.AgentInput), (session.output, io.AgentOutput)):
        if isinstance(obj, (_TappingAgentInput, _TappingAgentOutput)):
            with guard("restoring the session's audio objects"):
                obj._roark_tap.release()
            obj.__class__ = base
            obj.__dict__.pop("_roark_tap", None)
