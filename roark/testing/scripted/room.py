"""An offline room: the parts of ``rtc.Room`` that LiveKit's room-bound helpers use, in process.

LiveKit's avatar output (``DataStreamAudioOutput``) and ``BackgroundAudioPlayer`` need a
connected room: the avatar output streams the agent's audio to the avatar worker as a byte
stream and learns about playback through RPCs; the background player publishes its own
audio track. ``OfflineRoom`` is an ``rtc.Room`` that says it is connected and whose local
participant does those few things in process: byte streams and RPCs go to the
:class:`OfflinePeer` objects that joined the room (a scripted avatar worker), published
tracks are kept in ``track_publications``. Nothing touches the network.

Example::

    room = OfflineRoom()
    avatar = ScriptedAvatar(room)          # joins as a peer
    session.output.audio = DataStreamAudioOutput(room, destination_identity=avatar.identity)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Protocol

from livekit import rtc
from livekit.agents import utils

__all__ = ["OfflinePeer", "OfflineRoom"]


class OfflinePeer(Protocol):
    """A remote participant of an :class:`OfflineRoom` (a scripted worker)."""

    identity: str
    state: int
    kind: int

    def byte_stream_opened(self, topic: str, attributes: dict[str, str]) -> _PeerStream: ...

    async def handle_rpc(self, method: str, payload: str, caller: str) -> str: ...


class _PeerStream(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class _ByteStreamWriter:
    """What ``LocalParticipant.stream_bytes`` returns: writes go to the peers' streams."""

    def __init__(self, streams: list[_PeerStream]) -> None:
        self._streams = streams

    async def write(self, data: bytes) -> None:
        for stream in self._streams:
            stream.write(bytes(data))

    async def aclose(self, **_: Any) -> None:
        for stream in self._streams:
            stream.close()


class _Publication:
    def __init__(self, track: Any) -> None:
        self.sid = utils.shortuuid("TR_")
        self.name = getattr(track, "name", "")
        self.track = track


class _OfflineLocalParticipant:
    """The agent's side of the room: RPC methods, byte streams and published tracks."""

    def __init__(self, room: OfflineRoom, identity: str) -> None:
        self._room = room
        self.identity = identity
        self._rpc_handlers: dict[str, Any] = {}
        self.track_publications: dict[str, _Publication] = {}

    def register_rpc_method(self, method: str, handler: Any = None) -> Any:
        if handler is None:  # used as a decorator

            def register(fn: Any) -> Any:
                self._rpc_handlers[method] = fn
                return fn

            return register
        self._rpc_handlers[method] = handler
        return handler

    async def perform_rpc(
        self, *, destination_identity: str, method: str, payload: str, **_: Any
    ) -> str:
        peer = self._room.peer(destination_identity)
        return await peer.handle_rpc(method, payload, self.identity)

    async def stream_bytes(
        self,
        name: str,
        *,
        topic: str = "",
        attributes: dict[str, str] | None = None,
        destination_identities: list[str] | None = None,
        **_: Any,
    ) -> _ByteStreamWriter:
        identities = destination_identities or list(self._room.remote_participants)
        streams = [
            self._room.peer(i).byte_stream_opened(topic, dict(attributes or {})) for i in identities
        ]
        return _ByteStreamWriter(streams)

    async def publish_track(self, track: Any, options: Any = None) -> _Publication:
        publication = _Publication(track)
        self.track_publications[publication.sid] = publication
        return publication

    async def unpublish_track(self, track_sid: str) -> None:
        self.track_publications.pop(track_sid, None)

    async def invoke(self, method: str, payload: str, caller: str) -> str:
        """A peer calls one of the agent's RPC methods (what the SDK does on a remote call)."""
        handler = self._rpc_handlers.get(method)
        if handler is None:
            raise RuntimeError(f"no RPC method {method!r} registered by {self.identity!r}")
        data = rtc.RpcInvocationData(
            request_id=utils.shortuuid("rpc_"),
            caller_identity=caller,
            payload=payload,
            response_timeout=5.0,
        )
        result = handler(data)
        if inspect.isawaitable(result):
            result = await result
        return str(result)


class OfflineRoom(rtc.Room):
    """An ``rtc.Room`` that is connected without a server; see the module docstring.

    Example::

        room = OfflineRoom(name="support-room")
        await BackgroundAudioPlayer(thinking_sound=...).start(room=room, agent_session=session)
    """

    def __init__(self, *, name: str = "offline-room", identity: str = "agent") -> None:
        super().__init__()
        self._offline_name = name
        self._offline_local = _OfflineLocalParticipant(self, identity)
        self._peers: dict[str, OfflinePeer] = {}

    def isconnected(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return self._offline_name

    @property
    def local_participant(self) -> Any:
        return self._offline_local

    @property
    def remote_participants(self) -> Mapping[str, Any]:
        return dict(self._peers)

    def join(self, peer: OfflinePeer) -> None:
        """A peer joins and is active at once (``participant_active``)."""
        self._peers[peer.identity] = peer
        self.emit("participant_active", peer)

    def peer(self, identity: str) -> OfflinePeer:
        try:
            return self._peers[identity]
        except KeyError:
            raise RuntimeError(f"no participant {identity!r} in the offline room") from None
