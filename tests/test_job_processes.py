"""Stories of real job processes: LiveKit's own process pool runs ``tests/job_agent.py``.

By default LiveKit runs each job in its own process, taken from a pool of warm processes
forked from a forkserver; the agent module is imported (and ``roark.configure()`` runs) in
the worker and again in each job process. Here LiveKit's ``ProcPool`` does exactly that with
fake jobs (no LiveKit server): real processes, real signals, LiveKit's own shutdown timers,
and the local Roark over real HTTP in this process. Each scenario runs once, in a module
fixture, with its calls in flight together; each test reads one aspect of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import roark
from roark._threads.recording import INPUT_STALL
from roark.testing import LocalRoark, ReceivedCall

from . import job_processes as jp
from .audio_checks import assert_speech_at, parse_iso
from .job_calls import (
    ASK_NUMBER,
    GREETING,
    ORDER_QUESTION,
    ORDER_RESULT,
    QUESTION,
    SHIPPED,
)
from .make_orphans import orphan_id

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="LiveKit's default process model on Linux"
)

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 0.05  # seconds: where speech lands on the recording vs. when it really happened
# the job process is killed this long into its call, once two chunks reached Roark: the
# first exchange is over (committed a second before), the third chunk not cut yet
KILL_AFTER = 6.2
# a real room's disconnect takes a round trip to the server; LiveKit runs the shutdown
# callbacks (roark's among them) only after it, while its kill timer already runs
DISCONNECT_DELAY = 1.0
ORPHANS = 8
DELIVERED = re.compile(r"call (\S+) delivered \((\d+) transcript entries, (\d+) chunks\)")


@dataclass
class Job:
    """One job's process, what it wrote down, and what Roark received for it."""

    sid: str
    proc: jp.Proc
    truth: list[dict[str, Any]] = field(default_factory=list)
    received: ReceivedCall | None = None

    def items(self, before: float | None = None) -> list[tuple[str, str]]:
        """The transcript the job committed (before ``before``), as (role, text)."""
        return [
            (t["role"], t["text"])
            for t in self.truth
            if t["kind"] == "item" and (before is None or t["at"] < before)
        ]

    @property
    def played(self) -> dict[str, Any]:
        return [t for t in self.truth if t["kind"] == "played"][-1]

    @property
    def call(self) -> ReceivedCall:
        assert self.received is not None, f"nothing received for {self.sid}"
        return self.received

    @property
    def t0(self) -> float:
        """Wall time of the recording's first sample (call-started's timestamp)."""
        assert self.call.started is not None
        return parse_iso(self.call.started["eventTimestamp"])


@dataclass
class Outcome:
    """What a scenario left behind: its jobs, logs and the local Roark's view."""

    jobs: dict[str, Job]
    logs: list[logging.LogRecord]
    calls: dict[str, ReceivedCall]
    violations: list[str]
    facts: dict[str, Any] = field(default_factory=dict)

    def warnings_of(self, pid: int | None) -> list[str]:
        """Warnings and errors about one job process that may be roark's doing."""
        return [
            f"{r.levelname} {r.name}: {r.getMessage()}"
            for r in self.logs
            if r.levelno >= logging.WARNING
            and getattr(r, "pid", None) == pid
            and jp.blamed_on_roark(r)
        ]

    def roark_warnings(self) -> list[str]:
        return [
            f"{r.levelname} {r.name}: {r.getMessage()}"
            for r in self.logs
            if r.levelno >= logging.WARNING and r.name.startswith("roark")
        ]


def _assert_speech_placed(job: Job) -> None:
    """Speech is on the recording where the job's caller said it and its speaker played it."""
    call, played, t0 = job.call, job.played, job.t0
    assert call.recording is not None and call.sample_rate and call.duration_s
    end = call.duration_s
    user = [(on - t0, min(off - t0, end)) for on, off in played["turns_due"] if on - t0 < end]
    agent = [
        (start - t0, min(start - t0 + seconds, end))
        for start, seconds, _ in played["segments"]
        if seconds > 0 and start - t0 < end
    ]
    # a loop blocked for longer than INPUT_STALL had the caller taken as silent meanwhile:
    # what it held back may follow the part of the recording already cut
    late = played["max_lateness"]
    tolerance = TOLERANCE + (late if late > INPUT_STALL else 0.0)
    assert_speech_at(call.recording, call.sample_rate, user, agent, tolerance)


async def _received(the_lab: jp.Lab, sid: str, timeout: float = 30.0) -> ReceivedCall:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        None, lambda: the_lab.server.wait_for_call(sid, timeout=timeout)
    )


