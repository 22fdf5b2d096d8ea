"""Running agent modules in LiveKit's own job processes, with fake jobs and a local Roark.

What a test needs around LiveKit's ``ProcPool`` (as LiveKit's ``tests/test_ipc.py`` drives
it, no LiveKit server): a *lab* (a local Roark, a spool folder and a truth folder, given to
the job processes through the environment; the agent module imported in this process as
the worker imports it), pools whose processes are watched (pid, when they became ready,
when LiveKit's shutdown clock started, how they ended), fake jobs, the processes' logs
(LiveKit forwards a job process's log records to the worker's logging), and what
``/proc`` says about a process (CPU, memory, sockets, file locks).

Job processes are started the way LiveKit starts them on Linux by default: forked from a
forkserver that preloaded LiveKit's own warm-up modules. A forkserver keeps the environment
it was started with, so each lab starts its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents import ipc, job
from livekit.agents.job import JobExecutorType
from livekit.protocol import agent, models

import roark
from roark.testing import LocalRoark

from .job_calls import TRUTH_DIR_ENV

# LiveKit's own defaults (AgentServer): the kill timer and the warm-up timeout
SHUTDOWN_PROCESS_TIMEOUT = 10.0
INITIALIZE_PROCESS_TIMEOUT = 10.0
# what AgentServer preloads in its forkserver when no plugin is registered
FORKSERVER_PRELOAD = ["livekit.agents.ipc._preload", "livekit.agents.ipc._preload_freeze"]
ROARK_AGENT = "tests.job_agent"
REPO = Path(__file__).resolve().parent.parent


# -- logs ---------------------------------------------------------------------------------


class LogRecords(logging.Handler):
    """Every record of the ``livekit`` and ``roark`` loggers, this process's and those the
    job processes forwarded (LiveKit stamps those with the executor's ``pid``)."""

    NAMES = ("livekit", "roark")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._levels: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in self.NAMES:
            self.records.append(record)

    def __enter__(self) -> LogRecords:
        # set before any process starts: a job process copies the worker's logger levels
        for name in self.NAMES:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.INFO)
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)

    def of(self, pid: int | None = None, *, level: int = logging.DEBUG) -> list[logging.LogRecord]:
        return [
            r
            for r in list(self.records)
            if r.levelno >= level and (pid is None or getattr(r, "pid", None) == pid)
        ]

    def messages(self, pid: int | None = None, *, level: int = logging.DEBUG) -> list[str]:
        return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in self.of(pid, level=level)]


def blamed_on_roark(record: logging.LogRecord) -> bool:
    """Whether a warning or error may be roark's doing: roark's own, and every LiveKit warning
    except a report of a blocked event loop (or a slow import on it) where the innermost
    sampled frame of the agent's or roark's code is not roark's: the agent (here the tests
    and roark's scripted test parts) or only LiveKit and the standard library were at work."""
    if not record.name.startswith("livekit"):
        return True
    stack, importing = getattr(record, "stack", None), getattr(record, "import", None)
    if stack is None and importing is None:
        return True
    frames = [ln for ln in str(stack or "").splitlines() if ln.lstrip().startswith("File ")]
    whose = [_whose_file(frame) for frame in frames]
    if importing:
        whose.append(_whose_module(str(importing)))
    for owner in reversed(whose):
        if owner is not None:
            return owner == "roark"
    return False


_ROARK_DIR = str(Path(roark.__file__).parent) + os.sep
_AGENT_DIRS = (_ROARK_DIR + "testing" + os.sep, str(Path(__file__).parent) + os.sep)


def _whose_file(frame: str) -> str | None:
    if any(folder in frame for folder in _AGENT_DIRS):
        return "agent"
    return "roark" if _ROARK_DIR in frame else None


def _whose_module(name: str) -> str | None:
    if name.startswith(("roark.testing", "tests.")):
        return "agent"
    return "roark" if name == "roark" or name.startswith("roark.") else None


# -- the lab ------------------------------------------------------------------------------


@dataclass
class Lab:
    """A local Roark, a spool and a truth folder that job processes are pointed at."""

    folder: Path
    server: LocalRoark
    logs: LogRecords
    agent_module: Any
    mp_context: str

    @property
    def spool(self) -> Path:
        return self.folder / "spool"

    @property
    def truth_dir(self) -> Path:
        return self.folder / "truth"

    def truth(self, room_sid: str) -> list[dict[str, Any]]:
        """What the job of ``room_sid`` wrote down so far."""
        path = self.truth_dir / f"{room_sid}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def truth_of(self, room_sid: str, kind: str) -> list[dict[str, Any]]:
        return [t for t in self.truth(room_sid) if t["kind"] == kind]


