"""What observing a call costs: bare LiveKit vs roark vs the reference package.

Run from the repository root::

    python -m tests.benchmarks.bench_calls --out bench-results.json

For each configuration (``bare``: no observer; ``roark``; ``reference``: the PyPI package
``roark-analytics-python-livekit``, when the interpreter can import it) and each N, a fresh
child process runs N scripted calls concurrently on one event loop, each through a real
``AgentSession`` with real-time caller audio in and a real-time speaker out
(``roark.testing.scripted``). The child measures event-loop lag, process CPU, RSS and the
time to the agent's first played audio; the parent prints a table and writes JSON.

The local Roark runs in this (parent) process by default, so that answering requests and
stitching recordings is not charged to the calls (``--server inproc`` runs it inside the
child, through ``roark.testing.observed_by_local_roark``). A second pass runs every
configuration against a local Roark that hangs every request.

The long call is, by default, an accelerated equivalent: ``--long-minutes`` of stamped call
audio fed straight into roark's real worker (processor thread, recording, spool, HTTP) as
fast as it takes it, as ``tests/test_long_call.py`` does; pacing LiveKit's own pipeline
faster than real time would not be honest. ``--long-realtime`` runs a real-time scripted
call of that length through every configuration instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import gc
import json
import logging
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CONFIGS = ("bare", "roark", "reference")
# not run by default: roark observing everything but the audio, to split its cost
EXTRA_CONFIGS = ("roark-noaudio",)
REFERENCE_MODULE = "roark_analytics_python_livekit"
AGENT_ID = "bench-support-bot"
PROBE_INTERVAL = 0.005
STALL_MS = 5.0

# the targets for roark, checked at the end of a run
TARGET_CPU_PER_CALL_MIN = 0.15  # s of CPU over bare per call-minute
TARGET_LAG_P99_MS = 0.5  # ms over bare
TARGET_FIRST_AUDIO_NOISE_MS = 100.0  # "the same as bare within noise"
TARGET_RSS_PER_CALL_MB = 5.0  # MB over bare per concurrent call
TARGET_LONG_GROWTH_MB = 5.0  # MB of growth from minute 1 to the end of the long call
LONG_FEED_STEP = 5.0  # s of audio handed to the accelerated long call at a time

JSON = dict[str, Any]


# --------------------------------------------------------------------------------------
# the scripted call
# --------------------------------------------------------------------------------------

GREETING = "Hello! Thanks for calling. How can I help you today?"
FIRST_TURN_AT = 3.5
TURN_PERIOD = 6.5
USER_TURN_SECONDS = 1.2
USER_LINES = (
    "Hi, where is my order 4217?",
    "Can I change the delivery address?",
    "It should go to my office instead.",
    "Will I get a tracking number?",
    "Can you also check order 5531?",
    "Great, and what about returns?",
)
AGENT_LINES = (
    "Your order 4217 has shipped and arrives Friday.",
    "Yes, what is the new address?",
    "Done, it now goes to your office.",
    "Yes, you will get it by email today.",
    "Order 5531 is packed and ships tomorrow.",
    "Returns are free within thirty days.",
)
TOOL_EVERY = 4  # every 4th user turn (from the first) makes the LLM call a tool first


def build_script(call_seconds: float) -> Any:
    """A support call: a greeting, then a caller turn every 6.5 s, each answered.

    Caller audio is 16 kHz in 20 ms frames for exactly ``call_seconds``; TTS is 24 kHz.
    Turns leave the agent's answer (about 2.5 s, starting about 0.6 s after the caller
    stops) room to finish before the caller speaks again, so nothing is interrupted.
    """
    from roark.testing.scripted import CallScript, LLMReply, ToolCallStep, UserTurn

    turns: list[UserTurn] = []
    replies: list[LLMReply] = []
    at = FIRST_TURN_AT
    index = 0
    # the caller audio must go on after the last turn for the VAD to see its end
    while at + USER_TURN_SECONDS + 1.0 <= call_seconds:
        turns.append(
            UserTurn(USER_LINES[index % len(USER_LINES)], at=at, duration=USER_TURN_SECONDS)
        )
        if index % TOOL_EVERY == 0:
            step = ToolCallStep("lookup_order", {"order_id": "4217"}, f"call_{index}")
            replies.append(LLMReply(tool_calls=(step,)))
        replies.append(LLMReply(AGENT_LINES[index % len(AGENT_LINES)]))
        at += TURN_PERIOD
        index += 1
    return CallScript(
        greeting=GREETING,
        user_turns=turns,
        llm_replies=replies,
        caller_audio_seconds=call_seconds,
        input_sample_rate=16000,
        input_frame_ms=20.0,
        output_sample_rate=24000,
    )


# --------------------------------------------------------------------------------------
# measurements (child side)
# --------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU of the whole process (every thread) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def vm_mb(field: str) -> float | None:
    """``VmRSS`` / ``VmHWM`` of this process from /proc, in MB (None off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    if field == "VmHWM":  # ru_maxrss is in KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return None


def threads_cpu(native_ids: Sequence[int]) -> float | None:
    """CPU seconds of the given threads of this process (Linux only; 10 ms resolution)."""
    total = 0.0
    for tid in native_ids:
        counters = thread_counters(tid)
        if not counters:
            return None
        total += counters["user_s"] + counters["system_s"]
    return total


def thread_counters(native_id: int) -> dict[str, float]:
    """User and system CPU seconds and context switches of one thread (Linux only)."""
    try:
        stat = Path(f"/proc/self/task/{native_id}/stat").read_text()
        status = Path(f"/proc/self/task/{native_id}/status").read_text()
    except OSError:
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    fields = stat.rsplit(")", 1)[1].split()
    out = {"user_s": int(fields[11]) / tick, "system_s": int(fields[12]) / tick}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            out[key.split("_")[0]] = int(value)
    return out


def named_threads_cpu(prefix: str) -> dict[str, float]:
    """CPU seconds of each live thread whose name starts with ``prefix``, by name."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.name.startswith(prefix) and thread.native_id:
            cpu = threads_cpu([thread.native_id])
            if cpu is not None:
                out[thread.name] = cpu
    return out


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _spread(values: Sequence[float]) -> JSON | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "count": len(values),
    }


def _open_thread_schedstat() -> int | None:
    """A descriptor on this thread's /proc schedstat (on-CPU ns, run-queue ns, slices)."""
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return None
    if _run_queue_ns(fd) is None:
        os.close(fd)
        return None
    return fd


def _run_queue_ns(fd: int | None) -> int | None:
    if fd is None:
        return None
    try:
        return int(os.pread(fd, 128, 0).split()[1])
    except (OSError, IndexError, ValueError):
        return None


class LagProbe:
    """Sleeps 5 ms in a loop on the event loop and records how late each wake-up was."""

    def __init__(self, interval: float = PROBE_INTERVAL) -> None:
        self.interval = interval
        self.lateness: list[float] = []
        self.stalls: list[tuple[float, float]] = []  # (s since start, ms late) over 5 ms
        self.stall_windows: list[tuple[float, float]] = []  # perf_counter spans of stalls
        # per tick, ms the loop thread was runnable but had no CPU (Linux schedstat): the
        # part of a lateness that is the machine's cores being busy, not the GIL or the loop
        self.cpu_wait: list[float] = []
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lag-probe")

    async def _run(self) -> None:
        started = time.perf_counter()
        schedstat = _open_thread_schedstat()
        waited = _run_queue_ns(schedstat)
        while not self._stopping:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            late = max(0.0, time.perf_counter() - before - self.interval)
            self.lateness.append(late)
            waited_before, waited = waited, _run_queue_ns(schedstat)
            if waited is not None and waited_before is not None:
                self.cpu_wait.append((waited - waited_before) / 1e6)
            if late * 1000 > STALL_MS:
                self.stall_windows.append((before + self.interval, before + self.interval + late))
                if len(self.stalls) < 100:
                    self.stalls.append((round(before - started, 3), round(late * 1000, 2)))
        if schedstat is not None:
            os.close(schedstat)

    async def stop(self) -> JSON:
        self._stopping = True
        if self._task is not None:
            await self._task
        ms = [x * 1000 for x in self.lateness]
        summary: JSON = {
            "p50": _pct(ms, 0.50),
            "p99": _pct(ms, 0.99),
            "max": max(ms, default=math.nan),
            "over_5ms": sum(1 for x in ms if x > STALL_MS),
            "samples": len(ms),
            "stalls": self.stalls,
        }
        if self.cpu_wait and len(self.cpu_wait) == len(ms):
            # the slowest 1 % of ticks and the stalls: how much of them was waiting for a core
            p99 = summary["p99"]
            tail = [(m, w) for m, w in zip(ms, self.cpu_wait, strict=True) if m >= p99]
            summary["cpu_wait_ms"] = {
                "tail_late_total": sum(m for m, _ in tail),
                "tail_waiting_total": sum(min(w, m) for m, w in tail),
                "stalls_mostly_waiting": sum(
                    1 for m, w in zip(ms, self.cpu_wait, strict=True) if m > STALL_MS and w > m / 2
                ),
            }
        return summary


class GcPauses:
    """Every garbage collection of the calls' window: how long it held the process.

    A stall of the loop that overlaps a collection is the collector's, whoever allocated;
    the table shows how many stalls were, so the rest can be pinned on the observer.
    """

    def __init__(self) -> None:
        # (start, end) perf_counter, generation, the thread it ran on
        self.pauses: list[tuple[float, float, int, str]] = []
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            generation = info.get("generation", -1)
            thread = threading.current_thread().name
            self.pauses.append((self._began, time.perf_counter(), generation, thread))

    def start(self) -> None:
        gc.callbacks.append(self._callback)

    def stop(self) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self, stall_windows: list[tuple[float, float]]) -> JSON:
        long = [(e - b) * 1000 for b, e, *_ in self.pauses]
        by_gen: dict[int, JSON] = {}
        by_thread: dict[str, int] = {}
        for ms, (*_, generation, thread) in zip(long, self.pauses, strict=True):
            entry = by_gen.setdefault(generation, {"count": 0, "total_ms": 0.0, "max_ms": 0.0})
            entry["count"] += 1
            entry["total_ms"] += ms
            entry["max_ms"] = max(entry["max_ms"], ms)
            by_thread[thread] = by_thread.get(thread, 0) + 1
        return {
            "collections": len(self.pauses),
            "gen2": by_gen.get(2, {}).get("count", 0),
            "max_ms": max(long, default=0.0),
            "total_ms": sum(long),
            "by_gen": by_gen,
            "by_thread": by_thread,
            "stalls_during_gc": sum(
                1
                for s_b, s_e in stall_windows
                if any(b < s_e and e > s_b for b, e, *_ in self.pauses)
            ),
        }