def _roark_has(the_lab: jp.Lab, sid: str) -> ReceivedCall | None:
    return the_lab.server.calls().get(sid)


async def _first_exchange(the_lab: jp.Lab, sids: list[str]) -> None:
    """Until each call's greeting, question and answer are committed."""
    await jp.wait_until(
        lambda: all(len(the_lab.truth_of(sid, "item")) >= 3 for sid in sids),
        60.0,
        "first exchange of every call",
    )


def _in_a_lab(
    factory: pytest.TempPathFactory,
    name: str,
    scenario: Callable[[jp.Lab], Awaitable[Outcome]],
    **options: Any,
) -> Outcome:
    """Run one scenario in a lab of its own, torn down before the tests read the outcome."""
    with jp.lab(factory.mktemp(name), **options) as the_lab:
        return asyncio.run(scenario(the_lab))


def _outcome(the_lab: jp.Lab, jobs: dict[str, Job], **facts: Any) -> Outcome:
    for job in jobs.values():
        job.truth = the_lab.truth(job.sid)
    return Outcome(
        jobs=jobs,
        logs=list(the_lab.logs.records),
        calls=the_lab.server.calls(),
        violations=the_lab.server.violations,
        facts=facts,
    )


# -- a worker's life: a normal call, a second worker starting, a deploy ---------------------


