"""The scripted job: runs an entrypoint the way LiveKit's job runner does, offline.

:func:`run_job` gives the entrypoint a ``JobContext`` from LiveKit's ``fake_job_context``
(an equivalent built by hand on 1.x releases that lack it), awaits it, waits for the
:class:`~roark.testing.scripted.ScriptedCall` to be done, then shuts the job down as the
runner does: the primary ``AgentSession`` closed, then the shutdown callbacks (where
``@roark.observe`` ends the call). A test awaits ``run_job(entrypoint, call=call)`` and
then asserts on what roark delivered; a callback that raised is re-raised here.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from livekit import rtc
from livekit.agents import JobContext, utils

from .call import ScriptedCall, ScriptedCallTimeout

__all__ = ["run_job"]


def _construct_with_known_kwargs(cls: Callable[..., Any], **kwargs: Any) -> Any:
    # LiveKit's job classes gained keyword arguments over 1.x releases; pass only the ones
    # this version's constructor accepts
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return cls(**kwargs)


@contextlib.contextmanager
def _legacy_fake_job_context(*, room: rtc.Room, job_id: str) -> Iterator[JobContext]:
    # mirrors livekit.agents.testing.fake_job_context for 1.x releases that lack it
    from livekit.agents import job as lk_job
    from livekit.protocol import agent as agent_proto
    from livekit.protocol import models

    info = _construct_with_known_kwargs(
        lk_job.RunningJobInfo,
        accept_arguments=lk_job.JobAcceptArguments(identity="fake-agent", name="", metadata=""),
        job=agent_proto.Job(
            id=job_id,
            room=models.Room(name=room.name or "fake-room", sid=utils.shortuuid("RM_")),
            type=agent_proto.JobType.JT_ROOM,
        ),
        url="",
        token="",
        worker_id="fake",
        fake_job=True,  # newer 1.x only
    )
    proc = _construct_with_known_kwargs(
        lk_job.JobProcess,
        executor_type=lk_job.JobExecutorType.THREAD,
        user_arguments=None,
        http_proxy=None,
    )
    ctx = _construct_with_known_kwargs(
        lk_job.JobContext,
        proc=proc,
        info=info,
        room=room,
        on_connect=lambda: None,
        on_shutdown=lambda _reason: None,
        inference_executor=None,
    )
    ctx._connected = True  # type: ignore[attr-defined]
    token = lk_job._JobContextVar.set(ctx)
    try:
        yield ctx
    finally:
        lk_job._JobContextVar.reset(token)


@contextlib.contextmanager
def _job_context(*, job_id: str, room_name: str) -> Iterator[JobContext]:
    room = rtc.Room()
    with contextlib.suppress(Exception):
        # an unconnected rtc.Room has no public way to carry a name
        room._info.name = room_name
    factory: Callable[..., contextlib.AbstractContextManager[JobContext]]
    try:
        from livekit.agents.testing import fake_job_context as factory
    except ImportError:
        factory = _legacy_fake_job_context
    with factory(room=room, job_id=job_id) as ctx:
        yield ctx


_SHUTDOWN_STEP_TIMEOUT = 10.0


async def _shutdown_job(ctx: JobContext, reason: str) -> None:
    """What LiveKit's job runner does on shutdown (``_shutdown_job``), minus the network."""
    errors: list[str] = []
    session = getattr(ctx, "_primary_agent_session", None)
    if session is not None:
        try:
            await asyncio.wait_for(session.aclose(), _SHUTDOWN_STEP_TIMEOUT)
        except asyncio.TimeoutError:
            errors.append(f"AgentSession.aclose() did not finish in {_SHUTDOWN_STEP_TIMEOUT}s")

    callbacks: list[Callable[[str], Awaitable[None]]] = list(
        getattr(ctx, "_shutdown_callbacks", [])
    )
    failures: list[BaseException] = []
    if callbacks:
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(cb(reason) for cb in callbacks), return_exceptions=True),
                _SHUTDOWN_STEP_TIMEOUT,
            )
            failures = [r for r in results if isinstance(r, BaseException)]
        except asyncio.TimeoutError:
            errors.append(f"shutdown callbacks did not finish in {_SHUTDOWN_STEP_TIMEOUT}s")

    pending = [t for t in getattr(ctx, "_pending_tasks", []) if not t.done()]
    if pending:
        await utils.aio.cancel_and_wait(*pending)

    if errors:
        raise ScriptedCallTimeout("job shutdown timed out: " + "; ".join(errors))
    if failures:
        # the real runner only logs these; a test wants to see them
        raise failures[0]


async def _run_until_done(
    entrypoint: Callable[[JobContext], Awaitable[None]],
    ctx: JobContext,
    *,
    call: ScriptedCall | None,
    deadline: float,
    timeout: float,
) -> None:
    """Await the entrypoint, then (with ``call``) the call's end, both by ``deadline``."""
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(entrypoint(ctx), max(0.0, deadline - loop.time()))
    except asyncio.TimeoutError as e:
        raise ScriptedCallTimeout(
            f"entrypoint did not return within {timeout:.1f}s"
            + (f": {call.describe()}" if call else "")
        ) from e
    if call is not None:
        await call.wait_until_done(timeout=max(0.0, deadline - loop.time()))


async def run_job(
    entrypoint: Callable[[JobContext], Awaitable[None]],
    *,
    call: ScriptedCall | None = None,
    shutdown_reason: str = "room deleted",
    job_id: str = "job-test",
    room_name: str = "test-room",
    timeout: float = 30.0,
) -> JobContext:
    """Run ``entrypoint`` like LiveKit's job runner, inside ``fake_job_context``.

    Awaits the entrypoint, then (with ``call``) waits for the call to be done, then
    emulates the runner's shutdown: ``aclose()`` of the primary ``AgentSession``, then the
    context's shutdown callbacks with ``shutdown_reason`` (all run; the first one that
    raised is re-raised). Shutdown also runs when the entrypoint or the wait fails.
    Raises :class:`ScriptedCallTimeout` on timeouts.

    Example::

        ctx = await run_job(entrypoint, call=call, shutdown_reason="room deleted")
    """
    deadline = asyncio.get_running_loop().time() + timeout
    with _job_context(job_id=job_id, room_name=room_name) as ctx:
        failed = False
        try:
            await _run_until_done(entrypoint, ctx, call=call, deadline=deadline, timeout=timeout)
        except BaseException:
            failed = True
            raise
        finally:
            try:
                await _shutdown_job(ctx, reason=shutdown_reason)
            except Exception:
                if not failed:
                    raise
            finally:
                if call is not None:
                    await call.aclose()
    return ctx
