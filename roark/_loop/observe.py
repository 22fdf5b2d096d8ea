"""``@observe`` and ``observe_session``: find the job's session and make it a call."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import logging
import types
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from livekit.agents import AgentSession

from .._client import get_client
from .._failures import guard
from .call import Call, CallOptions

logger = logging.getLogger("roark.observe")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_current_job: contextvars.ContextVar[_ObservedJob | None] = contextvars.ContextVar(
    "roark_observed_job", default=None
)
_jobs_by_ctx: weakref.WeakKeyDictionary[Any, _ObservedJob] = weakref.WeakKeyDictionary()
_sessions: weakref.WeakKeyDictionary[Any, _ObservedJob] = weakref.WeakKeyDictionary()
# the undecorated entrypoints' code: LiveKit's rtc_session() registers the function it is
# given, so with @observe above it the server runs the bare function, found by its code
_observed_code: dict[types.CodeType, CallOptions] = {}


class _ObservedJob:
    """One observed job: its options and, once a session starts, its call."""

    def __init__(self, ctx: Any, options: CallOptions) -> None:
        self.ctx = ctx
        self.options = options
        self.call: Call | None = None
        self._shutdown_registered = False

    def prepare(self) -> Call | None:
        """Create the call before its session starts (``observe_session``)."""
        client = get_client()
        if self.call is None and client is not None:
            channel = client.open_call()
            if channel is not None:
                self.call = Call(channel, self.options, self.ctx, client.settings.shutdown_timeout)
        return self.call

    def start_call(self, session: Any) -> Call | None:
        """Make ``session`` the call, if this job has none yet. Never raises."""
        if self.call is not None and self.call.begun:
            return None
        with guard("observing a session (the call goes on unobserved)"):
            call = self.prepare()
            if call is None:
                return None
            call.begin(session)
            self._register_shutdown()
            logger.info("observing call of agent %s", self.options.agent_id)
            return call
        return None

    def _register_shutdown(self) -> None:
        if self._shutdown_registered or self.ctx is None:
            return
        add = getattr(self.ctx, "add_shutdown_callback", None)
        if add is None:
            return
        self._shutdown_registered = True

        async def roark_deliver_call(reason: str) -> None:
            # LiveKit kills the job process 10 s after shutdown starts: deliver within budget
            call = self.call
            if call is None:
                return
            with guard("delivering the call at job shutdown"):
                call.job_shutdown()
                await call.wait_delivered()

        add(roark_deliver_call)
        if self.call is not None:
            self.call.expects_job_shutdown = True


def _install_start_hook() -> None:
    """Wrap ``AgentSession.start`` once, so the job's first session is found without help."""
    if getattr(AgentSession.start, "_roark_hook", False):
        return
    original = AgentSession.start

    @functools.wraps(original)
    async def start(self: Any, *args: Any, **kwargs: Any) -> Any:
        with guard("finding the job of a starting session"):
            job = _sessions.pop(self, None) or _current_job.get() or _job_of_running_entrypoint()
            if job is not None:
                job.start_call(self)
        return await original(self, *args, **kwargs)

    start._roark_hook = True  # type: ignore[attr-defined]
    AgentSession.start = start  # type: ignore[method-assign]


def _job_of_running_entrypoint() -> _ObservedJob | None:
    """The job whose observed entrypoint (run undecorated) is awaiting this start()."""
    if not _observed_code:
        return None
    task = asyncio.current_task()
    coro: Any = task.get_coro() if task is not None else None
    for _ in range(64):  # the await chain from the task's root down to this start()
        if coro is None:
            return None
        options = _observed_code.get(getattr(coro, "cr_code", None))  # type: ignore[arg-type]
        if options is not None:
            break
        coro = getattr(coro, "cr_await", None)
    else:
        return None
    if options is None:
        return None
    from livekit.agents import get_job_context

    ctx = get_job_context(required=False)
    job = _jobs_by_ctx.get(ctx) if ctx is not None else None
    if job is None:
        job = _ObservedJob(ctx, options)
        if ctx is not None:
            _jobs_by_ctx[ctx] = job
    return job


