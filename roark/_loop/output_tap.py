"""The agent's side (asyncio side): what the session captured for playback, and where it played.

The session's output object stays the user's. LiveKit writes each generation's audio to
whatever ``session.output.audio`` is then, so that object's ``capture_frame`` and ``flush``
are shadowed by instance attributes that copy the frame and mark the segment's end, and its
public playback events (``playback_started``, ``playback_progressed``, ``playback_finished``)
say where each segment played. When the session's output is set to another object (LiveKit's
RecorderIO wraps the user's in ``start()``), the observation moves to it; an object left
behind keeps being listened to until its segments are reported finished. Everything is
restored at the call's end. Only where shadowing cannot be done (a class that refuses it)
the object is wrapped, in a wrapper that passes type checks and attributes through to it.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.agents.voice import io

from .._failures import failed, guarded
from .._handoff.audio_buffer import AudioBuffer
from .._handoff.channel import CallChannel
from .._handoff.records import PlaybackFinished, PlaybackProgressed, PlaybackStarted
from .transparent import Transparent

logger = logging.getLogger("roark.taps")


class AgentTap:
    """Observes the session's audio output; segments are numbered across the objects seen."""

    def __init__(self, channel: CallChannel) -> None:
        self._channel = channel
        self.post = channel.post
        self.clock = channel.clock
        self.buffer: AudioBuffer | None = None
        self.segment = -1
        self.capturing = False
        self._current: _Watched | None = None
        self._left: list[_Watched] = []  # objects left behind with segments still playing

    # -- frames (once per frame: kept small) ---------------------------------------------

    def captured(self, watched: _Watched, frame: rtc.AudioFrame) -> None:
        if not self.capturing:
            self.capturing = True
            self.segment += 1
            watched.unfinished.append(self.segment)
        self.buffer.append(  # type: ignore[union-attr]
            self.clock.now(), frame.data, frame.sample_rate, frame.num_channels, self.segment
        )

    # -- the observed objects --------------------------------------------------------------

    def observe(self, sink: io.AudioOutput | None) -> io.AudioOutput | None:
        """What the session's output audio is to be set to for ``sink``: ``sink`` itself,
        observed (or its wrapper where it cannot be)."""
        current = self._current
        if current is not None and sink is current.top:
            return sink
        if type(sink) is _WrappedOutput:  # a wrapper of an earlier observation: unwrap it
            sink = sink._roark_wrapped
        again = current is not None and _in_chain(sink, current.top)
        self._leave()
        if sink is None:
            return None
        # LiveKit's RecorderIO wraps the output in start(): the same audio, no news for the log
        logger.log(
            logging.DEBUG if again else logging.INFO, "tapping agent audio output (%s)", sink.label
        )
        if self.buffer is None:
            self.buffer = self._channel.new_audio_buffer()
        watched = _Watched(self, sink)
        if not watched.shadow():
            watched = _Watched(self, _WrappedOutput(sink, self))
        watched.listen()
        self._current = watched
        return watched.top

    def _leave(self) -> None:
        watched, self._current = self._current, None
        # what the next object is given starts a segment of its own
        self.capturing = False
        if watched is not None:
            watched.restore()
            if watched.unfinished:
                self._left.append(watched)
            else:
                watched.unlisten()

    def forget(self, watched: _Watched) -> None:
        """``watched``, left behind, reported its last segment finished."""
        if watched in self._left:
            self._left.remove(watched)
            watched.unlisten()

    def release(self) -> None:
        """Restore every object observed and stop listening (the call's end)."""
        self._leave()
        for watched in self._left:
            watched.unlisten()
        self._left = []


