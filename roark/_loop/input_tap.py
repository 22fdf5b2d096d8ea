"""The caller's side (asyncio side): frames of the session's audio input, stamped and copied.

The session's input object stays the user's: ``async for`` looks ``__anext__`` up on the
type, so the object is re-classed to a subclass of its own class (made once per class, with
the same name) whose ``__anext__`` copies each frame on its way; identity, ``isinstance``,
attributes and ``aclose()`` are the object's own, and the class is put back at the call's
end. Only where that cannot be done (a class that refuses subclasses) the object is
wrapped, in a wrapper that passes type checks, attribute reads and writes through to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from livekit import rtc
from livekit.agents.voice import io

from .._failures import failed
from .._handoff.audio_buffer import AudioBuffer
from .._handoff.channel import CallChannel
from .transparent import Transparent

logger = logging.getLogger("roark.taps")

_TAP = "_roark_tap"  # the attribute an observed input holds its tap in
# each class of input observed, and its observed subclass (made once, kept for the process)
_observed_classes: dict[type, type] = {}
_original_classes: dict[type, type] = {}


class CallerTap:
    """Observes the session's audio input: one object at a time, the one LiveKit reads."""

    def __init__(self, channel: CallChannel) -> None:
        self._channel = channel
        self.clock = channel.clock
        self.buffer: AudioBuffer | None = None
        self._observed: Any = None  # the object whose frames are copied (or its wrapper)

    def record(self, frame: rtc.AudioFrame) -> None:
        # frames carry no capture time: one arrives when it is complete, so it began earlier
        self.buffer.append(  # type: ignore[union-attr]
            self.clock.now() - frame.duration, frame.data, frame.sample_rate, frame.num_channels
        )

    def observe(self, stream: io.AudioInput | None) -> io.AudioInput | None:
        """What the session's input audio is to be set to for ``stream``: ``stream`` itself,
        observed (or its wrapper where it cannot be)."""
        if stream is None or stream is self._observed:
            if stream is None:
                self.release()
            return stream
        if type(stream) is _WrappedInput:  # a wrapper of an earlier observation: unwrap it
            stream = stream._roark_wrapped
        again = _in_chain(stream, self._observed)
        self.release()
        # LiveKit's RecorderIO wraps the input in start(): the same audio, no news for the log
        logger.log(
            logging.DEBUG if again else logging.INFO, "tapping user audio input (%s)", stream.label
        )
        if self.buffer is None:
            self.buffer = self._channel.new_audio_buffer()
        if _reclass(stream, self):
            self._observed = stream
            return stream
        self._observed = _WrappedInput(stream, self)
        return self._observed

    def release(self) -> None:
        """Give the observed object its own class back (a wrapper stays, passing through)."""
        observed, self._observed = self._observed, None
        original = _original_classes.get(type(observed))
        if original is not None:
            observed.__class__ = original
            observed.__dict__.pop(_TAP, None)


def _in_chain(stream: Any, target: Any) -> bool:
    while stream is not None and target is not None:
        if stream is target:
            return True
        stream = getattr(stream, "source", None)
    return False


def _reclass(stream: io.AudioInput, tap: CallerTap) -> bool:
    """Re-class ``stream`` to its observed class; False where its class refuses."""
    try:
        observed = _observed_class(type(stream))
        held = stream.__dict__
    except Exception:
        return False
    held[_TAP] = tap
    try:
        stream.__class__ = observed
    except Exception:
        held.pop(_TAP, None)
        return False
    return True


def _observed_class(cls: type) -> type:
    """``cls`` with an ``__anext__`` that copies each frame (made once per class)."""
    observed = _observed_classes.get(cls)
    if observed is None:
        observed = type(
            cls.__name__,
            (cls,),
            {
                "__anext__": _copying_anext(cls.__anext__),
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__doc__": cls.__doc__,
            },
        )
        _observed_classes[cls] = observed
        _original_classes[observed] = cls
    return observed


def _copying_anext(
    anext: Callable[[Any], Coroutine[Any, Any, rtc.AudioFrame]],
) -> Callable[[Any], Coroutine[Any, Any, rtc.AudioFrame]]:
    async def __anext__(self: Any) -> rtc.AudioFrame:
        frame = await anext(self)
        try:
            tap = self._roark_tap
        except AttributeError:  # the call ended while this frame was awaited
            return frame
        try:
            # frames carry no capture time: one arrives when it is complete, so it began
            # earlier (written out here, not in a method: this runs for every frame)
            tap.buffer.append(
                tap.clock.now() - frame.duration,
                frame.data,
                frame.sample_rate,
                frame.num_channels,
            )
        except Exception:
            failed("the user audio tap")
        return frame

    return __anext__


class _WrappedInput(Transparent, io.AudioInput):
    """The fallback: a wrapper that reads, for type checks and attributes, as the object."""

    def __init__(self, source: io.AudioInput, tap: CallerTap) -> None:
        super().__init__(label=source.label, source=source)
        self._roark_wrapped = source
        self._roark_tap = tap
        self._roark_ready()

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> rtc.AudioFrame:
        frame = await self._roark_wrapped.__anext__()
        tap = self._roark_tap
        if tap._observed is self:
            try:
                tap.record(frame)
            except Exception:
                failed("the user audio tap")
        return frame

    # LiveKit 1.2's AudioInput.on_attached/on_detached call themselves, not the source's
    def on_attached(self) -> None:
        self._roark_wrapped.on_attached()

    def on_detached(self) -> None:
        self._roark_wrapped.on_detached()
