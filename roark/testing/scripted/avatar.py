"""The scripted avatar worker: plays the agent's audio elsewhere and reports playback by RPC.

An avatar plugin sends the agent's speech to a remote avatar worker instead of the room:
``DataStreamAudioOutput`` streams each segment as a byte stream (topic ``lk.audio_stream``)
and learns about playback through the RPCs ``lk.playback_started`` /
``lk.playback_finished``; an interruption reaches the worker as ``lk.clear_buffer``.
``ScriptedAvatar`` is that worker, joined to an :class:`~roark.testing.scripted.OfflineRoom`:
it starts playing a segment ``latency`` seconds after its first audio arrives (the avatar's
rendering delay), plays in real time, and reports start and finish (with the position
reached) back to the agent. What it really played is the truth in
:attr:`ScriptedAvatar.segments` (:class:`~roark.testing.scripted.PlayedSegment`).
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from dataclasses import dataclass

from livekit import rtc
from livekit.agents import utils

from .audio_output import PlayedSegment
from .room import OfflineRoom

__all__ = ["ScriptedAvatar"]

_TICK = 0.01
_PLAYBACK_STARTED = "lk.playback_started"
_PLAYBACK_FINISHED = "lk.playback_finished"
_CLEAR_BUFFER = "lk.clear_buffer"


@dataclass(eq=False)
class _Segment:
    """One byte stream: the audio the worker received for one agent segment."""

    bytes_per_second: float
    received: int = 0
    closed: bool = False
    first_at: float | None = None

    @property
    def captured(self) -> float:
        return self.received / self.bytes_per_second

    def write(self, data: bytes) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.received += len(data)

    def close(self) -> None:
        self.closed = True


class ScriptedAvatar:
    """A remote avatar worker in an :class:`OfflineRoom`; see the module docstring.

    Example::

        room = OfflineRoom()
        avatar = ScriptedAvatar(room, latency=0.2)
        session.output.audio = DataStreamAudioOutput(
            room, destination_identity=avatar.identity, wait_playback_start=True
        )
        ...
        await avatar.aclose()
    """

    def __init__(
        self, room: OfflineRoom, *, identity: str = "avatar-worker", latency: float = 0.2
    ) -> None:
        self.identity = identity
        self.state = rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE
        self.kind = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        self.latency = latency
        self._room = room
        self._queue: collections.deque[_Segment] = collections.deque()
        self._wake = asyncio.Event()
        self._cleared = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.segments: list[PlayedSegment] = []
        """What the avatar played, segment by segment."""
        room.join(self)

    @property
    def idle(self) -> bool:
        return not self._queue

    # -- what the room delivers -----------------------------------------------------------

    def byte_stream_opened(self, topic: str, attributes: dict[str, str]) -> _Segment:
        rate = int(attributes.get("sample_rate", "24000"))
        channels = int(attributes.get("num_channels", "1"))
        segment = _Segment(bytes_per_second=rate * channels * 2)
        self._queue.append(segment)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._play(), name="ScriptedAvatar._play")
        return segment

    async def handle_rpc(self, method: str, payload: str, caller: str) -> str:
        if method == _CLEAR_BUFFER:
            self._cleared.set()
            self._wake.set()
            return "ok"
        raise RuntimeError(f"the scripted avatar has no RPC method {method!r}")

    # -- playout ---------------------------------------------------------------------------

    async def _play(self) -> None:
        while self._queue:
            segment = self._queue[0]
            while segment.first_at is None and not segment.closed:
                self._wake.clear()
                await self._wake.wait()
            if segment.first_at is not None:
                delay = segment.first_at + self.latency - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self._play_segment(segment)
            if self._queue and self._queue[0] is segment:
                self._queue.popleft()

    async def _play_segment(self, segment: _Segment) -> None:
        started_at = time.time() if segment.received else None
        if started_at is not None:
            await self._report(_PLAYBACK_STARTED, "")
        played, last = 0.0, time.monotonic()
        while not self._cleared.is_set():
            now = time.monotonic()
            played = min(segment.captured, played + (now - last))
            last = now
            if segment.closed and played >= segment.captured:
                break
            await asyncio.sleep(_TICK)
        interrupted = self._cleared.is_set()
        if interrupted:
            self._cleared.clear()
            # a clear drops what is queued behind the segment too
            self._queue.clear()
        self.segments.append(
            PlayedSegment(
                started_at=started_at,
                played_seconds=played,
                interrupted=interrupted,
                captured_seconds=segment.captured,
                finished_at=time.time(),
            )
        )
        payload = json.dumps({"playback_position": played, "interrupted": interrupted})
        await self._report(_PLAYBACK_FINISHED, payload)

    async def _report(self, method: str, payload: str) -> None:
        local = self._room.local_participant
        if method in local._rpc_handlers:
            await local.invoke(method, payload, self.identity)

    async def aclose(self) -> None:
        if self._task is not None:
            await utils.aio.cancel_and_wait(self._task)
            self._task = None
