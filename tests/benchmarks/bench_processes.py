"""What LiveKit's process model costs with roark: job processes, bare against roark.

Run from the repository root::

    python -m tests.benchmarks.bench_processes --out bench-processes.json
    python -m tests.benchmarks.bench_processes --quick      # a smoke test of a few minutes
    python -m tests.benchmarks.bench_processes --long       # adds a 5-minute call

LiveKit's own ``ProcPool`` runs the agent module in forkserver job processes with fake jobs
(``tests/job_processes.py``), as a worker does on Linux by default. ``bare`` is
``tests/benchmarks/job_agent_bare.py`` (no roark at all), ``roark`` is ``tests/job_agent.py``
(``roark.configure()`` at import, the entrypoint observed); both run the same scripted
calls. The local Roark runs in this process. Every figure is measured for both in the same
run, ``--repeat`` times, interleaved; the table shows the median and the JSON every run:

- **import**: ``python -X importtime``: roark's cumulative import time in a process that
  already imported ``livekit.agents`` (as a job process has), and cold; ``configure()``'s
  wall time;
- **idle process**: from the pool creating a process to its being ready (fork, importing
  the agent module, LiveKit's warm-up); then, after settling, its RSS, USS (pages only it
  holds, ``/proc/<pid>/smaps_rollup``) and PSS, its CPU and threads;
- **calls**: N jobs at once, each in its own process, each a scripted call of
  ``--call-seconds`` that the caller hangs up: the job process's CPU from the job's launch
  to its exit (sampled every 20 ms until the process is gone), the time from the hang-up
  to the process's exit, the time from the entrypoint to the greeting's first played
  sample, and how late the loop handed out caller audio (the worst frame); once with the
  local Roark answering and once hanging every request (exit time only);
- **recovery at warm-up**: 0, 10 and 100 calls orphaned in the spool
  (``tests/make_orphans.py``) when an idle process starts: its time to ready, the time
  until every orphan reached Roark and the CPU that took; then, with fresh orphans, a job
  launched on the process as soon as it is ready: the same job figures as above.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import job_processes as jp
from .bench_calls import machine_info

JSON = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
VARIANTS = {"bare": "tests.benchmarks.job_agent_bare", "roark": jp.ROARK_AGENT}
# after an idle process is ready: roark's recovery pass is over and its threads parked
SETTLE = 2.0
CPU_POLL = 0.02
IDLE_PROCESSES = 2
BARE_IDLE = {"scripted": False}  # an idle process loads nothing for the scripted call
IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")

# the targets for roark over bare
TARGET_IDLE_MB = 5.0
TARGET_READY_MS = 50.0
TARGET_JOB_CPU_PCT = 2.0
TARGET_EXIT_S = 1.0


@dataclass(frozen=True)
class Options:
    repeat: int
    call_seconds: float
    hang_call_seconds: float
    concurrent: list[int]
    orphans: list[int]
    long_seconds: float | None


# -- import time ------------------------------------------------------------------------


def import_times(repeat: int) -> JSON:
    runs = []
    for _ in range(repeat):
        runs.append(
            {
                "after_livekit_s": _importtime("import livekit.agents; import roark"),
                "cold_s": _importtime("import roark"),
                "configure_s": _configure_time(),
            }
        )
    return {"runs": runs}


def _importtime(code: str) -> float:
    """roark's cumulative import time (seconds) under ``python -X importtime -c code``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    for line in proc.stderr.splitlines():
        match = IMPORTTIME.match(line)
        if match and match[4] == "roark" and not match[3]:
            return int(match[2]) / 1e6
    raise RuntimeError(f"no top-level roark import in:\n{proc.stderr[-2000:]}")


