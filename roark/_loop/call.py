"""The handle of one observed call (asyncio side)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
import uuid
from dataclasses import dataclass, field, fields
from typing import Any

from .._failures import guard
from .._handoff.channel import CallChannel
from .._handoff.records import Begin, CallDetails, CallId, End
from .._handoff.text import encodable, encodable_value
from .hooks import SessionHooks
from .taps import install_taps, remove_taps

logger = logging.getLogger("roark.call")

CALL_ID_WAIT = 3.0
# LiveKit's job runner closes the session (as "user initiated") before it runs the job's
# shutdown callbacks; a close of that kind waits this long for them to say it was the job
JOB_SHUTDOWN_GRACE = 1.5
DEFAULT_RATE = 24000


@dataclass(frozen=True)
class CallOptions:
    """Per-call options: the one declaration of what ``observe`` and ``observe_session`` take.

    Checked when made (a ``TypeError`` naming the option, at import time for a decorator);
    the agent id is kept without surrounding blanks, empty texts as None, and every text
    made encodable (``roark._handoff.text``).
    """

    agent_id: str
    agent_name: str | None = None
    agent_prompt: str | None = None
    livekit_call_id: str | None = None
    capture_audio: bool = True
    capture_logs: bool = False  # accepted; reserved
    is_test: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.agent_id, str) or not self.agent_id.strip():
            raise TypeError("roark: agent_id must be a non-empty string")
        for option in fields(self):
            value = getattr(self, option.name)
            if option.type == "str | None" and value is not None and not isinstance(value, str):
                raise TypeError(f"roark: {option.name} must be a string, got {_kind(value)}")
            if option.type == "bool" and not isinstance(value, bool):
                raise TypeError(f"roark: {option.name} must be a bool, got {_kind(value)}")
            if option.type == "str | None":
                object.__setattr__(self, option.name, encodable(value) if value else None)
        try:
            json.dumps(self.metadata, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"roark: metadata must be JSON-serializable ({exc})") from None
        object.__setattr__(self, "metadata", encodable_value(self.metadata))
        object.__setattr__(self, "agent_id", encodable(self.agent_id.strip()))

    @classmethod
    def among(cls, arguments: dict[str, Any]) -> CallOptions:
        """The options among a public function's ``arguments`` (its ``locals()``), by name.

        ``observe`` and ``observe_session`` spell their parameters out for users' IDEs; this
        picks the options from them without a third list of names.
        """
        return cls(**{option.name: arguments[option.name] for option in fields(cls)})


def _kind(value: Any) -> str:
    return type(value).__name__


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

    def __init__(
        self,
        channel: CallChannel,
        options: CallOptions,
        ctx: Any,
        shutdown_timeout: float,
        id_suffix: str = "",
    ) -> None:
        self._channel = channel
        self.options = options
        self._ctx = ctx
        # a job's later calls (observe_session) get the job's default call id with "-2", "-3"
        self._id_suffix = id_suffix
        self._budget = shutdown_timeout
        self._hooks = SessionHooks(channel, self._session_closed)
        self._grace: asyncio.TimerHandle | None = None
        #: set when the job's shutdown callback is registered (it will call job_shutdown())
        self.expects_job_shutdown = False
        self._session: Any = None
        self._ended_at: float | None = None
        #: when the session closed (monotonic): at a job's shutdown, LiveKit closes it just
        #: before its kill timer starts
        self._closed_at: float | None = None
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
    def session(self) -> Any:
        """The ``AgentSession`` observed (None until it starts)."""
        return self._session

    @property
    def ended(self) -> bool:
        return self._ended_at is not None

    # -- start -----------------------------------------------------------------------------

    def begin(self, session: Any) -> None:
        """Instrument ``session`` (before its ``start()`` runs, or right away if it runs)."""
        self._session = session
        self._hooks.attach(session)
        sample_rate = None
        if self.options.capture_audio:
            sample_rate = self._output_rate(session)
            install_taps(session, self._channel)
        call_id = _text(self.options.livekit_call_id) or self._job_id(
            _text(_get(self._ctx, "job", "room", "sid"))
        )
        self._call_id = call_id
        self._channel.post(
            Begin(
                at=self._channel.clock.now(),
                details=self._details(),
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

    def _details(self) -> CallDetails:
        opts, ctx = self.options, self._ctx
        participant = _text(_get(ctx, "job", "participant", "identity"))
        if participant is None:
            remote = _get(ctx, "room", "remote_participants")
            try:
                identities = [p.identity for p in remote.values()] if remote else []
            except Exception:
                identities = []
            participant = _text(identities[0]) if identities else None
        return CallDetails(
            agent_id=opts.agent_id,
            is_test=opts.is_test,
            agent_name=_text(opts.agent_name),
            agent_prompt=_text(opts.agent_prompt),
            room_sid=_text(_get(ctx, "job", "room", "sid")),
            room_name=_text(_get(ctx, "job", "room", "name") or _get(ctx, "room", "name")),
            participant_identity=participant,
            job_id=_text(_get(ctx, "job", "id")),
            metadata=dict(opts.metadata) if opts.metadata else None,
        )

    def _job_id(self, default: str | None) -> str | None:
        """The job's default call id as this call's (with its suffix)."""
        return default + self._id_suffix if default else None

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
        call_id = self._job_id(call_id or _text(_get(self._ctx, "job", "id")) or str(uuid.uuid4()))
        self._call_id = call_id
        self._channel.post(CallId(call_id))

    # -- end -------------------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """When waiting for delivery stops (``time.monotonic()``): the shutdown budget after
        the session closed or the call ended, whichever came first; None before either."""
        began = [t for t in (self._closed_at, self._ended_at) if t is not None]
        return min(began) + self._budget if began else None

    def _session_closed(self, reason: str) -> None:
        if self._closed_at is None:
            self._closed_at = time.monotonic()
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
        # a call prepared by observe_session whose session never started posted nothing:
        # closing its channel is all there is to do
        if self._session is not None:
            session = self._session
            with guard("reading the tool items of the session's history"):
                self._hooks.reconcile(whole=True)
            with guard("unhooking an ended call's session"):
                self._hooks.detach(session)
                remove_taps(session)
                self._hooks.flush_usage(session)
                if self._id_task is not None and not self._id_task.done():
                    self._id_task.cancel()
                    call_id = _text(_get(self._ctx, "job", "id")) or str(uuid.uuid4())
                    self._channel.post(CallId(self._job_id(call_id) or call_id))
            self._channel.post(End(at=self._channel.clock.now(), reason=reason or "agent-ended"))
        self._channel.close()

    async def aflush(self, reason: str = "agent-ended", timeout: float | None = None) -> bool:
        """End the call now (once; later calls only wait) and wait for its delivery.

        Returns True once Roark has the whole call, False if it did not get there within
        ``timeout`` (default: the shutdown budget); it then stays spooled and is sent later.
        Never raises.
        """
        with guard("Call.aflush"):
            self._end(str(reason))
            return await self.wait_delivered(timeout)
        return False

    async def wait_delivered(self, timeout: float | None = None) -> bool:
        delivered = self._channel.delivered
        if delivered.done():
            return not delivered.cancelled() and bool(delivered.result())
        budget = self._budget if timeout is None else timeout
        deadline = self.deadline
        if timeout is None and deadline is not None:
            # counted from when LiveKit's kill timer may have started, not from now
            budget = max(0.0, deadline - time.monotonic())
        try:
            # shielded: a timeout here must not cancel the future other waiters share
            return bool(
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(delivered)), budget)
            )
        except (asyncio.TimeoutError, concurrent.futures.CancelledError):
            logger.warning(
                "call %s was not delivered within %.1f s; it stays spooled and is sent later",
                self.call_id,
                budget,
            )
            return False
