"""Stories of the spool: crashed processes, shared folders, lost folders, the size cap."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import roark
from roark._config import Settings, resolve
from roark._handoff.records import AgentConfig, Message, Metric, ToolCall, Tools
from roark._threads import worker as worker_module
from roark._threads.recovery import PROCESS_DIED
from roark._threads.spool import CallSpool
from roark._threads.worker import Worker
from roark.testing import LocalRoark

from . import child_speaking as speaking
from .audio_checks import assert_speech_at
from .calls import GREETING, QUESTION
from .synthetic import SyntheticCall

ROOT = Path(__file__).resolve().parent.parent


def _child(server: LocalRoark, spool: Path, job_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.child_call",
            server.base_url,
            server.api_key,
            str(spool),
            job_id,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _call_id(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("CALL "):
            return line.split()[1]
    raise AssertionError("the child never started its call")


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def _worker_settings(server: LocalRoark, spool_dir: Path) -> Settings:
    return resolve(
        {"api_key": server.api_key, "base_url": server.base_url, "spool_dir": spool_dir},
        env={},
    )


def _remove_tree(folder: Path) -> None:
    # the processor may be writing into it meanwhile ("directory not empty"): until it is gone
    deadline = time.monotonic() + 5
    while folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not remove {folder}")


def _spooled_records(spool: Path) -> str:
    return "".join(p.read_text() for p in spool.glob("*/records.jsonl"))


def test_a_call_killed_mid_way_is_delivered_by_the_next_process(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    spool = tmp_path / "crash-spool"
    child = _child(roark_server, spool, "job-crash")
    call_id = _call_id(child)
    # kill it once the caller's question is spooled and some audio has gone out
    _wait(lambda: QUESTION in _spooled_records(spool), 30, "question never spooled")
    _wait(lambda: len(roark_server.call(call_id).chunk_puts) >= 1, 30, "no chunk arrived")
    killed_at = time.time()
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert roark_server.call(call_id).ended is None

    roark.configure(api_key=roark_server.api_key, base_url=roark_server.base_url, spool_dir=spool)
    received = roark_server.wait_for_call(call_id, timeout=30)
    assert received.reason == PROCESS_DIED
    assert received.ended_count == 1
    assert [t["content"] for t in received.transcript][:2] == [GREETING, QUESTION]
    assert sorted(set(received.chunk_puts)) == list(range(len(received.chunks)))
    started = received.started["eventTimestamp"]
    assert started
    # the recording reaches to within a chunk (2.7 s at 24 kHz) plus settling of the kill
    assert received.recording is not None
    assert received.duration_s > 2.0
    call_started = roark_server.call(call_id).started
    assert call_started is not None
    assert received.duration_s <= killed_at - _iso_seconds(started) + 0.5
    _wait(
        lambda: not any(p for p in spool.iterdir() if not p.name.startswith(".")),
        10,
        "spool not emptied",
    )


def test_a_process_killed_while_its_agent_speaks_keeps_the_turn_up_to_the_kill(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    spool = tmp_path / "speaking-spool"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.child_speaking", roark_server.base_url]
        + [roark_server.api_key, str(spool)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    t0 = float(child.stdout.readline().split()[1])
    assert child.stdout.readline().strip() == "PLAYING"
    # killed 2.5 s into the agent's turn of 6 s: its playback never reported finished
    _wait(lambda: time.time() >= t0 + speaking.AGENT_FROM + 2.5, 10, "the agent's turn")
    killed_at = time.time()
    child.kill()
    child.wait(10)

    roark.configure(api_key=roark_server.api_key, base_url=roark_server.base_url, spool_dir=spool)
    received = roark_server.wait_for_call(speaking.CALL_ID, timeout=30)
    assert received.reason == PROCESS_DIED
    assert received.recording is not None and received.sample_rate == speaking.RATE
    # a kill loses at most the last half second of the recording
    assert killed_at - t0 - 0.5 <= received.duration_s <= killed_at - t0
    # the caller where they spoke; the agent from where its turn began up to the kill
    agent = [(speaking.AGENT_FROM, received.duration_s)]
    assert_speech_at(received.recording, speaking.RATE, [speaking.CALLER_SPEAKS], agent, 0.03)
    assert received.chunk_puts == list(range(len(received.chunks)))


def test_what_a_call_said_is_on_disk_when_it_is_handed_over_not_at_the_next_pass(
    roark_server: LocalRoark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a kill loses what the processor has not written yet: a transcript entry, a tool call
    # or a metric must not wait for the next pass (here as far off as 60 s) to be written
    monkeypatch.setattr(worker_module, "CUT_INTERVAL", 60.0)
    roark_server.revoke_key()  # nothing leaves the spool meanwhile
    worker = Worker(_worker_settings(roark_server, tmp_path / "prompt"))
    try:
        call = SyntheticCall(worker, "RM_prompt", t0=time.time())
        records = tmp_path / "prompt" / call.key / "records.jsonl"
        said = time.time()
        call.post(Message("user", "Where is order 4217?", said, said + 1.0, False, None))
        _wait(lambda: records.exists() and "order 4217" in records.read_text(), 10, "entry")
        tool = ToolCall("call_1", "lookup_order", {"order_id": "4217"}, said + 1.2)
        call.post(Tools(calls=[tool], outputs=[]))
        _wait(lambda: "lookup_order" in records.read_text(), 10, "tool call")
        call.post(Metric(kind="llm", at=said + 1.1, fields={"ttft": 0.25}))
        _wait(lambda: '"ttft": 0.25' in records.read_text(), 10, "metric")
        call.post(AgentConfig(said + 1.3, "desk", "Help the caller.", ("lookup_order",)))
        _wait(lambda: "Help the caller." in records.read_text(), 10, "agent configuration")
    finally:
        worker.stop(0.2)
        roark_server.restore_key()


def _iso_seconds(stamp: str) -> float:
    from .audio_checks import parse_iso

    return parse_iso(stamp)


def test_two_live_processes_share_a_spool_folder_without_stealing(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    spool = tmp_path / "shared-spool"
    children = [_child(roark_server, spool, f"job-{i}") for i in range(2)]
    ids = [_call_id(child) for child in children]
    # a third process configuring on the same folder mid-call must not take their calls
    _wait(lambda: any(spool.glob("*/records.jsonl")), 20, "nothing spooled")
    roark.configure(api_key=roark_server.api_key, base_url=roark_server.base_url, spool_dir=spool)
    for child in children:
        assert child.wait(60) == 0
    for call_id in ids:
        received = roark_server.wait_for_call(call_id, timeout=20)
        assert received.started_count == 1 and received.ended_count == 1
        assert received.reason == "job-shutdown"
    roark_server.assert_no_violations()


def test_spool_cap_drops_the_oldest_whole_calls(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    roark_server.revoke_key()  # nothing leaves: the spool only grows
    settings = resolve(
        {
            "api_key": roark_server.api_key,
            "base_url": roark_server.base_url,
            "spool_dir": tmp_path / "capped",
            "spool_max_bytes": 4 * 1024 * 1024,
        },
        env={},
    )
    worker = Worker(settings)
    try:
        calls = []
        for n in range(3):  # each about 2.9 MB of recording
            call = SyntheticCall(worker, f"RM_cap_{n}", t0=time.time() - 30)
            call.feed(30.0)
            call.end()
            calls.append(call)
            _wait(
                lambda c=call: (tmp_path / "capped" / c.key / "zzz-ended.json").exists(),
                20,
                "call not spooled",
            )
        _wait(lambda: calls[0].done.done() and calls[1].done.done(), 20, "cap not enforced")
        assert calls[0].done.result() is False and calls[1].done.result() is False
        left = [p.name for p in (tmp_path / "capped").iterdir() if not p.name.startswith(".")]
        assert left == [calls[2].key]
        assert "dropped undelivered call RM_cap_0" in caplog.text
    finally:
        worker.stop(1.0)


def test_a_torn_record_line_is_never_sent(tmp_path: Path) -> None:
    spool = CallSpool(tmp_path, "k")
    spool.create()
    spool.append_record("transcript", {"content": "whole"})
    with open(tmp_path / "k" / "records.jsonl", "ab") as fh:
        fh.write(b'{"bucket": "transcript", "record": {"content": "to')
    assert spool.read_records() == [("transcript", {"content": "whole"})]
    spool.remove()


def test_a_spool_folder_lost_mid_call_falls_back_to_memory(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    settings = _worker_settings(roark_server, tmp_path / "lost")
    worker = Worker(settings)
    try:
        call = SyntheticCall(worker, "RM_lost_spool", t0=time.time() - 20)
        call.feed(6.0)
        folder = tmp_path / "lost" / call.key
        _wait(lambda: (folder / "records.jsonl").exists(), 10, "nothing spooled")
        _remove_tree(folder)  # a cleaner, a full disk: the folder is gone
        call.feed(20.0)
        call.end()
        assert call.done.result(timeout=20) is True
    finally:
        worker.stop(1.0)
    received = roark_server.wait_for_call("RM_lost_spool", timeout=10)
    # turns every 6 s: three questions and answers in 20 s, the last ones after the loss
    assert [t["content"] for t in received.transcript][-2:] == ["question 2", "answer 2"]
    assert len(received.transcript) == 6
    assert abs(received.duration_s - 20.0) < 0.05
    assert sorted(set(received.chunk_puts)) == list(range(len(received.chunks)))


def test_spooled_chunks_lost_with_their_folder_cost_the_recording_not_the_call(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    settings = _worker_settings(roark_server, tmp_path / "gone")
    roark_server.set_faults(error_rate=1.0)  # Roark down: the call's items pile up
    worker = Worker(settings)
    try:
        call = SyntheticCall(worker, "RM_gone", t0=time.time() - 30)
        call.feed(30.0)  # 30 s at 24 kHz stereo: 11 chunks of 256 KiB
        folder = tmp_path / "gone" / call.key
        _wait(lambda: len(list(folder.glob("c*.pcm"))) >= 10, 10, "chunks not spooled")
        # the next few items to send are also in memory; the rest only in the folder
        _remove_tree(folder)
        roark_server.clear_faults()
        call.end()
        assert call.done.result(timeout=30) is True
    finally:
        worker.stop(1.0)
    received = roark_server.wait_for_call("RM_gone", timeout=10)
    # call-started and chunks 0-2 were at hand; chunk 3 was lost: the recording ends there
    # (Roark would shift everything after a hole), and the conversation is all there
    assert received.chunk_puts == [0, 1, 2]
    assert received.ended["recordingSampleRate"] == 24000
    assert received.recording is not None
    assert received.recording.shape == (3 * settings.chunk_bytes // 4, 2)
    assert len(received.transcript) == 10
    assert [t["content"] for t in received.transcript][-2:] == ["question 4", "answer 4"]