def _configure_time() -> float:
    code = (
        "import tempfile, time, roark\n"
        "t = time.perf_counter()\n"
        "roark.configure(api_key='k', base_url='http://127.0.0.1:9',"
        " spool_dir=tempfile.mkdtemp())\n"
        "print(time.perf_counter() - t)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return float(proc.stdout.split()[-1])


# -- idle processes ---------------------------------------------------------------------


async def start_forkserver(the_lab: jp.Lab) -> None:
    """A worker starts its forkserver once: a first process does, and is not measured."""
    async with jp.pool(the_lab, idle=1, user_arguments=BARE_IDLE):
        pass


async def idle_processes(the_lab: jp.Lab) -> list[JSON]:
    await start_forkserver(the_lab)
    async with jp.pool(the_lab, idle=IDLE_PROCESSES, user_arguments=BARE_IDLE) as pool:
        await asyncio.sleep(SETTLE)
        return [_idle_figures(proc) for proc in pool.procs]


def _idle_figures(proc: jp.Proc) -> JSON:
    assert proc.pid is not None and proc.ready_at is not None
    return {
        "ready_s": proc.ready_at - proc.created_at,
        **jp.memory_mb(proc.pid),
        "cpu_s": jp.cpu_seconds(proc.pid),
        "threads": len(os.listdir(f"/proc/{proc.pid}/task")),
    }


# -- calls in job processes -------------------------------------------------------------


async def calls(the_lab: jp.Lab, n: int, seconds: float, script: str = "bench") -> list[JSON]:
    """``n`` jobs at once, each a call of ``seconds`` that the caller hangs up."""
    async with jp.pool(the_lab, idle=n) as pool:
        pool.stop_warming()
        launched = []
        for _ in range(n):
            info = jp.fake_job(script, seconds=seconds, hang_up=True)
            proc = await pool.launch(info)
            assert proc.pid is not None
            launched.append((info, proc, jp.cpu_seconds(proc.pid)))
        last_cpu = await _cpu_until_exit([proc for _, proc, _ in launched])
    return [
        _job_figures(the_lab, info, proc, last_cpu[proc.pid] - cpu)
        for info, proc, cpu in launched
        if proc.pid is not None
    ]


async def _cpu_until_exit(procs: list[jp.Proc]) -> dict[int, float]:
    """Each process's CPU as last seen before it exited (sampled every CPU_POLL s)."""
    last: dict[int, float] = {}
    while not all(proc.closed_at for proc in procs):
        for proc in procs:
            if proc.pid is not None and not proc.closed_at:
                with contextlib.suppress(OSError, IndexError):
                    last[proc.pid] = jp.cpu_seconds(proc.pid)
        await asyncio.sleep(CPU_POLL)
    return last


def _job_figures(the_lab: jp.Lab, info: Any, proc: jp.Proc, job_cpu: float) -> JSON:
    sid = info.job.room.sid
    (started,) = the_lab.truth_of(sid, "started")
    hung_up = the_lab.truth_of(sid, "hang_up")
    played = the_lab.truth_of(sid, "played")
    segments = played[0]["segments"] if played else []
    received = the_lab.server.calls().get(sid)
    return {
        "job_cpu_s": job_cpu,
        "call_cpu_s": hung_up[0]["cpu"] - started["cpu"] if hung_up else None,
        "start_delay_s": started["at"] - info.launched_at,
        "first_audio_s": segments[0][0] - started["at"] if segments else None,
        "max_lateness_s": played[0]["max_lateness"] if played else None,
        "exit_after_end_s": proc.closed_at - hung_up[0]["at"] if hung_up else None,
        "exitcode": proc.exitcode,
        "killed": proc.killed,
        "delivered": bool(received and received.ended),
    }


# -- recovery at warm-up ----------------------------------------------------------------


async def make_orphans(the_lab: jp.Lab, count: int) -> None:
    """``count`` calls left in the lab's spool by a process that died."""
    if not count:
        return
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, lambda: jp.leave_orphans(the_lab, count))


async def recovery_idle(the_lab: jp.Lab, count: int) -> JSON:
    """An idle process starting on ``count`` orphans: until they all reached Roark."""
    await start_forkserver(the_lab)
    await make_orphans(the_lab, count)
    loop = asyncio.get_running_loop()
    async with jp.pool(the_lab, idle=1) as pool:
        proc = pool.procs[0]
        assert proc.pid is not None and proc.ready_at is not None
        await loop.run_in_executor(None, lambda: the_lab.server.wait_for_calls(count, timeout=300))
        delivered = time.time() - proc.ready_at
        await asyncio.sleep(SETTLE)
        return {
            "ready_s": proc.ready_at - proc.created_at,
            "delivered_after_ready_s": delivered if count else None,
            "cpu_s": jp.cpu_seconds(proc.pid),
        }


async def recovery_job(the_lab: jp.Lab, count: int) -> JSON:
    """A job given to a process as soon as it is ready, while it recovers ``count`` orphans."""
    await start_forkserver(the_lab)
    await make_orphans(the_lab, count)
    (figures,) = await calls(the_lab, 1, 0.0, script="short")
    return figures


# -- running it all ---------------------------------------------------------------------


