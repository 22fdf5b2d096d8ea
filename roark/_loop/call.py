"""The handle of one observed call (asyncio side)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._handoff.audio_buffer import AudioBuffer, Drops
from .._handoff.records import AUDIO_RECORDS, Begin, CallId, End, Record
from .hooks import SessionHooks
from .taps import install_taps, remove_taps

if TYPE_CHECKING:
    from .._threads.worker import Worker

logger = logging.getLogger("roark.call")

CALL_ID_WAIT = 3.0
# LiveKit's job runner closes the session (as "user initiated") before it runs the job's
# shutdown callbacks; a close of that kind waits this long for them to say it was the job
JOB_SHUTDOWN_GRACE = 1.5
DEFAULT_RATE = 24000


@dataclass(frozen=True)
class CallOptions:
    """Per-call options given to ``observe``/``observe_session`` (validated there)."""

    agent_id: str
    agent_name: str | None = None
    agent_prompt: str | None = None
    livekit_call_id: str | None = None
    capture_audio: bool = True
    capture_logs: bool = False
    is_test: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str | None:
    """Only real, non-empty strings make it into optional fields (never mocks or coroutines)."""
    return value if isinstance(value, str) and value else None


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        try:
            obj = getattr(obj, name)
        except Exception:
            return None
    return obj


class Call:
    """One observed call. Get it from :func:`roark.current_call` or :func:`roark.observe_session`.

    Example::

        call = roark.current_call()
        if call is not None:
            await call.aflush(reason="transferred-to-human")
    """

    def __init__(self, worker: Worker, options: CallOptions, ctx: Any, shutdown_timeout: float):
        self._worker = worker
        self.options = options
        self._ctx = ctx
        self._budget = shutdown_timeout
        self.key = worker.new_call_key()
        self._assembler, self._done = worker.open_call(self.key)
        self._drops = Drops()
        self._hooks = SessionHooks(self._post, self._session_closed, self._assembler.clock)
        self._grace: asyncio.TimerHandle | None = None
        #: set when the job's shutdown callback is registered (it will call job_shutdown())
        self.expects_job_shutdown = False
        self._session: Any = None
        self._ended_at: float | None = None
        self._call_id: str | None = None
        self._id_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Call(id={self.call_id!r}, agent_id={self.options.agent_id!r}, ended={self.ended})"

    @property
    def call_id(self) -> str | None:
        """The ``livekitCallId`` (None while it is still being resolved)."""
        return self._call_id

    @property
    def begun(self) -> bool:
        return self._session is not None

    @property
    def ended(self) -> bool:
        return self._ended_at is not None

    def _post(self, item: Record) -> None:
        if self._ended_at is not None and isinstance(item, AUDIO_RECORDS):
            return  # the taps outlive the call in the chain; their audio is no longer needed
        handoff = self._worker.handoff
        # audio the taps appended before this record must reach the processor ahead of it
        # (a playback event places the frames before it; the end closes the recording)
        for audio in self._assembler.take_audio():
            handoff.put(self._assembler, audio)
        handoff.put(self._assembler, item)

    def _new_audio_buffer(self) -> AudioBuffer:
        buffer = AudioBuffer(self._worker.handoff, self._drops, self._assembler.clock)
        # the processor takes from it between records too, so audio never waits for one
        self._assembler.audio_buffers.append(buffer)
        return buffer

    # -- start -----------------------------------------------------------------------------

    def begin(self, session: Any) -> None:
        """Instrument ``session`` (before its ``start()`` runs, or right away if it runs)."""
        self._session = session
        self._hooks.attach(session)
        sample_rate = None
        if self.options.capture_audio:
            sample_rate = self._output_rate(session)
            install_taps(session, self._post, self._new_audio_buffer)
        ctx = self._ctx
        call_id = _text(self.options.livekit_call_id) or _text(_get(ctx, "job", "room", "sid"))
        self._call_id = call_id
        self._post(
            Begin(
                at=self._assembler.clock.now(),
                started=self._started_fields(),
                sample_rate=sample_rate,
                call_id=call_id,
            )
        )
        if call_id is None:
            self._id_task = asyncio.get_running_loop().create_task(self._resolve_call_id())

    @staticmethod
    def _output_rate(session: Any) -> int:
        out = _get(session, "output", "audio")
        for rate in (_get(out, "sample_rate"), _get(session, "tts", "sample_rate")):
            if isinstance(rate, int) and not isinstance(rate, bool) and rate > 0:
                return rate
        return DEFAULT_RATE

    def _started_fields(self) -> dict[str, Any]:
        opts, ctx = self.options, self._ctx
        fields: dict[str, Any] = {"agentId": opts.agent_id, "isTest": opts.is_test}
        participant = _text(_get(ctx, "job", "participant", "identity"))
        if participant is None:
            remote = _get(ctx, "room", "remote_participants")
            try:
                identities = [p.identity for p in remote.values()] if remote else []
            except Exception:
                identities = []
            participant = _text(identities[0]) if identities else None
        optional = {
            "agentName": opts.agent_name,
            "agentPrompt": opts.agent_prompt,
            "roomSid": _get(ctx, "job", "room", "sid"),
            "roomName": _get(ctx, "job", "room", "name") or _get(ctx, "room", "name"),
            "participantIdentity": participant,
            "jobId": _get(ctx, "job", "id"),
        }
        fields.update({k: v for k, v in optional.items() if _text(v)})
        if opts.metadata:
            fields["metadata"] = dict(opts.metadata)
        return fields

    async def _resolve_call_id(self) -> None:
        call_id = None
        try:
            sid = _get(self._ctx, "room", "sid")
            if asyncio.iscoroutine(sid) or isinstance(sid, asyncio.Future):
                call_id = _text(await asyncio.wait_for(sid, CALL_ID_WAIT))
            else:
                call_id = _text(sid)
        except (Exception, asyncio.TimeoutError):
            call_id = None
        call_id = call_id or _text(_get(self._ctx, "job", "id")) or str(uuid.uuid4())
        self._call_id = call_id
        self._post(CallId(call_id))

    # -- end -------------------------------------------------------------------------------

    def _session_closed(self, reason: str) -> None:
        if reason == "agent-ended" and self.expects_job_shutdown and self._grace is None:
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(JOB_SHUTDOWN_GRACE, self._end, reason)
            return
        self._end(reason)

    def job_shutdown(self) -> None:
        """The job is shutting down: that is what ends the call, unless something did before."""
        self._end("job-shutdown")

    def _end(self, reason: str) -> None:
        if self._ended_at is not None:
            return
        self._ended_at = time.monotonic()
        if self._grace is not None:
            self._grace.cancel()
        if self._session is None:
            # prepared by observe_session but its session never started: nothing to send
            self._worker.discard_call(self.key)
            return
        try:
            session = self._session
            if session is not None:
                self._hooks.detach(session)
                remove_taps(session)
                self._hooks.flush_usage(session)
            if self._id_task is not None and not self._id_task.done():
                self._id_task.cancel()
                self._post(CallId(_text(_get(self._ctx, "job", "id")) or str(uuid.uuid4())))
        except Exception:
            logger.debug("ending call hooks failed", exc_info=True)
        self._post(End(at=self._assembler.clock.now(), reason=reason or "agent-ended"))
        for buffer in self._assembler.audio_buffers:
            buffer.closed = True  # the taps outlive the call in the chain

    async def aflush(self, reason: str = "agent-ended", timeout: float | None = None) -> bool:
        """End the call now (once; later calls only wait) and wait for its delivery.

        Returns True once Roark has the whole call, False if it did not get there within
        ``timeout`` (default: the shutdown budget); it then stays spooled and is sent later.
        Never raises.
        """
        try:
            self._end(str(reason))
            return await self.wait_delivered(timeout)
        except Exception:
            logger.debug("aflush failed", exc_info=True)
            return False

    async def wait_delivered(self, timeout: float | None = None) -> bool:
        if self._done.done():
            return not self._done.cancelled() and bool(self._done.result())
        budget = self._budget if timeout is None else timeout
        if timeout is None and self._ended_at is not None:
            budget = max(0.0, self._budget - (time.monotonic() - self._ended_at))
        try:
            # shielded: a timeout here must not cancel the future other waiters share
            return bool(
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._done)), budget)
            )
        except (asyncio.TimeoutError, concurrent.futures.CancelledError):
            logger.warning(
                "call %s was not delivered within %.1f s; it stays spooled and is sent later",
                self.call_id,
                budget,
            )
            return False