def lab_env(folder: Path, server: LocalRoark) -> dict[str, str]:
    return {
        "ROARK_API_KEY": server.api_key,
        "ROARK_BASE_URL": server.base_url,
        "ROARK_SPOOL_DIR": str(folder / "spool"),
        TRUTH_DIR_ENV: str(folder / "truth"),
        # LiveKit's warm-up would load its local VAD and turn detector: not used here
        "LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE": "0",
    }


@contextlib.contextmanager
def lab(
    folder: Path,
    *,
    agent_module: str = ROARK_AGENT,
    mp_context: str = "forkserver",
    faults: Callable[[LocalRoark], None] | None = None,
) -> Iterator[Lab]:
    """A lab in ``folder``: its own local Roark, environment and forkserver.

    The agent module is imported here as a worker imports it (``roark.configure()`` runs in
    this process too); at the end roark is shut down here and the forkserver stopped.
    """
    (folder / "truth").mkdir(parents=True, exist_ok=True)
    server = LocalRoark(recordings_dir=folder / "recordings").start()
    if faults is not None:
        faults(server)
    try:
        with _environment(lab_env(folder, server)), LogRecords() as logs:
            _stop_forkserver()
            try:
                module = _import_fresh(agent_module)
                yield Lab(folder, server, logs, module, mp_context)
            finally:
                _shutdown_roark_here()
                _stop_forkserver()
    finally:
        server.stop()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _stop_forkserver() -> None:
    # the forkserver keeps the environment it was started with; the next process started
    # after this starts a new one with the lab's (the stop is what CPython's own tests use)
    from multiprocessing import forkserver

    forkserver._forkserver._stop()  # type: ignore[attr-defined]


def _import_fresh(name: str) -> Any:
    module = sys.modules.get(name)
    return importlib.reload(module) if module is not None else importlib.import_module(name)


def _shutdown_roark_here() -> None:
    if "roark" in sys.modules:
        import roark

        roark.shutdown(timeout=2.0)


# -- pools and jobs -----------------------------------------------------------------------


@dataclass
class Proc:
    """One job process of a pool, as the pool reported it (``time.time()`` stamps)."""

    executor: Any
    pid: int | None = None
    created_at: float = 0.0
    ready_at: float | None = None
    #: when the process reported shutting down: LiveKit's kill timer counts from here
    shutting_down_at: float | None = None
    closed_at: float | None = None
    exitcode: int | None = None
    killed: bool = False
    job: job.RunningJobInfo | None = None

    @property
    def exit_after_shutting_down(self) -> float | None:
        if self.closed_at is None or self.shutting_down_at is None:
            return None
        return self.closed_at - self.shutting_down_at


@dataclass
class Pool:
    """A started ``ProcPool`` and what it said about its processes."""

    pool: ipc.proc_pool.ProcPool
    procs: list[Proc] = field(default_factory=list)

    def proc_of(self, info: job.RunningJobInfo) -> Proc:
        for proc in self.procs:
            if proc.job is info:
                return proc
        raise KeyError(info.job.id)

    def ready(self) -> list[Proc]:
        return [p for p in self.procs if p.ready_at is not None and p.job is None]

    async def launch(self, info: job.RunningJobInfo) -> Proc:
        await self.pool.launch_job(info)
        executor = next(p for p in self.pool.processes if p.running_job is info)
        proc = next(p for p in self.procs if p.executor is executor)
        proc.job = info
        return proc

    def stop_warming(self) -> None:
        """Start no more idle processes (as a worker at full load does)."""
        self.pool.set_target_idle_processes(0)

    async def aclose(self) -> None:
        await self.pool.aclose()


def _construct(cls: Callable[..., Any], **kwargs: Any) -> Any:
    # LiveKit's constructors gain and lose keyword arguments between 1.x releases
    params = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in kwargs.items() if k in params})


