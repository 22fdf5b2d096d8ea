"""``@observe`` and ``observe_session``: find the job's session and make it a call.

``AgentSession.start`` is wrapped once, when a client starts (``install_session_hook``).
A starting session is matched to its observed job in one of three ways, tried in order:

1. ``observe_session(ctx, session)`` registered this very session (``_sessions``).
2. It starts inside an ``@observe``-decorated entrypoint, or in a task the entrypoint
   spawned: the decorator set the ``_current_job`` contextvar, which tasks inherit.
3. ``@observe`` sits above ``@server.rtc_session()``, which registered the bare function,
   so the decorator's wrapper never runs: the starting task's chain of awaiting coroutines
   (``cr_await``) is walked for the code of an observed entrypoint (``_observed_code``).

The first session matched in a job is its call. ``current_call()`` finds the job by the
contextvar, or by LiveKit's job context (``_jobs_by_ctx``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
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
_hook_lock = threading.Lock()


class _ObservedJob:
    """One observed job: its options and, once a session starts, its call."""

    def __init__(self, ctx: Any, options: CallOptions) -> None:
        self.ctx = ctx
        self.options = options
        self.call: Call | None = None
        self._shutdown_registered = False

    @classmethod
    def register(cls, ctx: Any, options: CallOptions) -> _ObservedJob:
        """A new observed job, found by its job context from now on."""
        job = cls(ctx, options)
        if ctx is not None:
            _jobs_by_ctx[ctx] = job
        return job

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
            try:
                call = self.call
                if call is None:
                    return
                with guard("delivering the call at job shutdown"):
                    call.job_shutdown()
                    await call.wait_delivered()
            finally:
                self.forget()

        add(roark_deliver_call)
        if self.call is not None:
            self.call.expects_job_shutdown = True

    def forget(self) -> None:
        """The job is over: its context is no longer a key to it.

        The job holds its context, so the weak-keyed entry would never go by itself and the
        job, its calls and their sessions would live as long as the process.
        """
        if self.ctx is not None and _jobs_by_ctx.get(self.ctx) is self:
            del _jobs_by_ctx[self.ctx]


def _job_of(ctx: Any) -> _ObservedJob | None:
    return _jobs_by_ctx.get(ctx) if ctx is not None else None


def install_session_hook() -> None:
    """Wrap ``AgentSession.start`` (once per process), so a job's session is found."""
    with _hook_lock:
        if getattr(AgentSession.start, "_roark_hook", False):
            return
        original = AgentSession.start

        @functools.wraps(original)
        async def start(self: Any, *args: Any, **kwargs: Any) -> Any:
            with guard("finding the job of a starting session"):
                job = _sessions.pop(self, None) or _current_job.get() or _job_awaiting_start()
                if job is not None:
                    job.start_call(self)
            return await original(self, *args, **kwargs)

        start._roark_hook = True  # type: ignore[attr-defined]
        AgentSession.start = start  # type: ignore[method-assign]


def _job_awaiting_start() -> _ObservedJob | None:
    """The job whose observed entrypoint (run undecorated) is awaiting this start()."""
    if not _observed_code:
        return None
    task = asyncio.current_task()
    coro: Any = task.get_coro() if task is not None else None
    options = None
    for _ in range(64):  # the await chain from the task's root down to this start()
        if coro is None:
            break
        options = _observed_code.get(getattr(coro, "cr_code", None))  # type: ignore[arg-type]
        if options is not None:
            break
        coro = getattr(coro, "cr_await", None)
    if options is None:
        return None
    from livekit.agents import get_job_context

    ctx = get_job_context(required=False)
    return _job_of(ctx) or _ObservedJob.register(ctx, options)


def _observing() -> bool:
    client = get_client()
    return client is not None and client.active


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
    options = CallOptions.among(locals())

    def decorate(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError("roark.observe decorates an async entrypoint (async def ...)")
        code = getattr(fn, "__code__", None)
        if isinstance(code, types.CodeType):
            _observed_code[code] = options
        return _observed(fn, options)

    return decorate


def _observed(fn: F, options: CallOptions) -> F:
    """``fn`` running with its job in ``_current_job`` (when calls are observed)."""

    @functools.wraps(fn)
    async def observed(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        token = None
        if _observing():
            with guard("preparing an observed job"):
                token = _current_job.set(_ObservedJob.register(ctx, options))
        try:
            return await fn(ctx, *args, **kwargs)
        finally:
            if token is not None:
                _current_job.reset(token)

    return observed  # type: ignore[return-value]


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
    options = CallOptions.among(locals())
    if not _observing():
        return None
    with guard("observing a session (the call goes on unobserved)"):
        job = _ObservedJob.register(ctx, options)
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
        job = _job_of(ctx)
    return job.call if job is not None else None