class _Watched:
    """One output object the tap observes: its shadowed methods and its segments in flight."""

    def __init__(self, tap: AgentTap, top: io.AudioOutput) -> None:
        self.tap = tap
        self.top = top
        self.unfinished: deque[int] = deque()  # segments captured, not reported finished
        self._started: set[int] = set()
        self._saved: dict[str, Any] = {}
        self._handlers: dict[str, Callable[[Any], None]] = {
            "playback_started": guarded("the agent audio tap's playback events", self.started),
            "playback_progressed": guarded(
                "the agent audio tap's playback events", self.progressed
            ),
            "playback_finished": guarded("the agent audio tap's playback events", self.finished),
        }

    def shadow(self) -> bool:
        """Shadow ``capture_frame`` and ``flush`` on the object itself; False where it refuses."""
        top = self.top
        try:
            for name, fn in (("capture_frame", self._capture()), ("flush", self._flush())):
                # (what the instance held before, if anything; ours)
                self._saved[name] = (top.__dict__.get(name), fn)
                setattr(top, name, fn)
                if getattr(top, name) is not fn:  # a data descriptor of its class won
                    raise TypeError(f"{name} cannot be shadowed")
        except Exception:
            self.restore()
            return False
        return True

    def restore(self) -> None:
        saved, self._saved = self._saved, {}
        for name, (previous, mine) in saved.items():
            with contextlib.suppress(Exception):
                held = self.top.__dict__
                if held.get(name) is not mine:
                    continue  # someone shadowed it after roark: theirs stays
                if previous is None:
                    del held[name]
                else:
                    held[name] = previous

    def _capture(self) -> Callable[[rtc.AudioFrame], Any]:
        capture, tap, watched = self.top.capture_frame, self.tap, self

        async def capture_frame(frame: rtc.AudioFrame) -> None:
            try:
                tap.captured(watched, frame)
            except Exception:
                failed("the agent audio tap")
            await capture(frame)

        return capture_frame

    def _flush(self) -> Callable[[], None]:
        flush, tap = self.top.flush, self.tap

        def flush_segment() -> None:
            tap.capturing = False
            flush()

        return flush_segment

    # -- playback events -------------------------------------------------------------------

    def listen(self) -> None:
        for event, handler in self._handlers.items():
            self.top.on(event, handler)

    def unlisten(self) -> None:
        for event, handler in self._handlers.items():
            with contextlib.suppress(Exception):
                self.top.off(event, handler)

    def started(self, ev: io.PlaybackStartedEvent) -> None:
        if not self.unfinished or self.unfinished[0] in self._started:
            return
        segment = self.unfinished[0]
        self._started.add(segment)
        at = self.tap.clock.from_wall(ev.created_at)
        self.tap.post(PlaybackStarted(segment, at, provisional=_starts_at_capture(self.top)))

    def progressed(self, ev: Any) -> None:  # io.PlaybackProgressedEvent: livekit-agents 1.8+
        if self.unfinished:
            at = self.tap.clock.from_wall(ev.started_at)
            self.tap.post(PlaybackProgressed(self.unfinished[0], at, ev.offset, ev.duration))

    def finished(self, ev: io.PlaybackFinishedEvent) -> None:
        if not self.unfinished:
            return
        segment = self.unfinished.popleft()
        self._started.discard(segment)
        tap = self.tap
        if segment == tap.segment:
            tap.capturing = False
        played = max(0.0, float(ev.playback_position))
        tap.post(PlaybackFinished(segment=segment, at=tap.clock.now(), played=played))
        if not self.unfinished:
            tap.forget(self)


def _in_chain(sink: Any, target: Any) -> bool:
    while sink is not None:
        if sink is target:
            return True
        sink = getattr(sink, "next_in_chain", None)
    return False


def _starts_at_capture(sink: Any) -> bool:
    """Whether the chain ends in an avatar output that reports playback started when it takes
    the first frame, not when the avatar plays it (DataStreamAudioOutput without
    ``wait_playback_start``, livekit-agents 1.x)."""
    from livekit.agents.voice.avatar import DataStreamAudioOutput

    while sink is not None:
        if isinstance(sink, DataStreamAudioOutput):
            return not getattr(sink, "_wait_playback_start", False)
        sink = getattr(sink, "next_in_chain", None)
    return False


class _WrappedOutput(Transparent, io.AudioOutput):
    """The fallback: a wrapper that reads, for type checks and attributes, as the object."""

    def __init__(self, sink: io.AudioOutput, tap: AgentTap) -> None:
        super().__init__(
            label=sink.label,
            capabilities=io.AudioOutputCapabilities(pause=True),
            next_in_chain=sink,
        )
        self._roark_wrapped = sink
        self._roark_tap = tap
        self._roark_ready()

    @property
    def sample_rate(self) -> int | None:
        return self._roark_wrapped.sample_rate

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        tap = self._roark_tap
        current = tap._current
        if current is not None and current.top is self:
            try:
                tap.captured(current, frame)
            except Exception:
                failed("the agent audio tap")
        await self.next_in_chain.capture_frame(frame)  # type: ignore[union-attr]

    def flush(self) -> None:
        super().flush()
        if self._roark_tap._current is not None and self._roark_tap._current.top is self:
            self._roark_tap.capturing = False
        self.next_in_chain.flush()  # type: ignore[union-attr]

    def clear_buffer(self) -> None:
        self.next_in_chain.clear_buffer()  # type: ignore[union-attr]