@contextlib.asynccontextmanager
async def pool(
    the_lab: Lab,
    *,
    idle: int,
    close_timeout: float = SHUTDOWN_PROCESS_TIMEOUT,
    user_arguments: dict[str, Any] | None = None,
) -> AsyncIterator[Pool]:
    """LiveKit's ``ProcPool`` with ``idle`` warm processes of the lab's agent module, started
    (every idle process ready) on entry and closed on exit, the way ``AgentServer`` runs it.

    ``user_arguments`` reach the agent module's ``prewarm`` as ``proc.user_arguments``."""
    mp_ctx = multiprocessing.get_context(the_lab.mp_context)
    if the_lab.mp_context == "forkserver":
        mp_ctx.set_forkserver_preload(FORKSERVER_PRELOAD)  # type: ignore[attr-defined]
    module = the_lab.agent_module
    procpool = _construct(
        ipc.proc_pool.ProcPool,
        initialize_process_fnc=module.prewarm,
        job_entrypoint_fnc=module.entrypoint,
        session_end_fnc=None,
        simulation_end_fnc=None,
        num_idle_processes=idle,
        initialize_timeout=INITIALIZE_PROCESS_TIMEOUT,
        close_timeout=close_timeout,
        session_end_timeout=300.0,
        inference_executor=None,
        job_executor_type=JobExecutorType.PROCESS,
        mp_ctx=mp_ctx,
        memory_warn_mb=1000.0,
        memory_limit_mb=0.0,
        http_proxy=None,
        loop=asyncio.get_running_loop(),
    )
    watched = Pool(procpool)
    _watch(watched, user_arguments)
    await procpool.start()
    try:
        await wait_until(lambda: len(watched.ready()) >= idle, 60.0, "idle processes ready")
        yield watched
    finally:
        await procpool.aclose()


def _watch(watched: Pool, user_arguments: dict[str, Any] | None) -> None:
    def created(executor: Any) -> None:
        executor.user_arguments = user_arguments
        watched.procs.append(Proc(executor, created_at=time.time()))

    def proc(executor: Any) -> Proc:
        return next(p for p in watched.procs if p.executor is executor)

    def started(executor: Any) -> None:
        entry = proc(executor)
        entry.pid = executor.pid
        # LiveKit's private future: resolved when the process says it is shutting down,
        # which is when the kill timer (close_timeout) starts
        executor._shutting_down_fut.add_done_callback(
            lambda _: setattr(entry, "shutting_down_at", time.time())
        )

    def ready(executor: Any) -> None:
        proc(executor).ready_at = time.time()

    def closed(executor: Any) -> None:
        entry = proc(executor)
        entry.closed_at = time.time()
        entry.exitcode = executor.exitcode
        entry.killed = executor.killed

    watched.pool.on("process_created", created)
    watched.pool.on("process_started", started)
    watched.pool.on("process_ready", ready)
    watched.pool.on("process_closed", closed)


def fake_job(script: str, *, hang_up: bool = False, **plan: Any) -> job.RunningJobInfo:
    """A job that needs no LiveKit server (LiveKit gives it a mock room)."""
    sid = f"RM_{uuid.uuid4().hex[:12]}"
    return _construct(
        job.RunningJobInfo,
        accept_arguments=job.JobAcceptArguments(name="", identity="agent", metadata=""),
        job=agent.Job(
            id=f"AJ_{uuid.uuid4().hex[:12]}",
            type=agent.JobType.JT_ROOM,
            room=models.Room(sid=sid, name=f"room-{sid[3:]}"),
            metadata=json.dumps({"script": script, "hang_up": hang_up, **plan}),
        ),
        url="",
        token="",
        worker_id="test-worker",
        fake_job=True,
    )


async def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` on the event loop until it is truthy; its value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.02)


def leave_orphans(the_lab: Lab, count: int) -> dict[str, str]:
    """``count`` calls left in the lab's spool by a process that died, for the lab's Roark
    (which refuses the key meanwhile, so that none of it arrives): ``{call id: kind}``."""
    the_lab.server.revoke_key()
    try:
        made = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.make_orphans",
                str(the_lab.spool),
                str(count),
                the_lab.server.base_url,
                the_lab.server.api_key,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    finally:
        the_lab.server.restore_key()
    return dict(line.split() for line in made.stdout.splitlines())


# -- /proc ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """RSS, PSS and USS of ``pid`` in MB: USS counts only the pages no other process shares
    (what the process itself costs), PSS shares each shared page among its sharers."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0])  # kB
    uss = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return {"rss": values["Rss"] / 1024, "pss": values["Pss"] / 1024, "uss": uss / 1024}


def socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:"):
                found.add(target)
    return found


def call_folders(spool: Path) -> list[Path]:
    """The call folders in a spool (hidden ones are being created)."""
    if not spool.exists():
        return []
    return [p for p in spool.iterdir() if p.is_dir() and not p.name.startswith(".")]


def spool_lock_holders(spool: Path) -> list[int]:
    """The pid holding a flock on each file of ``spool`` that has one (``/proc/locks``)."""
    holders = {}
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[4].isdigit():
            major, minor, inode = parts[5].split(":")
            holders[(int(major, 16), int(minor, 16), int(inode))] = int(parts[4])
    found = []
    for path in spool.rglob("*"):
        with contextlib.suppress(OSError):  # a file delivered (deleted) meanwhile
            stat = path.stat()
            key = (os.major(stat.st_dev), os.minor(stat.st_dev), stat.st_ino)
            if key in holders:
                found.append(holders[key])
    return found