def run_all(opts: Options, folder: Path) -> JSON:
    results: JSON = {"machine": machine_info(), "settings": vars(opts)}
    results["import"] = import_times(opts.repeat)
    results["idle"] = _per_variant(opts, folder, "idle", idle_processes)
    for n in opts.concurrent:
        results[f"calls_n{n}"] = _per_variant(
            opts, folder, f"calls{n}", lambda lab, n=n: calls(lab, n, opts.call_seconds)
        )
    results["calls_hanging"] = _per_variant(
        opts,
        folder,
        "hang",
        lambda lab: calls(lab, 1, opts.hang_call_seconds),
        faults=lambda server: server.set_faults(hang=True),
    )
    if opts.long_seconds:
        results["calls_long"] = _per_variant(
            opts, folder, "long", lambda lab: calls(lab, 1, opts.long_seconds)
        )
    results["recovery"] = _recoveries(opts, folder)
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _per_variant(
    opts: Options,
    folder: Path,
    name: str,
    measure: Callable[[jp.Lab], Any],
    faults: Callable[[Any], None] | None = None,
) -> JSON:
    runs: JSON = {variant: [] for variant in VARIANTS}
    for repeat in range(opts.repeat):
        for variant, module in VARIANTS.items():
            where = folder / f"{name}-{variant}-{repeat}"
            print(f"  {name}: {variant}, run {repeat + 1}", file=sys.stderr, flush=True)
            with jp.lab(where, agent_module=module, faults=faults) as the_lab:
                runs[variant].append(asyncio.run(measure(the_lab)))
    return runs


def _recoveries(opts: Options, folder: Path) -> JSON:
    runs: JSON = {str(count): [] for count in opts.orphans}
    for repeat in range(opts.repeat):
        for count in opts.orphans:
            print(f"  recovery: {count} orphans, run {repeat + 1}", file=sys.stderr, flush=True)
            # two labs: each batch of orphans has the same call ids
            with jp.lab(folder / f"recovery-{count}-{repeat}") as the_lab:
                idle = asyncio.run(recovery_idle(the_lab, count))
            with jp.lab(folder / f"recovery-job-{count}-{repeat}") as the_lab:
                job = asyncio.run(recovery_job(the_lab, count))
            runs[str(count)].append({"idle": idle, "job": job})
    return runs


# -- the table ---------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fig(runs: list[Any], key: str) -> float | None:
    """The median of ``key`` over every process of every run."""
    flat = [entry for run in runs for entry in (run if isinstance(run, list) else [run])]
    return _median([entry.get(key) for entry in flat])


def _fmt(value: float | None, scale: float = 1.0, signed: bool = False) -> str:
    if value is None:
        return "–"
    digits = 0 if abs(value * scale) >= 100 else 2
    return f"{value * scale:+.{digits}f}" if signed else f"{value * scale:.{digits}f}"


# (section, figure, label, unit, scale): the rows of the bare-against-roark table
IDLE_ROWS = (
    ("ready_s", "created to ready", "ms", 1000),
    ("rss", "RSS", "MB", 1),
    ("uss", "USS (its own pages)", "MB", 1),
    ("pss", "PSS", "MB", 1),
    ("threads", "threads", "", 1),
)
CALL_ROWS = (
    ("job_cpu_s", "job CPU, launch to exit", "s", 1),
    ("exit_after_end_s", "hang-up to exit", "s", 1),
    ("first_audio_s", "entrypoint to first audio", "ms", 1000),
    ("max_lateness_s", "worst caller frame late", "ms", 1000),
)


def _row(label: str, bare: float | None, roark: float | None, unit: str, scale: float) -> str:
    over = None if bare is None or roark is None else roark - bare
    cells = [_fmt(bare, scale), _fmt(roark, scale), f"{_fmt(over, scale, True)} {unit}"]
    return f"| {label} | " + " | ".join(cells) + " |"


def render(results: JSON) -> str:
    m, s = results["machine"], results["settings"]
    lines = [
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['platform']}, Python "
        f"{m['python']}; load average {m['load_average_start']} at the start, "
        f"{m.get('load_average_end')} at the end; median of {s['repeat']} run(s)",
        "",
        "| figure | bare | roark | roark over bare |",
        "|---|---|---|---|",
    ]
    imports = results["import"]["runs"]
    for key, label in (
        ("after_livekit_s", "import roark, livekit.agents already imported"),
        ("cold_s", "import roark, cold"),
        ("configure_s", "roark.configure()"),
    ):
        lines.append(_row(f"{label}, ms", 0.0, _fig(imports, key), "ms", 1000))
    for key, label, unit, scale in IDLE_ROWS:
        bare, roark = (_fig(results["idle"][v], key) for v in VARIANTS)
        lines.append(_row(f"idle process: {label}, {unit or 'count'}", bare, roark, unit, scale))
    lines.extend(_call_rows(results, s))
    lines.extend(_recovery_rows(results["recovery"]))
    lines.extend(["", "Targets (roark over bare):", *_targets(results)])
    return "\n".join(lines)


def _over(results: JSON, section: str, key: str) -> float | None:
    bare, roark = (_fig(results[section][v], key) for v in VARIANTS)
    return None if bare is None or roark is None else roark - bare


