"""Stories of delivery under trouble: a Roark that fails, hangs, drops or refuses the key."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

import roark
from roark._threads.spool import ENDED, STARTED
from roark.testing import LocalRoark

from .calls import ANSWER, GREETING, QUESTION, ObservedRun, short_script

BUDGET = 1.5


@pytest.fixture
def roark_settings() -> dict[str, Any]:
    # a short shutdown budget, so a job facing a broken Roark ends quickly
    return {"shutdown_timeout": BUDGET}


def _complete(server: LocalRoark, run: ObservedRun, timeout: float = 30.0) -> None:
    received = server.wait_for_call(run.room_sid, timeout=timeout)
    assert [t["content"] for t in received.transcript] == [GREETING, QUESTION, ANSWER]
    assert [(t["kind"], t["toolCallId"]) for t in received.tool_calls] == [
        ("tool_call", "call_1"),
        ("tool_result", "call_1"),
    ]
    assert sorted(set(received.chunk_puts)) == list(range(len(received.chunks)))
    assert received.recording is not None
    assert abs(received.duration_s - len(received.recording) / received.sample_rate) < 1e-9
    assert received.ended["recordingSampleRate"] == received.sample_rate
    assert received.started_count >= 1 and received.ended_count >= 1


def test_a_hanging_roark_does_not_delay_the_agent(roark_server: LocalRoark) -> None:
    bare, observed = ObservedRun(), ObservedRun()

    async def both() -> None:
        await asyncio.gather(bare.run(decorate=False, job_id="bare"), observed.run())

    roark_server.set_faults(hang=True)
    asyncio.run(both())
    # the greeting plays as soon as without roark, and the job ends within the budget
    assert observed.first_audio_delay < 0.25
    assert abs(observed.first_audio_delay - bare.first_audio_delay) < 0.1
    assert observed.job_seconds < bare.job_seconds + BUDGET + 1.0
    assert roark_server.calls() == {}
    # once Roark answers again, the call (kept while the process lives) arrives whole
    roark_server.clear_faults()
    _complete(roark_server, observed)


def test_an_outage_for_the_whole_call_loses_nothing(roark_server: LocalRoark) -> None:
    run = ObservedRun()
    roark_server.set_faults(error_rate=1.0, error_status=503)
    asyncio.run(run.run())
    assert run.job_seconds < 30
    assert roark_server.calls() == {}
    roark_server.clear_faults()
    _complete(roark_server, run)


def test_thirty_percent_failures_on_every_endpoint(roark_server: LocalRoark) -> None:
    runs = [ObservedRun(short_script(f"Where is order {n}?")) for n in range(3)]

    async def all_calls() -> None:
        await asyncio.gather(*(r.run(job_id=f"job-{i}") for i, r in enumerate(runs)))

    roark_server.set_faults(error_rate=0.15, drop_rate=0.15, seed=7)
    asyncio.run(all_calls())
    for run in runs:
        received = roark_server.wait_for_call(run.room_sid, timeout=60)
        assert [t["role"] for t in received.transcript] == ["assistant", "user", "assistant"]
        assert sorted(set(received.chunk_puts)) == list(range(len(received.chunks)))
        assert received.recording is not None
    faulted = [r for r in roark_server.requests_log if r.fault in ("error", "drop")]
    assert {r.endpoint for r in faulted} == {"event", "upload_url", "put"}
    roark_server.assert_no_violations()


def test_a_revoked_key_is_one_clear_error_and_the_spool_is_kept(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    roark_server.revoke_key()
    run = ObservedRun()
    with caplog.at_level(logging.WARNING, logger="roark"):
        asyncio.run(run.run())
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("roark")
    ]
    assert len(errors) == 1
    assert "API key" in errors[0].getMessage()
    assert roark_server.api_key not in caplog.text
    # no retry flood: the first refused request pauses delivery
    assert len(roark_server.requests_log) <= 2
    spooled = [p for p in (tmp_path / "spool").iterdir() if not p.name.startswith(".")]
    assert len(spooled) == 1 and any(spooled[0].glob("c*.pcm"))

    # the key is fixed: the next process (here: the next configure) delivers the spooled call
    roark.shutdown(timeout=0.5)
    roark_server.restore_key()
    roark.configure(
        api_key=roark_server.api_key, base_url=roark_server.base_url, spool_dir=tmp_path / "spool"
    )
    _complete(roark_server, run)


def _spooled_call(spool: Path) -> list[str]:
    """The file names of the one call folder in ``spool``."""
    (folder,) = [p for p in spool.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("misdirected", ["a path segment too many", "a redirecting proxy"])
def test_a_wrong_destination_deletes_nothing_and_once_fixed_everything_arrives_once(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture, misdirected: str
) -> None:
    spool = tmp_path / "spool"
    if misdirected == "a path segment too many":
        roark.configure(
            api_key=roark_server.api_key,
            base_url=roark_server.base_url + "/api",
            spool_dir=spool,
            shutdown_timeout=BUDGET,
        )
        answered = "HTTP 404"
    else:
        roark_server.set_faults(error_rate=1.0, error_status=307, endpoints=["event", "upload_url"])
        answered = "HTTP 307"
    run = ObservedRun()
    with caplog.at_level(logging.WARNING, logger="roark"):
        asyncio.run(run.run())
        roark.shutdown(timeout=0.5)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "ROARK_BASE_URL" in errors[0].getMessage() and answered in errors[0].getMessage()
    assert roark_server.calls() == {}
    # nothing was given up: the call-started, every chunk and the call-ended wait in the spool
    names = _spooled_call(spool)
    assert STARTED in names and ENDED in names
    assert len([n for n in names if n.endswith(".pcm")]) >= 2

    # the URL is fixed (the next process, here the next configure): the call arrives whole, once
    roark_server.clear_faults()
    roark.configure(api_key=roark_server.api_key, base_url=roark_server.base_url, spool_dir=spool)
    _complete(roark_server, run)
    received = roark_server.call(run.room_sid)
    assert received.started_count == 1 and received.ended_count == 1
    assert received.chunk_puts == list(range(len(received.chunks)))
    assert received.chunk_puts == [int(n[1:-4]) for n in names if n.endswith(".pcm")]


def test_a_storage_host_that_refuses_the_presigned_url_keeps_the_chunks(
    roark_server: LocalRoark,
) -> None:
    # a 404 or a redirect on the PUT is about that presigned URL: each try asks a fresh one
    run = ObservedRun()
    roark_server.set_faults(error_rate=1.0, error_status=404, endpoints=["put"])
    asyncio.run(run.run())
    assert roark_server.calls()[run.room_sid].chunks == {}
    roark_server.clear_faults()
    _complete(roark_server, run)