@pytest.fixture(scope="module")
def workers_life(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return _in_a_lab(tmp_path_factory, "life", _a_workers_life)


async def _a_workers_life(the_lab: jp.Lab) -> Outcome:
    async with jp.pool(the_lab, idle=4) as pool:
        pool.stop_warming()
        normal = jp.fake_job("short", hang_up=True)
        cut = [jp.fake_job("long") for _ in range(3)]
        jobs = {}
        for info in [normal, *cut]:
            jobs[info.job.room.sid] = Job(info.job.room.sid, await pool.launch(info))
        normal_job = jobs[normal.job.room.sid]
        cut_sids = [info.job.room.sid for info in cut]

        # the caller of the normal call hangs up: its process exits on its own
        normal_job.received = await _received(the_lab, normal_job.sid)
        await jp.wait_until(lambda: normal_job.proc.closed_at, 30.0, "the normal call's exit")

        # a second worker starts on the same spool (a restart on the same machine) while
        # the calls go on: its recovery pass must leave the live calls alone
        await jp.wait_until(
            lambda: all(_roark_has(the_lab, sid) for sid in cut_sids), 30.0, "calls started"
        )
        second = roark.configure()
        assert second.worker is not None
        await jp.wait_until(second.worker.recovered.is_set, 10.0, "second worker's recovery")
        sharing = _sharing(the_lab, [jobs[sid].proc.pid for sid in cut_sids])

        # the deploy: once each call had its first exchange, the worker closes its processes
        await _first_exchange(the_lab, cut_sids)
        closed_at = time.time()
        await pool.aclose()
        for sid in cut_sids:
            jobs[sid].received = await _received(the_lab, sid)
        second_worker = second.worker.stats.snapshot()
    return _outcome(
        the_lab,
        jobs,
        normal=normal_job.sid,
        cut=cut_sids,
        closed_at=closed_at,
        sharing=sharing,
        second_worker=second_worker,
    )


def _sharing(the_lab: jp.Lab, pids: list[int | None]) -> dict[str, Any]:
    """What this (worker) process and the job processes have in common, right now."""
    here = os.getpid()
    return {
        "worker_pid": here,
        "job_pids": pids,
        "shared_sockets": {
            pid: sorted(jp.socket_inodes(pid) & jp.socket_inodes(here)) for pid in pids if pid
        },
        "spool_lock_holders": jp.spool_lock_holders(the_lab.spool),
        "worker_roark_threads": {
            t.native_id for t in threading.enumerate() if t.name.startswith("roark-")
        },
        "job_tasks": {pid: set(os.listdir(f"/proc/{pid}/task")) for pid in pids if pid},
    }


def test_a_call_that_ends_normally_is_delivered_whole(workers_life: Outcome) -> None:
    job = workers_life.jobs[workers_life.facts["normal"]]
    call = job.call
    assert (call.started_count, call.ended_count) == (1, 1)
    assert call.agent_id == "order-desk" and call.metadata == {"tier": "gold"}
    assert call.started["jobId"].startswith("AJ_") and call.started["roomSid"] == job.sid
    # the caller hung up; LiveKit's runner closed the session, then ran the shutdown callbacks
    assert call.reason == "job-shutdown"
    assert [(t["role"], t["content"]) for t in call.transcript] == [
        ("assistant", GREETING),
        ("user", ORDER_QUESTION),
        ("assistant", SHIPPED),
    ]
    assert [(t["role"], t["content"]) for t in call.transcript] == job.items()
    tools = call.tool_calls
    assert [(t["kind"], t["toolCallId"]) for t in tools] == [
        ("tool_call", "call_1"),
        ("tool_result", "call_1"),
    ]
    assert json.loads(tools[0]["arguments"]) == {"order_id": "4217"}
    assert json.loads(tools[1]["content"]) == ORDER_RESULT and tools[1]["isError"] is False
    assert call.chunk_puts == list(range(len(call.chunks))) == call.upload_url_requests
    ended = call.ended
    assert abs(call.duration_s - (parse_iso(ended["callEndedAt"]) - job.t0)) < TOLERANCE
    _assert_speech_placed(job)
    assert workers_life.violations == []


def test_the_normal_call_s_process_exits_on_its_own_without_a_warning(
    workers_life: Outcome,
) -> None:
    job = workers_life.jobs[workers_life.facts["normal"]]
    # it exited while the pool was still running: nobody asked it to
    assert job.proc.closed_at < workers_life.facts["closed_at"]
    assert (job.proc.exitcode, job.proc.killed) == (0, False)
    assert workers_life.warnings_of(job.proc.pid) == []
    assert workers_life.roark_warnings() == []


def test_a_deploy_delivers_every_call_in_flight_up_to_the_cut(workers_life: Outcome) -> None:
    closed_at = workers_life.facts["closed_at"]
    for sid in workers_life.facts["cut"]:
        job = workers_life.jobs[sid]
        call = job.call
        assert (call.started_count, call.ended_count) == (1, 1)
        assert call.reason == "job-shutdown"
        # every turn committed before the deploy, exactly as said
        assert job.items(before=closed_at)[:3] == [
            ("assistant", GREETING),
            ("user", QUESTION),
            ("assistant", ASK_NUMBER),
        ]
        assert [(t["role"], t["content"]) for t in call.transcript] == job.items()
        assert call.chunk_puts == list(range(len(call.chunks))) == call.upload_url_requests
        # the recording reaches the cut, and speech sits where it was said and played
        ended_at = parse_iso(call.ended["callEndedAt"])
        assert ended_at >= closed_at
        assert abs(call.duration_s - (ended_at - job.t0)) < TOLERANCE
        _assert_speech_placed(job)
        # LiveKit asked each process to shut down; none had to be killed
        assert (job.proc.exitcode, job.proc.killed) == (0, False)
        assert workers_life.warnings_of(job.proc.pid) == []
    assert workers_life.roark_warnings() == []
    assert workers_life.violations == []


def test_worker_and_job_processes_share_nothing_and_deliver_once(workers_life: Outcome) -> None:
    sharing = workers_life.facts["sharing"]
    job_pids = sharing["job_pids"]
    # no socket of this (worker) process is open in a job process
    assert all(shared == [] for shared in sharing["shared_sockets"].values())
    # each live call's spool folder is locked by its own job process, none by the worker
    assert sorted(sharing["spool_lock_holders"]) == sorted(job_pids)
    # each job process runs its own roark threads, none of the worker's
    for sid in workers_life.facts["cut"]:
        job = workers_life.jobs[sid]
        (started,) = [t for t in job.truth if t["kind"] == "started"]
        threads = {name: tid for name, tid in started["threads"]}
        assert {"roark-processor", "roark-sender-0"} <= set(threads)
        assert {str(tid) for tid in threads.values()} <= sharing["job_tasks"][job.proc.pid]
        assert not set(threads.values()) & sharing["worker_roark_threads"]
    # the second worker's recovery pass took none of the live calls
    assert workers_life.facts["second_worker"] == {
        "audio_frames_dropped": 0,
        "calls": 0,
        "chunks": 0,
        "events": 0,
        "failures": 0,
    }
    for call in workers_life.calls.values():
        assert (call.started_count, call.ended_count) == (1, 1)
        assert call.reason != "process-died"
        assert call.chunk_puts == sorted(set(call.chunk_puts))


# -- an outage during a deploy, and a process killed mid-call ------------------------------


@pytest.fixture(scope="module")
def outage_and_kill(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return _in_a_lab(tmp_path_factory, "outage", _an_outage_and_a_kill)


async def _an_outage_and_a_kill(the_lab: jp.Lab) -> Outcome:
    async with jp.pool(the_lab, idle=2) as pool:
        pool.stop_warming()
        killed_info = jp.fake_job("long")
        outage_info = jp.fake_job("long", disconnect_delay=DISCONNECT_DELAY)
        killed = Job(killed_info.job.room.sid, await pool.launch(killed_info))
        outage = Job(outage_info.job.room.sid, await pool.launch(outage_info))
        await _first_exchange(the_lab, [killed.sid, outage.sid])

        t0 = parse_iso(the_lab.server.call(killed.sid).started["eventTimestamp"])
        await jp.wait_until(
            lambda: (
                len(the_lab.server.call(killed.sid).chunk_puts) >= 2
                and time.time() >= t0 + KILL_AFTER
            ),
            30.0,
            "two chunks of the call to kill",
        )
        killed_at = time.time()
        os.kill(killed.proc.pid, signal.SIGKILL)
        await jp.wait_until(lambda: killed.proc.closed_at, 10.0, "the killed process gone")

        # Roark stops answering; then the deploy closes the other process
        the_lab.server.set_faults(hang=True)
        await pool.aclose()
    the_lab.server.clear_faults()

    # the next worker's idle process finds both calls in the spool and delivers them
    async with jp.pool(the_lab, idle=1) as recovery:
        killed.received = await _received(the_lab, killed.sid)
        outage.received = await _received(the_lab, outage.sid)
        recoverer = recovery.procs[0].pid
    return _outcome(
        the_lab,
        {killed.sid: killed, outage.sid: outage},
        killed=killed.sid,
        outage=outage.sid,
        killed_at=killed_at,
        recoverer=recoverer,
    )


def test_an_outage_during_a_deploy_exits_in_time_and_is_delivered_later(
    outage_and_kill: Outcome,
) -> None:
    job = outage_and_kill.jobs[outage_and_kill.facts["outage"]]
    # LiveKit's kill timer starts when the process says it is shutting down; roark's callback
    # starts a room disconnect later, gives up inside the budget, and the process exits
    assert (job.proc.exitcode, job.proc.killed) == (0, False)
    assert job.proc.exit_after_shutting_down < jp.SHUTDOWN_PROCESS_TIMEOUT
    # roark's own word that the call stays spooled is the only warning about the process
    (warning,) = outage_and_kill.warnings_of(job.proc.pid)
    assert warning.startswith("WARNING roark") and f"{job.sid} was not delivered" in warning
    # the next process delivered it whole, from the spool, as it ended
    call = job.call
    assert (call.started_count, call.ended_count) == (1, 1)
    assert call.reason == "job-shutdown"
    assert [(t["role"], t["content"]) for t in call.transcript] == job.items()
    assert job.items()[:3] == [
        ("assistant", GREETING),
        ("user", QUESTION),
        ("assistant", ASK_NUMBER),
    ]
    assert call.chunk_puts == list(range(len(call.chunks))) == call.upload_url_requests
    assert abs(call.duration_s - (parse_iso(call.ended["callEndedAt"]) - job.t0)) < TOLERANCE
    _assert_speech_placed(job)
    assert outage_and_kill.violations == []


def test_a_killed_process_s_call_keeps_every_committed_turn(outage_and_kill: Outcome) -> None:
    job = outage_and_kill.jobs[outage_and_kill.facts["killed"]]
    killed_at = outage_and_kill.facts["killed_at"]
    call = job.call
    assert (job.proc.exitcode, job.proc.killed) == (-signal.SIGKILL, False)
    assert (call.started_count, call.ended_count) == (1, 1)
    assert call.reason == "process-died"
    assert [(t["role"], t["content"]) for t in call.transcript] == job.items(before=killed_at)
    assert len(call.transcript) == 3
    assert call.chunk_puts == list(range(len(call.chunks))) == call.upload_url_requests


def test_a_killed_process_s_call_loses_at_most_half_a_second_of_audio(
    outage_and_kill: Outcome,
) -> None:
    job = outage_and_kill.jobs[outage_and_kill.facts["killed"]]
    call = job.call
    lost = outage_and_kill.facts["killed_at"] - job.t0 - call.duration_s
    assert call.ended.get("recordingSampleRate") == 24000
    assert lost <= 0.5, f"{lost:.2f} s of audio before the kill is missing"


def test_what_roark_logs_about_a_recovered_call_is_what_roark_holds(
    outage_and_kill: Outcome,
) -> None:
    logged = {}
    for record in outage_and_kill.logs:
        match = DELIVERED.search(record.getMessage())
        if match and getattr(record, "pid", None) == outage_and_kill.facts["recoverer"]:
            logged[match[1]] = (int(match[2]), int(match[3]))
    held = {
        sid: (len(call.transcript), len(call.chunks)) for sid, call in outage_and_kill.calls.items()
    }
    assert set(logged) == set(outage_and_kill.jobs)
    assert logged == held


# -- several idle processes starting on a spool of orphaned calls ---------------------------


@pytest.fixture(scope="module")
def orphans_recovered(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    with jp.lab(tmp_path_factory.mktemp("orphans")) as the_lab:
        # after the worker's own recovery pass (at its import): these are the idle
        # processes' to find
        kinds = jp.leave_orphans(the_lab, ORPHANS)
        return asyncio.run(_recover_orphans(the_lab, kinds))


async def _recover_orphans(the_lab: jp.Lab, kinds: dict[str, str]) -> Outcome:
    async with jp.pool(the_lab, idle=3) as pool:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None, lambda: the_lab.server.wait_for_calls(len(kinds), timeout=60.0)
        )
        # quiet: every folder delivered and removed, nothing left for anyone to send again
        await jp.wait_until(lambda: not jp.call_folders(the_lab.spool), 30.0, "spool emptied")
        pids = [p.pid for p in pool.procs]
    return _outcome(the_lab, {}, kinds=kinds, pids=pids)


def test_idle_processes_starting_together_deliver_each_orphan_once(
    orphans_recovered: Outcome,
) -> None:
    kinds = orphans_recovered.facts["kinds"]
    assert sorted(kinds) == [orphan_id(n) for n in range(ORPHANS)]
    assert sorted(orphans_recovered.calls) == sorted(kinds)
    for sid, kind in kinds.items():
        call = orphans_recovered.calls[sid]
        assert (call.started_count, call.ended_count) == (1, 1), sid
        # every chunk asked for and put once, in order (a call still going on: two whole
        # chunks and the recording's tail)
        assert call.upload_url_requests == call.chunk_puts == [0, 1, 2], sid
        reason = "participant-disconnected" if kind == "ended" else "process-died"
        assert call.reason == reason
        assert [t["content"] for t in call.transcript] == ["question 0", "answer 0"]
    assert orphans_recovered.violations == []


def test_a_call_folder_whose_removal_was_cut_short_is_not_sent_again(tmp_path: Path) -> None:
    folder = tmp_path / "spool" / "5a0f1e2d"
    folder.mkdir(parents=True)
    # what the removal of a delivered call leaves once rmtree unlinked the lock file (the
    # first name in this folder's scandir order on ext4) but not the rest yet
    meta = {"callId": "RM_delivered", "startedAt": time.time() - 10, "key": folder.name}
    (folder / "meta.json").write_text(json.dumps({**meta, "chunks": 1}))
    (folder / "records.jsonl").write_text("")
    with LocalRoark() as server:
        client = roark.configure(
            api_key=server.api_key, base_url=server.base_url, spool_dir=folder.parent
        )
        try:
            assert client.worker is not None and client.worker.recovered.wait(10)
            roark.flush(5.0)
        finally:
            roark.shutdown(2.0)
        assert [f"{r.method} {r.path}" for r in server.requests_log] == []


# -- the same outage under the spawn start method --------------------------------------------


@pytest.fixture(scope="module")
def spawned_outage(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return _in_a_lab(tmp_path_factory, "spawn", _a_spawned_outage, mp_context="spawn")


async def _a_spawned_outage(the_lab: jp.Lab) -> Outcome:
    async with jp.pool(the_lab, idle=1) as pool:
        info = jp.fake_job("long")
        job = Job(info.job.room.sid, await pool.launch(info))
        await _first_exchange(the_lab, [job.sid])
        the_lab.server.set_faults(hang=True)
        await pool.aclose()
    the_lab.server.clear_faults()
    return _outcome(the_lab, {job.sid: job}, sid=job.sid)


def test_an_outage_during_a_deploy_under_spawn_exits_in_time(spawned_outage: Outcome) -> None:
    job = spawned_outage.jobs[spawned_outage.facts["sid"]]
    assert job.proc.killed is False, spawned_outage.warnings_of(job.proc.pid)
    assert job.proc.exit_after_shutting_down < jp.SHUTDOWN_PROCESS_TIMEOUT