def _targets(results: JSON) -> list[str]:
    longest = "calls_long" if "calls_long" in results else "calls_n1"
    bare_cpu = _fig(results[longest]["bare"], "job_cpu_s")
    cpu_over = _over(results, longest, "job_cpu_s")
    checks = [
        ("idle process USS", _over(results, "idle", "uss"), TARGET_IDLE_MB, 1, "MB"),
        ("idle process ready", _over(results, "idle", "ready_s"), TARGET_READY_MS, 1000, "ms"),
        (
            f"job CPU ({longest})",
            None if cpu_over is None or not bare_cpu else 100 * cpu_over / bare_cpu,
            TARGET_JOB_CPU_PCT,
            1,
            "%",
        ),
        ("hang-up to exit", _over(results, "calls_n1", "exit_after_end_s"), TARGET_EXIT_S, 1, "s"),
    ]
    lines = []
    for label, value, target, scale, unit in checks:
        if value is None:
            lines.append(f"- {label}: not measured")
            continue
        verdict = "met" if value * scale <= target else f"missed by {value * scale - target:.2f}"
        lines.append(f"- {label}: {value * scale:+.2f} {unit} (at most +{target:g}): {verdict}")
    return lines


def _call_rows(results: JSON, s: JSON) -> list[str]:
    sections = [
        (f"calls_n{n}", f"{n} at once, {s['call_seconds']:g} s calls") for n in s["concurrent"]
    ]
    if "calls_long" in results:
        sections.append(("calls_long", f"1 job, a {s['long_seconds']:g} s call"))
    sections.append(("calls_hanging", f"Roark hanging, a {s['hang_call_seconds']:g} s call"))
    rows = []
    for section, title in sections:
        runs = results[section]
        for key, label, unit, scale in CALL_ROWS:
            bare, roark = (_fig(runs[v], key) for v in VARIANTS)
            rows.append(_row(f"{title}: {label}, {unit}", bare, roark, unit, scale))
        bare, roark = (_fig(runs[v], "job_cpu_s") for v in VARIANTS)
        if bare and roark:
            rows.append(f"| {title}: job CPU over bare | | | {100 * (roark / bare - 1):+.1f} % |")
    return rows


def _recovery_rows(recovery: JSON) -> list[str]:
    rows = [
        "",
        "| orphans in the spool | ready, ms | all delivered, s after ready | process CPU, s | "
        "job: launch to entrypoint, ms | job: entrypoint to first audio, ms | "
        "job: worst caller frame late, ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for count, runs in recovery.items():
        idle = [run["idle"] for run in runs]
        job = [run["job"] for run in runs]
        rows.append(
            f"| {count} | {_fmt(_fig(idle, 'ready_s'), 1000)} | "
            f"{_fmt(_fig(idle, 'delivered_after_ready_s'))} | {_fmt(_fig(idle, 'cpu_s'))} | "
            f"{_fmt(_fig(job, 'start_delay_s'), 1000)} | "
            f"{_fmt(_fig(job, 'first_audio_s'), 1000)} | "
            f"{_fmt(_fig(job, 'max_lateness_s'), 1000)} |"
        )
    return rows


# -- command line ------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_processes",
        description="What LiveKit's process model costs with roark: bare against roark.",
    )
    parser.add_argument("--out", default="bench-processes.json", help="where to write JSON")
    parser.add_argument("--repeat", type=int, default=None, help="runs of everything (2)")
    parser.add_argument("--call-seconds", type=float, default=None, help="each call (30)")
    parser.add_argument("--hang-call-seconds", type=float, default=None, help="(10)")
    parser.add_argument("--concurrent", type=_ints, default=None, help="jobs at once (1,8)")
    parser.add_argument("--orphans", type=_ints, default=[0, 10, 100], help="(0,10,100)")
    parser.add_argument("--long", action="store_true", help="add a 5-minute call")
    parser.add_argument("--quick", action="store_true", help="one run, 12 s calls, 1 and 3 jobs")
    parser.add_argument("--render", metavar="JSON", help="print the table of an earlier run")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return 0
    quick = args.quick
    opts = Options(
        repeat=args.repeat or (1 if quick else 2),
        call_seconds=args.call_seconds or (12.0 if quick else 30.0),
        hang_call_seconds=args.hang_call_seconds or (6.0 if quick else 10.0),
        concurrent=args.concurrent or ([1, 3] if quick else [1, 8]),
        orphans=args.orphans,
        long_seconds=300.0 if args.long else None,
    )
    with tempfile.TemporaryDirectory(prefix="bench-processes-") as folder:
        results = run_all(opts, Path(folder))
    print(render(results))
    out = Path(args.out)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
