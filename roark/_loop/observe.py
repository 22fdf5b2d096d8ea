"""``@observe`` and ``observe_session``: find the job's session and make it a call.

``AgentSession.start`` is wrapped once, when a client starts (``install_session_hook``).
A starting session is matched to its observed job in one of three ways, tried in order:

1. ``observe_session(ctx, session)`` registered this very session (``_sessions``).
2. It starts inside an ``@observe``-decorated entrypoint, or in a task the entrypoint
   spawned: the decorator set the ``_current_job`` contextvar, which tasks inherit.
3. ``@observe`` sits above ``@server.rtc_session()``, which registered the bare function,
   so the decorator's wrapper never runs: the starting task's chain of awaiting coroutines
   (``cr_await``) is walked for the code of an observed entrypoint (``_observed_code``).

The first session matched in a job is its call; a second one started in it is left alone
(one INFO line says so), unless ``observe_session`` makes it a call of its own (its id the
first's with ``-2``). ``current_call()`` finds the job by the contextvar, or by LiveKit's job
context (``_jobs_by_ctx``), and returns its first call.
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

from .._client import get_client, limit_exit
from .._failures import guard
from .call import Call, CallOptions

logger = logging.getLogger("roark.observe")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_current_job: contextvars.ContextVar[_ObservedJob | None] = contextvars.ContextVar(
    "roark_observed_job", default=None
)
_jobs_by_ctx: weakref.WeakKeyDictionary[Any, _ObservedJob] = weakref.WeakKeyDictionary()
# sessions made calls by observe_session before they started
_sessions: weakref.WeakKeyDictionary[Any, Call] = weakref.WeakKeyDictionary()
# the undecorated entrypoints' code: LiveKit's rtc_session() registers the function it is
# given, so with @observe above it the server runs the bare function, found by its code
_observed_code: dict[types.CodeType, CallOptions] = {}
_hook_lock = threading.Lock()


class _ObservedJob:
    """One observed job: its options and its calls (the first is the job's call)."""

    def __init__(self, ctx: Any, options: CallOptions) -> None:
        self.ctx = ctx
        self.options = options
        self.calls: list[Call] = []
        self._shutdown_registered = False

    @classmethod
    def register(cls, ctx: Any, options: CallOptions) -> _ObservedJob:
        """A new observed job, found by its job context from now on."""
        job = cls(ctx, options)
        if ctx is not None:
            _jobs_by_ctx[ctx] = job
        return job

    @property
    def call(self) -> Call | None:
        """The job's call: its first (``current_call()`` returns it)."""
        return self.calls[0] if self.calls else None

    def prepare(self, options: CallOptions | None = None) -> Call | None:
        """A new call of this job, made before its session starts."""
        client = get_client()
        channel = client.open_call() if client is not None else None
        if client is None or channel is None:
            return None
        suffix = f"-{len(self.calls) + 1}" if self.calls else ""
        call = Call(
            channel, options or self.options, self.ctx, client.settings.shutdown_timeout, suffix
        )
        self.calls.append(call)
        self._register_shutdown()
        call.expects_job_shutdown = self._shutdown_registered
        return call

    def start_call(self, session: Any) -> Call | None:
        """Make ``session`` the job's call, if it has none yet. Never raises."""
        if self.calls:
            if all(call.session is not session for call in self.calls):
                logger.info(
                    "a second AgentSession started in this job is not observed: the first "
                    "one is the call (roark.observe_session makes it a call of its own)"
                )
            return None
        with guard("observing a session (the call goes on unobserved)"):
            call = self.prepare()
            if call is not None:
                begin(call, session)
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
            # LiveKit kills the job process 10 s after it reported shutting down, which it
            # does right after closing the session: each call's budget counts from that
            # close, and bounds the at-exit flush too (under spawn, the job process runs
            # atexit); a call prepared for a session that never started is closed here too
            calls = list(self.calls)
            try:
                with guard("delivering the call at job shutdown"):
                    for call in calls:
                        call.job_shutdown()
                        if call.deadline is not None:
                            limit_exit(call.deadline)
                    await asyncio.gather(*(call.wait_delivered() for call in calls))
            finally:
                self.forget()

        add(roark_deliver_call)

    def forget(self) -> None:
        """The job is over: its context is no longer a key to it.

        The job holds its context, so the weak-keyed entry would never go by itself and the
        job, its calls and their sessions would live as long as the process.
        """
        if self.ctx is not None and _jobs_by_ctx.get(self.ctx) is self:
            del _jobs_by_ctx[self.ctx]


def begin(call: Call, session: Any) -> None:
    """``call`` observes ``session`` from now on (before its ``start()`` runs, or right away)."""
    with guard("observing a session (the call goes on unobserved)"):
        call.begin(session)
        logger.info("observing call of agent %s", call.options.agent_id)


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
                prepared = _sessions.pop(self, None)
                if prepared is not None:
                    begin(prepared, self)
                else:
                    job = _current_job.get() or _job_awaiting_start()
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
        # a job observed already (by @observe, or an earlier session) gets one call more
        job = _job_of(ctx) or _ObservedJob.register(ctx, options)
        for call in job.calls:
            if call.session is session or _sessions.get(session) is call:
                return call
        # the call exists from now on, so current_call() works before start
        call = job.prepare(options)
        if call is not None:
            if _is_running(session):
                begin(call, session)
            else:
                _sessions[session] = call
        return call
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