class RssSampler:
    """VmRSS every ``every`` seconds on the event loop, as (seconds since start, MB)."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.samples: list[tuple[float, float]] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="rss-sampler")

    async def _run(self) -> None:
        started = time.perf_counter()
        while True:
            rss = vm_mb("VmRSS")
            if rss is not None:
                self.samples.append((round(time.perf_counter() - started, 2), round(rss, 2)))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.every)
            if self._stop.is_set():
                return

    async def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        if self._task is not None:
            await self._task
        return self.samples


def _livekit_version() -> str | None:
    try:
        from livekit.agents import __version__
    except Exception:
        return None
    return str(__version__)


# --------------------------------------------------------------------------------------
# child: the observer of one configuration
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class ChildSpec:
    """One child run; crosses the process boundary as JSON."""

    kind: str  # "calls" or "long-accelerated"
    config: str
    n: int = 1
    call_seconds: float = 30.0
    hang: bool = False
    base_url: str | None = None  # None: the child starts its own LocalRoark (--server inproc)
    api_key: str = ""
    shutdown_timeout: float = 8.0
    rss_every: float = 0.0  # > 0: sample VmRSS during the calls (the real-time long call)
    long_minutes: float = 10.0
    warmup_seconds: float = 6.0  # 0: no warm-up call before the measured ones
    stagger: float = TURN_PERIOD  # call i starts stagger * i / n seconds in; 0: lockstep


class Observer:
    """How one configuration observes the calls of a child process."""

    def __init__(self, config: str, api_key: str, reference: Any = None) -> None:
        self.config = config
        self.api_key = api_key
        self.reference = reference

    @property
    def version(self) -> str | None:
        if self.config.startswith("roark"):
            import roark

            return roark.__version__
        if self.config == "reference":
            return str(getattr(self.reference, "__version__", None))
        return None

    def entrypoint(self, call: Any, marks: dict[str, float]) -> Callable[[Any], Awaitable[None]]:
        """The job entrypoint of one call, as a user of this configuration writes it."""
        reference = self.reference
        api_key = self.api_key

        async def body(ctx: Any) -> None:
            session = call.build_session()
            if reference is not None:
                await reference.observe_session(
                    ctx, session, api_key=api_key, agent_id=AGENT_ID, agent_name="Bench Bot"
                )
            await session.start(agent=call.make_agent())

        entry: Callable[[Any], Awaitable[None]] = body
        if self.config.startswith("roark"):
            import roark

            audio = self.config != "roark-noaudio"
            observe = roark.observe(agent_id=AGENT_ID, agent_name="Bench Bot", capture_audio=audio)
            entry = observe(body)

        async def timed(ctx: Any) -> None:
            _connect_room(ctx)
            marks["entry"] = time.time()
            await entry(ctx)

        return timed


def _connect_room(ctx: Any) -> None:
    # a connected room knows its sid; fake_job_context's room never connects, and the
    # reference awaits `room.sid`, which waits for the connection forever
    with contextlib.suppress(Exception):
        ctx.room._info.sid = ctx.job.room.sid


def _import_reference(base_url: str) -> Any:
    import importlib

    module = importlib.import_module(REFERENCE_MODULE)
    client = importlib.import_module(REFERENCE_MODULE + ".client")
    # it hard-codes api.roark.ai; RoarkClient reads these module globals when created
    client.WEBHOOK_BASE_URL = base_url
    client.CHUNK_UPLOAD_BASE_URL = base_url
    client.WEBHOOK_URL = base_url + client.WEBHOOK_PATH
    client.CHUNK_UPLOAD_URL_ENDPOINT = base_url + client.CHUNK_UPLOAD_PATH
    return module


@contextlib.contextmanager
def _observer(spec: ChildSpec, folder: Path) -> Iterator[tuple[Observer, Any]]:
    """The configuration's observer, pointed at the local Roark; yields (observer, server).

    ``server`` is the child's own LocalRoark with ``--server inproc``, else None.
    """
    from roark.testing import LocalRoark, observed_by_local_roark

    with contextlib.ExitStack() as stack:
        server = None
        base_url, api_key = spec.base_url, spec.api_key
        if spec.config.startswith("roark"):
            import roark

            if base_url is None:
                server = stack.enter_context(
                    observed_by_local_roark(folder, shutdown_timeout=spec.shutdown_timeout)
                )
            else:
                roark.configure(
                    api_key=api_key,
                    base_url=base_url,
                    spool_dir=folder / "spool",
                    shutdown_timeout=spec.shutdown_timeout,
                )
                stack.callback(roark.shutdown, 0.5 if spec.hang else 10.0)
        elif base_url is None:
            server = LocalRoark(recordings_dir=folder / "recordings").start()
            stack.callback(server.stop)
        if server is not None:
            base_url, api_key = server.base_url, server.api_key
            if spec.hang:
                server.set_faults(hang=True)
        reference = None
        if spec.config == "reference":
            assert base_url is not None
            reference = _import_reference(base_url)
        yield Observer(spec.config, api_key, reference), server


def delivered(server: Any, n: int, wait: float) -> JSON:
    """How many calls a LocalRoark has a call-ended for (waiting up to ``wait`` for ``n``)."""
    if wait > 0:
        with contextlib.suppress(TimeoutError):
            server.wait_for_calls(n, timeout=wait)
    calls = server.calls()
    requests = server.requests_log
    return {
        "calls_ended": sum(1 for c in calls.values() if c.ended_count),
        "calls_seen": len(calls),
        "chunks": sum(len(c.chunks) for c in calls.values()),
        "requests": len(requests),
        "rejected": sum(1 for r in requests if r.status is not None and r.status >= 400),
        "violations": len(server.violations),
        "first_violation": (server.violations or [None])[0],
    }


# --------------------------------------------------------------------------------------
# child: N concurrent calls
# --------------------------------------------------------------------------------------


async def _one_call(name: str, call: Any, observer: Observer, timeout: float) -> JSON:
    from roark.testing.scripted import run_job

    marks: dict[str, float] = {}
    error = None
    try:
        await run_job(
            observer.entrypoint(call, marks),
            call=call,
            job_id=f"bench-job-{name}",
            room_name=f"bench-room-{name}",
            timeout=timeout,
        )
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    finished = time.time()
    entry = marks.get("entry")
    played = [s.started_at for s in call.output.segments if s.started_at is not None]
    return {
        "first_audio_s": min(played) - entry if played and entry is not None else None,
        "job_s": finished - entry if entry is not None else None,
        "segments_played": len(played),
        "error": error,
    }


async def run_calls(spec: ChildSpec, observer: Observer) -> JSON:
    from roark.testing.scripted import ScriptedCall

    # the reference blocks its entrypoint for its 30 s HTTP timeout when Roark hangs
    timeout = spec.call_seconds + 120.0
    warmup: JSON | None = None
    if spec.warmup_seconds > 0:
        # one call first, so lazy imports and first-use set-up of LiveKit and the observer
        # are not charged to the measured calls (a worker process serves many calls)
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        warm_call = ScriptedCall(build_script(spec.warmup_seconds))
        outcome = await _one_call("warmup", warm_call, observer, timeout)
        warmup = {
            "call_seconds": spec.warmup_seconds,
            "cpu_s": cpu_seconds() - cpu0,
            "wall_s": time.perf_counter() - wall0,
            "error": outcome["error"],
        }

    script = build_script(spec.call_seconds)
    calls = [ScriptedCall(script) for _ in range(spec.n)]
    probe = LagProbe()
    sampler = RssSampler(spec.rss_every) if spec.rss_every > 0 else None
    loop_thread = threading.get_native_id()
    gc.collect()
    rss_before = vm_mb("VmRSS")
    loop_cpu0 = threads_cpu([loop_thread])
    loop_counters0 = thread_counters(loop_thread)
    roark_cpu0 = named_threads_cpu("roark-")
    gc_pauses = GcPauses()
    gc_pauses.start()
    probe.start()
    if sampler is not None:
        sampler.start()
    cpu0, wall0 = cpu_seconds(), time.perf_counter()

    async def staggered(index: int, call: Any) -> JSON:
        # calls of a real worker do not start in lockstep: spread the starts over one turn
        # period, so N identical scripts do not hit the loop with N replies at once
        offset = spec.stagger * index / spec.n
        if offset > 0:
            await asyncio.sleep(offset)
        return await _one_call(str(index), call, observer, timeout)

    outcomes = await asyncio.gather(*(staggered(i, call) for i, call in enumerate(calls)))

    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    loop_cpu1 = threads_cpu([loop_thread])
    loop_counters = {
        k: round(v - loop_counters0.get(k, 0), 2) for k, v in thread_counters(loop_thread).items()
    }
    roark_cpu = {
        name: used - roark_cpu0.get(name, 0.0) for name, used in named_threads_cpu("roark-").items()
    }
    lag = await probe.stop()
    gc_pauses.stop()
    lag["gc"] = gc_pauses.summary(probe.stall_windows)
    rss_samples = await sampler.stop() if sampler is not None else None
    first = [o["first_audio_s"] for o in outcomes if o["first_audio_s"] is not None]
    jobs = [o["job_s"] for o in outcomes if o["job_s"] is not None]
    errors = [o["error"] for o in outcomes if o["error"]]
    result: JSON = {
        "n": spec.n,
        "call_seconds": spec.call_seconds,
        "user_turns": len(script.user_turns),
        "wall_s": wall,
        "cpu_s": cpu,
        "loop_thread_cpu_s": (
            loop_cpu1 - loop_cpu0 if loop_cpu0 is not None and loop_cpu1 is not None else None
        ),
        # user/system CPU and context switches: what contention costs the loop thread
        "loop_thread_counters": loop_counters,
        # roark's worker threads (processor, senders) during the calls
        "roark_threads_cpu_s": sum(roark_cpu.values()) if roark_cpu else None,
        "roark_threads_cpu_by_thread": roark_cpu,
        "lag_ms": lag,
        "rss_mb": {"before": rss_before, "peak": vm_mb("VmHWM"), "end": vm_mb("VmRSS")},
        "first_audio_s": _spread(first),
        "job_s": _spread(jobs),
        "segments_played": sum(o["segments_played"] for o in outcomes),
        "errors": errors,
        "warmup": warmup,
        "calls_total": spec.n + (1 if warmup is not None else 0),
    }
    if rss_samples is not None:
        result["rss_samples"] = rss_samples
    return result


# --------------------------------------------------------------------------------------
# child: the accelerated long call (roark's worker only)
# --------------------------------------------------------------------------------------


def _wait_caught_up(worker: Any, call: Any, timeout: float = 60.0) -> None:
    """Until the processor has taken every frame and cut the timeline up to the last one.

    Waiting longer than that would be dishonest the other way: roark takes a caller that
    has sent nothing for a second of wall time as silent, and cuts the timeline up to now.
    """
    handoff = worker.handoff
    pending = getattr(handoff, "pending", None) or handoff._queue.qsize
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recording = call.assembler.recording
        if (
            not pending()
            and recording is not None
            # cut in whole chunks: up to a chunk (plus the last second) behind the fed audio
            and recording._cursor
            >= recording.sample_at(call.t0 + call._fed) - recording._chunk_frames - recording.rate
        ):
            return
        # polled: the processor thread has no "caught up" signal to wait on
        time.sleep(0.01)
    raise TimeoutError("roark's processor did not catch up with the long call")


def run_long_accelerated(spec: ChildSpec, base_url: str, api_key: str, folder: Path) -> JSON:
    from roark._config import resolve
    from roark._threads.worker import Worker
    from tests.synthetic import SyntheticCall

    settings = resolve(
        {"api_key": api_key, "base_url": base_url, "spool_dir": folder / "spool"}, env={}
    )
    minutes = spec.long_minutes
    worker = Worker(settings)
    try:
        if spec.warmup_seconds > 0:
            # a short call first: the process's one-time set-up (HTTP pool, codecs, numpy
            # buffers) is not the long call's growth
            warm = SyntheticCall(worker, "RM_bench_warmup", t0=time.time() - spec.warmup_seconds)
            warm.feed(spec.warmup_seconds)
            warm.end()
            warm.done.result(timeout=60)
        gc.collect()
        rss_start = vm_mb("VmRSS")
        cpu_before = named_threads_cpu("roark-")
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        call = SyntheticCall(worker, "RM_bench_long", t0=time.time() - minutes * 60)
        samples: list[tuple[float, float | None]] = [(0.0, rss_start)]
        fed = 0.0
        for step in range(1, math.ceil(minutes) + 1):
            upto = min(step, minutes) * 60.0
            # a few seconds at a time, as a live call hands audio over: a whole minute queued
            # at once would measure the allocator's high-water mark for that burst instead
            while fed < upto:
                fed = min(upto, fed + LONG_FEED_STEP)
                call.feed(fed)
                worker.handoff.wake()  # not the drain interval: the audio is all there
                _wait_caught_up(worker, call)
            samples.append((round(upto / 60.0, 3), vm_mb("VmRSS")))
        recording = call.assembler.recording
        high_water = recording.high_water if recording is not None else None
        # samples that reached the processor after their place was cut: a hole in the call
        dropped = sum(t.dropped for t in recording._tracks) if recording is not None else None
        roark_threads = {
            name: used - cpu_before.get(name, 0.0)
            for name, used in named_threads_cpu("roark-").items()
        }
        call.end()
        ok = call.done.result(timeout=120)
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
        rss_end = samples[-1][1]
        after_first = samples[1][1] if len(samples) > 1 else rss_start
    finally:
        worker.stop(5.0)
    return {
        "mode": "accelerated",
        "minutes": minutes,
        "wall_s": wall,
        "cpu_s": cpu,
        "roark_threads_cpu_s": sum(roark_threads.values()) if roark_threads else None,
        "roark_threads_cpu_by_thread": roark_threads,
        "rss_mb": {
            "start": rss_start,
            "after_first_minute": after_first,
            "end": rss_end,
            "peak": vm_mb("VmHWM"),
        },
        "rss_samples": samples,
        "recording_high_water_mb": (
            high_water * 4 / 1024 / 1024 if high_water is not None else None
        ),
        "delivered": bool(ok),
        "chunks_sent": worker.stats.get("chunks"),
        "dropped_samples_before_end": dropped,
        "calls_total": 2 if spec.warmup_seconds > 0 else 1,
    }


# --------------------------------------------------------------------------------------
# child entry point
# --------------------------------------------------------------------------------------


def child_main(spec: ChildSpec) -> JSON:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    base: JSON = {
        "config": spec.config,
        "kind": spec.kind,
        "hang": spec.hang,
        "python": platform.python_version(),
        "livekit_agents": _livekit_version(),
    }
    with tempfile.TemporaryDirectory(prefix="roark-bench-") as tmp:
        folder = Path(tmp)
        if spec.kind == "long-accelerated":
            from roark.testing import LocalRoark

            with contextlib.ExitStack() as stack:
                base_url, api_key = spec.base_url, spec.api_key
                server = None
                if base_url is None:
                    server = LocalRoark(recordings_dir=folder / "recordings").start()
                    stack.callback(server.stop)
                    base_url, api_key = server.base_url, server.api_key
                result = run_long_accelerated(spec, base_url, api_key, folder)
            return {**base, **result}
        try:
            with _observer(spec, folder) as (observer, server):
                base["observer_version"] = observer.version
                result = asyncio.run(run_calls(spec, observer))
                if server is not None and spec.config != "bare":
                    wait = 0 if spec.hang else 10.0
                    result["delivery"] = delivered(server, result["calls_total"], wait)
        except ImportError as exc:
            return {**base, "unavailable": f"{type(exc).__name__}: {exc}"}
        return {**base, **result}


# --------------------------------------------------------------------------------------
# parent: running children
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Options:
    python: str
    configs: list[str]
    ns: list[int]
    call_seconds: float
    hang_call_seconds: float
    long_minutes: float
    long_realtime: bool
    server: str
    quick: bool
    warmup_seconds: float
    stagger: float
    repeat: int


@contextlib.contextmanager
def _hosted_roark(hang: bool, folder: Path) -> Iterator[Any]:
    from roark.testing import LocalRoark

    server = LocalRoark(recordings_dir=folder / "recordings").start()
    try:
        if hang:
            server.set_faults(hang=True)
        yield server
    finally:
        server.stop()


def _spawn(opts: Options, spec: ChildSpec, folder: Path, label: str) -> JSON:
    out = folder / f"{label}.json"
    log = folder / f"{label}.log"
    cmd = [
        opts.python,
        "-m",
        "tests.benchmarks.bench_calls",
        "--child",
        json.dumps(dataclasses.asdict(spec)),
        "--child-out",
        str(out),
    ]
    budget = 300.0 + 3 * spec.call_seconds + 60 * spec.long_minutes
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    with log.open("wb") as sink:
        try:
            proc = subprocess.run(
                cmd, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, timeout=budget, env=env
            )
            code: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            code = f"killed after {budget:.0f} s"
    elapsed = time.perf_counter() - started
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    if code == 0 and out.exists():
        result: JSON = json.loads(out.read_text())
        result["child_wall_s"] = elapsed
        if result.get("errors") or result.get("unavailable"):
            result["log_tail"] = tail
        return result
    return {"config": spec.config, "failed": f"child exited {code}", "log_tail": tail}


def _run_child(opts: Options, spec: ChildSpec, folder: Path, label: str) -> JSON:
    print(f"  running {label} ...", file=sys.stderr, flush=True)
    if opts.server == "inproc":
        return _spawn(opts, spec, folder, label)
    with _hosted_roark(spec.hang, folder / label) as server:
        spec.base_url, spec.api_key = server.base_url, server.api_key
        # the local Roark shares the machine's cores with the calls: what it costs them
        host_cpu = time.process_time()
        result = _spawn(opts, spec, folder, label)
        result["local_roark_cpu_s"] = round(time.process_time() - host_cpu, 2)
        usable = "failed" not in result and "unavailable" not in result
        if spec.config != "bare" and usable:
            wait = 0 if spec.hang else 10.0
            result["delivery"] = delivered(server, result.get("calls_total", spec.n), wait)
    return result


def _check_reference(python: str) -> str | None:
    """None when the children's interpreter imports the reference, else why not."""
    proc = subprocess.run(
        [python, "-c", f"import {REFERENCE_MODULE}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode == 0:
        return None
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit {proc.returncode}"


def run_all(opts: Options) -> JSON:
    # violations are counted in the results; the server's own warnings would flood the table
    logging.getLogger("roark.testing.server").setLevel(logging.ERROR)
    results: JSON = {
        "machine": machine_info(),
        "settings": dataclasses.asdict(opts),
        "configs": {},
        "long_call": {},
    }
    configs = list(opts.configs)
    for config in configs:
        results["configs"][config] = {"runs": {}, "hang": {}}
    if "reference" in configs:
        why = _check_reference(opts.python)
        if why is not None:
            results["configs"]["reference"]["unavailable"] = why
            configs.remove("reference")
            print(f"reference package not importable: {why}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="roark-bench-parent-") as tmp:
        folder = Path(tmp)
        # configurations interleaved per N, so slow drift of the machine hits all alike
        for hang, seconds, bucket in (
            (False, opts.call_seconds, "runs"),
            (True, opts.hang_call_seconds, "hang"),
        ):
            repeats: dict[tuple[str, int], list[JSON]] = {}
            for repeat in range(opts.repeat):
                for n in opts.ns:
                    for config in configs:
                        spec = ChildSpec(
                            kind="calls",
                            config=config,
                            n=n,
                            call_seconds=seconds,
                            hang=hang,
                            shutdown_timeout=2.0 if hang else 8.0,
                            warmup_seconds=opts.warmup_seconds,
                            stagger=opts.stagger,
                        )
                        label = f"{config}-n{n}{'-hang' if hang else ''}-r{repeat}"
                        run = _run_child(opts, spec, folder, label)
                        repeats.setdefault((config, n), []).append(run)
            for (config, n), runs in repeats.items():
                results["configs"][config][bucket][str(n)] = _median_run(runs, hang)
        if opts.long_minutes > 0:
            if opts.long_realtime:
                for config in configs:
                    spec = ChildSpec(
                        kind="calls",
                        config=config,
                        n=1,
                        call_seconds=opts.long_minutes * 60,
                        rss_every=10.0,
                        warmup_seconds=opts.warmup_seconds,
                        stagger=opts.stagger,
                    )
                    run = _run_child(opts, spec, folder, f"{config}-long")
                    results["long_call"][config] = _long_realtime_summary(run)
            elif "roark" in configs:
                spec = ChildSpec(
                    kind="long-accelerated",
                    config="roark",
                    long_minutes=opts.long_minutes,
                    warmup_seconds=opts.warmup_seconds,
                )
                results["long_call"]["roark"] = _run_child(opts, spec, folder, "roark-long")

    for entry in results["configs"].values():
        versions = {
            r.get("livekit_agents") for r in entry["runs"].values() if r.get("livekit_agents")
        }
        entry["livekit_agents"] = sorted(versions)[0] if len(versions) == 1 else sorted(versions)
        notes = []
        for bucket in ("runs", "hang"):
            for n_key, run in entry[bucket].items():
                first = run.get("failed") or (run.get("errors") or [None])[0]
                if first:
                    where = f"N={n_key}{' (hung Roark)' if bucket == 'hang' else ''}"
                    notes.append(f"{where}: {first}")
                    # the observer's own exceptions are logged, not raised: show the first
                    errors = [
                        line.strip()
                        for line in run.get("log_tail", "").splitlines()
                        if not line.startswith(("Traceback", " ")) and "Error" in line
                    ]
                    if errors:
                        notes.append(f"{where}: log: {errors[0]}")
                delivery = run.get("delivery")
                if delivery and bucket == "runs":
                    total = run.get("calls_total", run.get("n"))
                    if delivery["calls_ended"] < (total or 0) or delivery["violations"]:
                        notes.append(
                            f"N={n_key}: the local Roark accepted {delivery['calls_ended']}/"
                            f"{total} calls ({delivery['chunks']} audio chunks); first "
                            f"violation: {str(delivery.get('first_violation'))[:300]}"
                        )
        if notes:
            entry["failures"] = notes
    results["machine"]["load_average_end"] = _load()
    derive(results, opts)
    return results


def _preempted(run: JSON) -> str:
    # a thread taking the loop's core while it had work: roark's own, or the local Roark's
    times = (run.get("loop_thread_counters") or {}).get("nonvoluntary")
    return "" if times is None else f" ({times:.0f}×)"


def _median_run(runs: list[JSON], hang: bool) -> JSON:
    """The run with the median CPU (first audio, for the hung pass), others kept inside it.

    One whole run rather than medians of each figure, so that its figures stay consistent.
    """
    if len(runs) == 1:
        return runs[0]
    usable = [r for r in runs if _ok(r)]
    if not usable:
        return runs[0]

    def key(run: JSON) -> float:
        if hang:
            return _median(run.get("first_audio_s")) or math.inf
        return float(run["cpu_s"])

    chosen = sorted(usable, key=key)[(len(usable) - 1) // 2]
    others = [r for r in runs if r is not chosen]
    return {**chosen, "repeats": len(runs), "other_repeats": others}


def _long_realtime_summary(run: JSON) -> JSON:
    samples = run.get("rss_samples") or []
    start = next((mb for t, mb in samples if t >= 10.0), None)
    minute = next((mb for t, mb in samples if t >= 60.0), start)
    end = samples[-1][1] if samples else None
    return {
        **run,
        "mode": "real-time",
        "minutes": run.get("call_seconds", 0) / 60,
        "rss_mb": {
            **(run.get("rss_mb") or {}),
            "start": start,
            "after_first_minute": minute,
            "end": end,
        },
    }


# --------------------------------------------------------------------------------------
# parent: derived figures, table, targets
# --------------------------------------------------------------------------------------


def _ok(run: JSON | None) -> bool:
    return bool(run) and "failed" not in run and "unavailable" not in run and "cpu_s" in run


def derive(results: JSON, opts: Options) -> None:
    """Per run: CPU per call-minute, over bare, slopes between N; RSS per call."""
    configs: JSON = results["configs"]
    bare = configs.get("bare", {}).get("runs", {})
    for entry in configs.values():
        runs = entry["runs"]
        previous: tuple[int, JSON] | None = None
        for n in sorted(int(k) for k in runs):
            run = runs[str(n)]
            if not _ok(run):
                continue
            call_minutes = n * run["call_seconds"] / 60
            run["cpu_s_per_call_min"] = run["cpu_s"] / call_minutes
            rss = run["rss_mb"]
            if rss.get("peak") is not None and rss.get("before") is not None:
                run["rss_per_call_mb"] = (rss["peak"] - rss["before"]) / n
            base = bare.get(str(n))
            if _ok(base) and base is not run:
                run["cpu_over_bare_s_per_call_min"] = (
                    run["cpu_s_per_call_min"] - base["cpu_s"] / call_minutes
                )
                if "rss_per_call_mb" in run and base.get("rss_mb", {}).get("peak") is not None:
                    base_per_call = (base["rss_mb"]["peak"] - base["rss_mb"]["before"]) / n
                    run["rss_per_call_over_bare_mb"] = run["rss_per_call_mb"] - base_per_call
            if previous is not None:
                lo_n, lo = previous
                added = (n - lo_n) * run["call_seconds"] / 60
                run["slope_cpu_s_per_call_min"] = (run["cpu_s"] - lo["cpu_s"]) / added
                run["slope_rss_mb_per_call"] = (rss["peak"] - lo["rss_mb"]["peak"]) / (n - lo_n)
            previous = (n, run)
    for entry in configs.values():
        for n_key, run in entry["runs"].items():
            base = bare.get(n_key)
            if (
                _ok(run)
                and _ok(base)
                and "slope_cpu_s_per_call_min" in run
                and "slope_cpu_s_per_call_min" in base
            ):
                run["slope_over_bare_s_per_call_min"] = (
                    run["slope_cpu_s_per_call_min"] - base["slope_cpu_s_per_call_min"]
                )
    results["targets"] = check_targets(results)


def _median(spread: JSON | None) -> float | None:
    return None if not spread else spread.get("median")


def check_targets(results: JSON) -> JSON:
    configs = results["configs"]
    if "roark" not in configs or "bare" not in configs:
        return {}
    roark_runs, bare_runs = configs["roark"]["runs"], configs["bare"]["runs"]
    roark_hang, bare_hang = configs["roark"]["hang"], configs["bare"]["hang"]
    ns = sorted(int(k) for k in roark_runs if _ok(roark_runs[k]) and _ok(bare_runs.get(k)))
    targets: JSON = {}

    def verdict(worst: float | None, limit: float) -> str:
        if worst is None:
            return "n/a"
        return "met" if worst <= limit else "missed"

    cpu = [roark_runs[str(n)].get("cpu_over_bare_s_per_call_min") for n in ns]
    cpu = [c for c in cpu if c is not None]
    slope = [roark_runs[str(n)].get("slope_over_bare_s_per_call_min") for n in ns]
    slope = [s for s in slope if s is not None]
    worst_cpu = max(cpu + slope) if cpu or slope else None
    targets["cpu_over_bare_s_per_call_min"] = {
        "limit": TARGET_CPU_PER_CALL_MIN,
        "by_n": cpu,
        "slopes": slope,
        "verdict": verdict(worst_cpu, TARGET_CPU_PER_CALL_MIN),
    }
    p99 = [roark_runs[str(n)]["lag_ms"]["p99"] - bare_runs[str(n)]["lag_ms"]["p99"] for n in ns]
    targets["lag_p99_over_bare_ms"] = {
        "limit": TARGET_LAG_P99_MS,
        "by_n": p99,
        "verdict": verdict(max(p99) if p99 else None, TARGET_LAG_P99_MS),
    }
    stalls = [
        (roark_runs[str(n)]["lag_ms"]["over_5ms"], bare_runs[str(n)]["lag_ms"]["over_5ms"])
        for n in ns
    ]
    targets["stalls_over_5ms_roark_vs_bare"] = {
        "by_n": stalls,
        "verdict": "n/a" if not stalls else ("met" if all(r <= b for r, b in stalls) else "missed"),
    }
    hang_diff = []
    for n in sorted(int(k) for k in roark_hang):
        r, b = _median(roark_hang[str(n)].get("first_audio_s")), None
        if _ok(bare_hang.get(str(n))):
            b = _median(bare_hang[str(n)].get("first_audio_s"))
        if r is not None and b is not None:
            hang_diff.append((r - b) * 1000)
    targets["first_audio_hung_roark_over_bare_ms"] = {
        "limit": TARGET_FIRST_AUDIO_NOISE_MS,
        "by_n": hang_diff,
        "verdict": verdict(max(hang_diff) if hang_diff else None, TARGET_FIRST_AUDIO_NOISE_MS),
    }
    rss = [roark_runs[str(n)].get("rss_per_call_over_bare_mb") for n in ns]
    rss = [x for x in rss if x is not None]
    rss_slope = [
        roark_runs[str(n)]["slope_rss_mb_per_call"] - bare_runs[str(n)]["slope_rss_mb_per_call"]
        for n in ns
        if "slope_rss_mb_per_call" in roark_runs[str(n)]
        and "slope_rss_mb_per_call" in bare_runs[str(n)]
    ]
    targets["rss_per_call_over_bare_mb"] = {
        "limit": TARGET_RSS_PER_CALL_MB,
        "by_n": rss,
        "slopes": rss_slope,
        "verdict": verdict(
            max(rss + rss_slope) if rss or rss_slope else None, TARGET_RSS_PER_CALL_MB
        ),
    }
    long_run = results.get("long_call", {}).get("roark")
    if long_run and long_run.get("rss_mb", {}).get("end") is not None:
        grown = long_run["rss_mb"]["end"] - long_run["rss_mb"]["after_first_minute"]
        targets["long_call_rss_growth_mb"] = {
            "limit": TARGET_LONG_GROWTH_MB,
            "mode": long_run.get("mode"),
            "value": grown,
            "verdict": verdict(grown, TARGET_LONG_GROWTH_MB),
        }
    return targets


def _fmt(value: Any, digits: int = 2, scale: float = 1.0, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    number = value * scale
    return f"{number:+.{digits}f}" if signed else f"{number:.{digits}f}"


def _spread_ms(spread: JSON | None) -> str:
    if not spread:
        return "–"
    return f"{spread['median'] * 1000:.0f} / {spread['max'] * 1000:.0f}"


def _stalls(lag: JSON) -> str:
    gc_info = lag.get("gc")
    if not gc_info:
        return str(lag["over_5ms"])
    return f"{lag['over_5ms']} ({gc_info['stalls_during_gc']})"


def render(results: JSON) -> str:
    lines: list[str] = []
    m = results["machine"]
    s = results["settings"]
    lines.append(
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['platform']}, "
        f"Python {m['python']}; load average at start {m['load_average_start']}, "
        f"at end {m.get('load_average_end')}"
    )
    dirty = [x for x in m.get("roark_uncommitted") or [] if x]
    lines.append(
        f"roark at {m.get('git_commit')}"
        + (f" with uncommitted changes: {', '.join(dirty)}" if dirty else "")
    )
    lines.append(
        f"Calls: {s['call_seconds']:.0f} s of caller audio each (hung-Roark pass: "
        f"{s['hang_call_seconds']:.0f} s), starts spread over {s['stagger']:g} s, "
        f"{'a' if s['warmup_seconds'] else 'no'} warm-up call first; "
        + (f"median run of {s['repeat']}; " if s.get("repeat", 1) > 1 else "")
        + "LocalRoark "
        f"{'in the parent process' if s['server'] == 'process' else 'inside each child'}"
    )
    lines.append("")
    lines.append(
        "| config | N | lag p50 / p99 / max ms | stalls >5 ms (in GC) | CPU s/call-min | "
        "over bare | slope s/call-min | slope over bare | loop-thread CPU s (preempted) | "
        "roark-thread CPU s |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    rows2: list[str] = []
    for config, entry in results["configs"].items():
        if entry.get("unavailable"):
            lines.append(f"| {config} | – | not run: {entry['unavailable']} |||||||||")
            continue
        for n_key in sorted(entry["runs"], key=int):
            run = entry["runs"][n_key]
            hang = entry["hang"].get(n_key, {})
            if not _ok(run):
                why = run.get("failed") or run.get("unavailable") or "?"
                lines.append(f"| {config} | {n_key} | failed: {why} |||||||||")
                continue
            lag = run["lag_ms"]
            lines.append(
                f"| {config} | {n_key} | {_fmt(lag['p50'])} / {_fmt(lag['p99'])} / "
                f"{_fmt(lag['max'], 1)} | {_stalls(lag)} | {_fmt(run['cpu_s_per_call_min'], 3)} "
                f"| {_fmt(run.get('cpu_over_bare_s_per_call_min'), 3, signed=True)} "
                f"| {_fmt(run.get('slope_cpu_s_per_call_min'), 3)} "
                f"| {_fmt(run.get('slope_over_bare_s_per_call_min'), 3, signed=True)} "
                f"| {_fmt(run.get('loop_thread_cpu_s'))}{_preempted(run)} "
                f"| {_fmt(run.get('roark_threads_cpu_s'))} |"
            )
            delivery = run.get("delivery")
            delivered_text = (
                f"{delivery['calls_ended']}/{run.get('calls_total', run['n'])}"
                if delivery
                else ("–" if config == "bare" else "?")
            )
            errors = len(run.get("errors") or [])
            hang_text = (
                _spread_ms(hang.get("first_audio_s"))
                if _ok(hang)
                else (f"failed: {hang.get('failed')}" if hang else "–")
            )
            job = hang.get("job_s") if _ok(hang) else None
            rows2.append(
                f"| {config} | {n_key} | {_fmt(run['rss_mb']['peak'], 0)} "
                f"| {_fmt(run.get('rss_per_call_mb'))} "
                f"| {_fmt(run.get('rss_per_call_over_bare_mb'), signed=True)} "
                f"| {_fmt(run.get('slope_rss_mb_per_call'))} "
                f"| {_spread_ms(run.get('first_audio_s'))} | {hang_text} "
                f"| {_fmt(_median(job), 1)} / {_fmt(job['max'] if job else None, 1)} "
                f"| {delivered_text} | {errors + len((hang or {}).get('errors') or [])} |"
            )
    lines.append("")
    lines.append(
        "| config | N | peak RSS MB | RSS/call MB | over bare | RSS slope MB/call "
        "| first audio med / max ms | hung Roark: first audio med / max ms "
        "| hung Roark: job s med / max | delivered | call errors |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    lines.extend(rows2)
    for config, run in results.get("long_call", {}).items():
        lines.append("")
        if "failed" in run or "rss_mb" not in run:
            lines.append(f"Long call ({config}): failed: {run.get('failed')}")
            continue
        rss = run["rss_mb"]
        if run.get("mode") == "accelerated":
            roark_cpu = run.get("roark_threads_cpu_s")
            per_min = roark_cpu / run["minutes"] if roark_cpu is not None else None
            lines.append(
                f"Long call ({config}, accelerated: {run['minutes']:g} min of stamped 16 kHz "
                f"caller + 24 kHz agent audio fed straight into roark's worker in "
                f"{run['wall_s']:.1f} s, no LiveKit): RSS start {_fmt(rss['start'], 1)} MB, "
                f"after minute 1 {_fmt(rss['after_first_minute'], 1)} MB, end "
                f"{_fmt(rss['end'], 1)} MB; recording buffer high-water "
                f"{_fmt(run.get('recording_high_water_mb'))} MB; roark threads "
                f"{_fmt(per_min, 3)} CPU s per call-minute; delivered: {run.get('delivered')}; "
                f"samples dropped: {run.get('dropped_samples_before_end')}; contract "
                f"violations: {(run.get('delivery') or {}).get('violations')}"
            )
        else:
            lines.append(
                f"Long call ({config}, real time, {run['minutes']:g} min through an "
                f"AgentSession): RSS at 10 s {_fmt(rss.get('start'), 1)} MB, at 1 min "
                f"{_fmt(rss.get('after_first_minute'), 1)} MB, end {_fmt(rss.get('end'), 1)} MB"
            )
    notes = [
        f"  {config}: {note}"
        for config, entry in results["configs"].items()
        for note in entry.get("failures", [])[:6]
    ]
    if notes:
        lines.append("")
        lines.append("Failures (a configuration whose calls failed is not doing its full job):")
        lines.extend(notes)
    targets = results.get("targets") or {}
    if targets:
        lines.append("")
        lines.append("Targets for roark (vs bare, every N):")
        for name, t in targets.items():
            shown = {k: _round(v) for k, v in t.items() if k != "verdict"}
            lines.append(f"  {name}: {t['verdict']}  {json.dumps(shown)}")
    return "\n".join(lines)


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    return value


def machine_info() -> JSON:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "platform": platform.platform(),
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_start": _load(),
        "git_commit": _git(["rev-parse", "--short", "HEAD"]),
        # the figures are of the working tree, which may differ from the commit
        "roark_uncommitted": (_git(["status", "--porcelain", "--", "roark"]) or "").split("\n"),
    }


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _git(args: list[str]) -> str | None:
    if shutil.which("git") is None:
        return None
    proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return proc.stdout.strip() or None


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("expected positive integers, e.g. 1,8,32")
    return sorted(set(values))


def _configs(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    known = CONFIGS + EXTRA_CONFIGS
    unknown = [x for x in names if x not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown configs {unknown}; use {', '.join(known)}")
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_calls",
        description="The cost of observing calls: bare LiveKit, roark, the reference package.",
    )
    parser.add_argument("--out", default="bench-results.json", help="where to write the JSON")
    parser.add_argument("--n", type=_int_list, default=None, help="concurrent calls (1,8,32)")
    parser.add_argument("--call-seconds", type=float, default=None, help="caller audio (30)")
    parser.add_argument(
        "--hang-call-seconds", type=float, default=None, help="calls of the hung pass (10)"
    )
    parser.add_argument("--configs", type=_configs, default=list(CONFIGS))
    parser.add_argument("--long-minutes", type=float, default=None, help="0: no long call (10)")
    parser.add_argument(
        "--long-realtime",
        action="store_true",
        help="run the long call in real time through every configuration",
    )
    parser.add_argument(
        "--server",
        choices=("process", "inproc"),
        default="process",
        help="LocalRoark in this process (default) or inside each child",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter of the children")
    parser.add_argument("--quick", action="store_true", help="a tiny run, for smoke testing")
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="no unmeasured warm-up call in each child before the measured calls",
    )
    parser.add_argument(
        "--stagger",
        type=float,
        default=TURN_PERIOD,
        help=f"spread the N call starts over this many seconds ({TURN_PERIOD}; 0: lockstep)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every configuration and N this many times, interleaved; report the median",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        spec = ChildSpec(**json.loads(args.child))
        result = child_main(spec)
        Path(args.child_out).write_text(json.dumps(result))
        return 0

    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    quick = args.quick
    opts = Options(
        python=args.python,
        configs=args.configs,
        ns=args.n or ([1, 2] if quick else [1, 8, 32]),
        call_seconds=args.call_seconds or (12.0 if quick else 30.0),
        hang_call_seconds=args.hang_call_seconds or (6.0 if quick else 10.0),
        long_minutes=(
            args.long_minutes if args.long_minutes is not None else (1.0 if quick else 10.0)
        ),
        long_realtime=args.long_realtime,
        server=args.server,
        quick=quick,
        warmup_seconds=0.0 if args.no_warmup else 6.0,
        stagger=args.stagger,
        repeat=args.repeat,
    )
    results = run_all(opts)
    text = render(results)
    print(text)
    out = Path(args.out)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