def _options(
    agent_id: Any,
    agent_name: Any,
    agent_prompt: Any,
    livekit_call_id: Any,
    capture_audio: Any,
    capture_logs: Any,
    is_test: Any,
    metadata: dict[str, Any],
) -> CallOptions:
    if not isinstance(agent_id, str) or not agent_id.strip():
        raise TypeError("roark: agent_id must be a non-empty string")
    for name, value in (
        ("agent_name", agent_name),
        ("agent_prompt", agent_prompt),
        ("livekit_call_id", livekit_call_id),
    ):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"roark: {name} must be a string, got {type(value).__name__}")
    for name, value in (
        ("capture_audio", capture_audio),
        ("capture_logs", capture_logs),
        ("is_test", is_test),
    ):
        if not isinstance(value, bool):
            raise TypeError(f"roark: {name} must be a bool, got {type(value).__name__}")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"roark: metadata must be JSON-serializable ({exc})") from None
    return CallOptions(
        agent_id=agent_id.strip(),
        agent_name=agent_name or None,
        agent_prompt=agent_prompt or None,
        livekit_call_id=livekit_call_id or None,
        capture_audio=capture_audio,
        capture_logs=capture_logs,
        is_test=is_test,
        metadata=metadata,
    )


def observe(
    agent_id: str,
    *,
    agent_name: str | None = None,
    agent_prompt: str | None = None,
    livekit_call_id: str | None = None,
    capture_audio: bool = True,
    capture_logs: bool = False,
    is_test: bool = False,
    **metadata: Any,
) -> Callable[[F], F]:
    """Observe every call of a LiveKit Agents entrypoint.

    The first ``AgentSession`` started inside the decorated entrypoint is the call: its
    transcript, tool calls, metrics and stereo recording reach Roark. Extra keyword arguments
    are sent as the call's metadata. It stacks with ``@server.rtc_session()`` in either
    order (below it is best: then sessions started in tasks the entrypoint spawns count too).

    Example::

        @server.rtc_session()
        @roark.observe(agent_id="support-bot-v3", agent_name="Support Bot v3", tier="gold")
        async def entrypoint(ctx: JobContext) -> None:
            session = AgentSession(stt=..., llm=..., tts=..., vad=...)
            await session.start(room=ctx.room, agent=Assistant())
    """
    options = _options(
        agent_id,
        agent_name,
        agent_prompt,
        livekit_call_id,
        capture_audio,
        capture_logs,
        is_test,
        metadata,
    )

    def decorate(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError("roark.observe decorates an async entrypoint (async def ...)")
        code = getattr(fn, "__code__", None)
        if isinstance(code, types.CodeType):
            _observed_code[code] = options
        client = get_client()
        if client is not None and client.active:
            _install_start_hook()

        @functools.wraps(fn)
        async def observed(ctx: Any, *args: Any, **kwargs: Any) -> Any:
            client = get_client()
            if client is None or not client.active:
                return await fn(ctx, *args, **kwargs)
            token = None
            with guard("preparing an observed job"):
                _install_start_hook()
                job = _ObservedJob(ctx, options)
                _jobs_by_ctx[ctx] = job
                token = _current_job.set(job)
            try:
                return await fn(ctx, *args, **kwargs)
            finally:
                if token is not None:
                    _current_job.reset(token)

        return observed  # type: ignore[return-value]

    return decorate


def observe_session(
    ctx: Any,
    session: AgentSession,
    *,
    agent_id: str,
    agent_name: str | None = None,
    agent_prompt: str | None = None,
    livekit_call_id: str | None = None,
    capture_audio: bool = True,
    capture_logs: bool = False,
    is_test: bool = False,
    **metadata: Any,
) -> Call | None:
    """Observe a session wired by hand; returns its call, or None when observation is off.

    Call it before or after ``session.start()``; before is better, so that the agent's
    first words are on the recording. Must be called on the job's event loop.

    Example::

        session = AgentSession(...)
        call = roark.observe_session(ctx, session, agent_id="support-bot-v3")
        await session.start(agent=Assistant(), room=ctx.room)
    """
    options = _options(
        agent_id,
        agent_name,
        agent_prompt,
        livekit_call_id,
        capture_audio,
        capture_logs,
        is_test,
        metadata,
    )
    client = get_client()
    if client is None or not client.active:
        return None
    with guard("observing a session (the call goes on unobserved)"):
        _install_start_hook()
        job = _ObservedJob(ctx, options)
        if ctx is not None:
            _jobs_by_ctx[ctx] = job
        if _is_running(session):
            return job.start_call(session)
        _sessions[session] = job
        # the call exists from now on, so current_call() works before start
        return job.prepare()
    return None


def _is_running(session: Any) -> bool:
    try:
        session.current_agent  # noqa: B018 - raises until start() has set an agent
    except Exception:
        return False
    return True


def current_call() -> Call | None:
    """The call observed in this job, or None (not observed, or no session started yet)."""
    job = _current_job.get()
    if job is None:
        try:
            from livekit.agents import get_job_context

            ctx = get_job_context(required=False)
        except Exception:
            ctx = None
        job = _jobs_by_ctx.get(ctx) if ctx is not None else None
    return job.call if job is not None else None
