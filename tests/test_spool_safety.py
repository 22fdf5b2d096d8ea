"""Stories of a spool on a shared machine that never stops delivery.

Calls are left in a spool the way a process that stopped leaves them: a worker spools a call
while Roark refuses the key, then stops (its folder locks released, the call undelivered).
Then the spool is tampered with as a cleaner, a crash, a full disk or another user would, and
a new worker recovers it against the local Roark.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from roark._config import Settings, resolve
from roark._threads.worker import Worker
from roark.testing import LocalRoark

from .synthetic import SyntheticCall

QUARANTINE = ".quarantine"
CHUNK_BYTES = 256 * 1024
WEEK = 7 * 24 * 3600


def _settings(server: LocalRoark, spool: Path, **more: Any) -> Settings:
    given = {"api_key": server.api_key, "base_url": server.base_url, "spool_dir": spool}
    return resolve({**given, **more}, env={})


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)
    return value


def _call_folders(spool: Path) -> list[Path]:
    return sorted(p for p in spool.iterdir() if p.is_dir() and not p.name.startswith("."))


def _leave_call(
    server: LocalRoark,
    spool: Path,
    call_id: str,
    *,
    seconds: float = 6.0,
    ended: bool = True,
    expect_chunks: bool = True,
    **settings: Any,
) -> Path:
    """The folder of a call a stopped process left in ``spool``, never delivered.

    Spooled in a folder of its own, then moved into ``spool``: the worker's recovery pass
    must not touch the calls left before."""
    staging = spool.with_name(f"{spool.name}-{call_id}")
    server.revoke_key()
    worker = Worker(_settings(server, staging, **settings))
    try:
        call = SyntheticCall(worker, call_id, t0=time.time() - seconds)
        call.feed(seconds)
        folder = staging / call.key
        if ended:
            call.end()
            _wait(lambda: (folder / "zzz-ended.json").exists(), 10, "call not spooled")
        else:
            assert worker.sync(10)
            _wait(lambda: (folder / "meta.json").exists(), 10, "call not spooled")
            if expect_chunks:
                _wait(lambda: list(folder.glob("c*.pcm")), 10, "no chunk spooled")
    finally:
        worker.stop(0.2)
        server.restore_key()
    spool.mkdir(mode=0o700, exist_ok=True)
    os.rename(folder, spool / folder.name)
    shutil.rmtree(staging)
    return spool / folder.name


@contextlib.contextmanager
def _recovering(server: LocalRoark, spool: Path, **settings: Any) -> Iterator[Worker]:
    """A worker that starts on ``spool`` (its recovery pass done on entry)."""
    worker = Worker(_settings(server, spool, **settings))
    try:
        assert worker.recovered.wait(10)
        yield worker
    finally:
        worker.stop(1.0)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("roark")
    ]


# -- private -------------------------------------------------------------------------------


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_spool_folders_are_0700_and_files_0600_whatever_the_umask(
    roark_server: LocalRoark, tmp_path: Path, mask: int
) -> None:
    spool = tmp_path / "calls"
    with _umask(mask):
        with _recovering(roark_server, spool):
            pass  # roark makes the folder
        ended = _leave_call(roark_server, spool, "RM_private_ended")
        going_on = _leave_call(roark_server, spool, "RM_private_going_on", ended=False)
        _assert_private(spool, going_on / "records.jsonl", going_on / "c0000000.pcm")
        (going_on / "meta.json").write_text("{not json")  # recovery moves it aside
        with _recovering(roark_server, spool):
            roark_server.wait_for_call("RM_private_ended", timeout=10)
    assert not ended.exists()
    _assert_private(spool, spool / QUARANTINE / going_on.name / "records.jsonl")


def _assert_private(spool: Path, *expected: Path) -> None:
    seen = [spool, *spool.rglob("*")]
    assert set(expected) <= set(seen)
    for path in seen:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"


def test_a_spool_folder_of_another_user_is_refused(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a folder another user's takes root")
    spool = tmp_path / "theirs"
    spool.mkdir(mode=0o777)
    os.chown(spool, 65534, 65534)  # nobody's: whoever made it could read what goes in
    worker = Worker(_settings(roark_server, spool))
    try:
        call = SyntheticCall(worker, "RM_not_in_their_folder", t0=time.time() - 6)
        call.feed(6.0)
        call.end()
        assert call.done.result(timeout=20) is True  # delivered all the same, from memory
    finally:
        worker.stop(1.0)
    assert list(spool.iterdir()) == []
    assert any("belongs to another user" in w for w in _warnings(caplog))


# -- nothing followed through a link -------------------------------------------------------


def test_a_link_planted_where_roark_writes_never_reaches_its_target(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    spool = tmp_path / "calls"
    spool.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    # the names roark wrote to until now were predictable: a probe, and a temporary file
    # beside each file written in a call folder
    os.symlink(victim, spool / f".probe.{os.getpid()}")
    folder = _leave_call(roark_server, spool, "RM_planted", ended=False)
    os.symlink(victim, folder / f".zzz-ended.json.{os.getpid()}.tmp")
    os.symlink(victim, folder / f".meta.json.{os.getpid()}.tmp")
    with _recovering(roark_server, spool):
        received = roark_server.wait_for_call("RM_planted", timeout=10)
    assert received.reason == "process-died"
    assert victim.read_bytes() == b"precious"


def test_a_planted_orphan_whose_chunk_links_elsewhere_uploads_none_of_its_bytes(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "calls"
    secret = tmp_path / "secret.pcm"
    secret.write_bytes(b"SECRET!!" * (CHUNK_BYTES // 8))
    folder = _leave_call(roark_server, spool, "RM_linked_chunk", seconds=10.0)
    chunk = folder / "c0000001.pcm"
    chunk.unlink()
    os.symlink(secret, chunk)
    with _recovering(roark_server, spool):
        received = roark_server.wait_for_call("RM_linked_chunk", timeout=10)
    # the recording ends before the planted chunk (a hole would shift all after it)
    assert received.chunk_puts == [0]
    assert not any(b"SECRET!!" in data for data in received.chunks.values())
    assert [t["content"] for t in received.transcript][:2] == ["question 0", "answer 0"]
    (moved,) = (spool / QUARANTINE).iterdir()
    assert moved.is_symlink() and "c0000001.pcm" in moved.name
    assert any("c0000001.pcm" in w and "quarantine" in w for w in _warnings(caplog))


# -- spooled calls belong to their destination ---------------------------------------------


def _age(folder: Path, seconds: float) -> None:
    then = time.time() - seconds
    for path in [*folder.iterdir(), folder]:
        os.utime(path, (then, then), follow_symlinks=False)


def test_calls_spooled_for_another_destination_are_left_to_their_program(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "calls"
    caplog.set_level(logging.INFO, logger="roark")
    with LocalRoark(api_key="key-of-program-a") as a, LocalRoark(api_key="key-of-b") as b:
        mine = _leave_call(a, spool, "RM_of_a")
        also_mine = _leave_call(a, spool, "RM_of_a_too", ended=False)
        abandoned = _leave_call(a, spool, "RM_of_a_abandoned")
        _age(abandoned, WEEK + 3600)
        caplog.clear()
        with _recovering(b, spool) as worker:
            assert worker.flush(2.0)
        assert b.calls() == {} and b.requests_log == []
        assert sorted(_call_folders(spool)) == sorted([mine, also_mine])
        left = [r.getMessage() for r in caplog.records if "other destination" in r.getMessage()]
        assert len(left) == 1 and " 2 " in left[0] and "key-of" not in left[0]
        (removed,) = [w for w in _warnings(caplog) if "RM_of_a_abandoned" in w]
        assert "7 days" in removed and "key-of" not in removed
        # the same host with another key is another destination too
        a.api_key = "key-of-program-c"
        with _recovering(a, spool) as worker:
            assert worker.flush(2.0)
        assert a.calls() == {}
        a.api_key = "key-of-program-a"
        with _recovering(a, spool) as worker:
            assert worker.flush(10.0)
        for call_id in ("RM_of_a", "RM_of_a_too"):
            received = a.wait_for_call(call_id, timeout=10)
            assert (received.started_count, received.ended_count) == (1, 1)
        assert "RM_of_a_abandoned" not in a.calls()
    assert _call_folders(spool) == []


def test_a_call_s_destination_is_where_it_was_going_and_a_hash_of_the_key_not_the_path(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    folder = _leave_call(roark_server, tmp_path / "calls", "RM_destination", ended=False)
    meta = json.loads((folder / "meta.json").read_text())
    port = int(roark_server.base_url.rsplit(":", 1)[1])
    destination = meta["destination"]
    assert {k: destination[k] for k in ("scheme", "host", "port")} == {
        "scheme": "http",
        "host": "127.0.0.1",
        "port": port,
    }
    fingerprint = destination["key"]
    assert roark_server.api_key not in json.dumps(meta)
    assert fingerprint.startswith("sha256:") and len(fingerprint) > 20
    # a call spooled while the path was wrong is delivered once the path is fixed
    wrong_path = _leave_call(
        roark_server,
        tmp_path / "other-spool",
        "RM_destination_wrong_path",
        ended=False,
        expect_chunks=False,
        base_url=roark_server.base_url + "/wrong/",
    )
    assert json.loads((wrong_path / "meta.json").read_text())["destination"] == destination


# -- one bad record never stops recovery ---------------------------------------------------


def _corrupt(path: Path, data: bytes = b"\x00{not json") -> None:
    path.write_bytes(data)


def test_corrupt_and_wrong_shape_records_are_quarantined_and_the_rest_delivered(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "calls"
    bad_meta = _leave_call(roark_server, spool, "RM_bad_meta", ended=False)
    _corrupt(bad_meta / "meta.json")
    odd_meta = _leave_call(roark_server, spool, "RM_odd_meta", ended=False)
    meta = json.loads((odd_meta / "meta.json").read_text())
    (odd_meta / "meta.json").write_text(json.dumps({**meta, "startedAt": "yesterday"}))
    bad_started = _leave_call(roark_server, spool, "RM_bad_started")
    _corrupt(bad_started / "000-started.json")
    odd_record = _leave_call(roark_server, spool, "RM_odd_record", ended=False)
    with open(odd_record / "records.jsonl", "ab") as fh:
        fh.write(b'{"bucket": "transcript", "record": "not an entry"}\n')
        fh.write(b"\x00garbage\n")
        fh.write(b'{"bucket": "transcript", "record": {"role": "user"}}\n')
    bad_ended = _leave_call(roark_server, spool, "RM_bad_ended")
    _corrupt(bad_ended / "zzz-ended.json", b'{"event": "call-ended"}')
    _leave_call(roark_server, spool, "RM_intact")
    caplog.clear()
    with _recovering(roark_server, spool) as worker:
        assert worker.flush(10.0)
    calls = roark_server.calls()
    assert sorted(calls) == ["RM_bad_ended", "RM_bad_started", "RM_intact", "RM_odd_record"]
    for call_id, call in calls.items():
        assert (call.started_count, call.ended_count) == (1, 1), call_id
        assert [t["content"] for t in call.transcript] == ["question 0", "answer 0"], call_id
        assert call.chunk_puts == list(range(len(call.chunks))) and call.chunks, call_id
    # call-started rebuilt from the call's meta
    started = calls["RM_bad_started"].started
    assert started is not None
    assert (started["agentId"], started["isTest"]) == ("synthetic-agent", True)
    assert calls["RM_bad_ended"].reason == "process-died"
    assert calls["RM_intact"].reason == "participant-disconnected"
    roark_server.assert_no_violations()
    # nothing deleted: each unreadable record or folder is in the quarantine, named in a warning
    quarantined = sorted(p.name for p in (spool / QUARANTINE).iterdir())
    assert len(quarantined) == 5
    for folder, name in [
        (bad_meta, bad_meta.name),
        (odd_meta, odd_meta.name),
        (bad_started, "000-started.json"),
        (odd_record, "records.jsonl"),
        (bad_ended, "zzz-ended.json"),
    ]:
        assert any(q.startswith(folder.name) and name in q for q in quarantined), name
        assert any(name in w and "quarantine" in w for w in _warnings(caplog)), name
    assert _call_folders(spool) == []
    lines = next((spool / QUARANTINE).glob(f"{odd_record.name}*records.jsonl")).read_bytes()
    assert lines.count(b"\n") == 3 and b"not an entry" in lines


# -- a delete that fails -------------------------------------------------------------------


def _frozen(folder: Path) -> contextlib.AbstractContextManager[None]:
    """The folder made read-only (immutable for root, who ignores permissions)."""

    @contextlib.contextmanager
    def frozen() -> Iterator[None]:
        if os.geteuid() != 0:
            folder.chmod(0o500)
            try:
                yield
            finally:
                folder.chmod(0o700)
            return
        if shutil.which("chattr") is None:
            pytest.skip("no chattr to make a folder read-only as root")
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if made.returncode:
            pytest.skip(f"chattr +i failed: {made.stderr.decode().strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)

    return frozen()


def test_a_delete_that_fails_never_stalls_the_call_and_is_retried(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "calls"
    roark_server.set_faults(error_rate=1.0)  # items pile up in the spool
    worker = Worker(_settings(roark_server, spool))
    try:
        call = SyntheticCall(worker, "RM_read_only", t0=time.time() - 12)
        call.feed(8.0)
        folder = spool / call.key
        _wait(lambda: len(list(folder.glob("c*.pcm"))) >= 2, 10, "chunks not spooled")
        with _frozen(folder):
            roark_server.clear_faults()
            call.feed(12.0)
            call.end()
            assert call.done.result(timeout=30) is True
            assert folder.exists()
        removal = [w for w in _warnings(caplog) if "remov" in w]
        assert len(removal) == 1, removal
        # retried later: gone once the folder can be written again
        _wait(lambda: not folder.exists(), 15, "the folder was never removed")
    finally:
        worker.stop(1.0)
    received = roark_server.wait_for_call("RM_read_only", timeout=5)
    assert [t["content"] for t in received.transcript] == [
        "question 0",
        "answer 0",
        "question 1",
        "answer 1",
    ]
    assert received.chunk_puts == list(range(len(received.chunks)))
    assert abs(received.duration_s - 12.0) < 0.05


# -- the size cap is a bound ---------------------------------------------------------------


def _spool_bytes(spool: Path) -> int:
    """The bytes of every file in the spool (folders come and go while it is walked)."""
    total = 0
    for folder, _, names in os.walk(spool):
        for name in names:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(folder, name))
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
    return total


class _Peak:
    """The most bytes ``spool`` held while it was watched (a look every 5 ms)."""

    def __init__(self, spool: Path) -> None:
        self.bytes = 0
        self._spool = spool
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch)

    def _watch(self) -> None:
        while not self._done.is_set():
            self.bytes = max(self.bytes, _spool_bytes(self._spool))
            self._done.wait(0.005)

    def __enter__(self) -> _Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def test_the_spool_cap_holds_at_every_moment_of_an_outage(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "calls"
    cap = 1024 * 1024
    roark_server.set_faults(error_rate=1.0, error_status=503)  # every call is retried
    worker = Worker(_settings(roark_server, spool, spool_max_bytes=cap, retry_deadline=2.0))
    try:
        with _Peak(spool) as peak:
            calls = []
            for n in range(5):  # each 8 s of 24 kHz stereo: 0.77 MB
                call = SyntheticCall(worker, f"RM_capped_{n}", t0=time.time() - 8)
                call.feed(8.0)
                sent = len(roark_server.requests_log)
                call.end()
                assert worker.sync(10)
                calls.append(call)
                # its retries begin
                roark_server.wait_until(lambda s, n=sent: len(s.requests_log) > n, timeout=10)
            _wait(lambda: all(c.done.done() for c in calls[:-1]), 20, "older calls not dropped")
    finally:
        worker.stop(0.5)
    assert peak.bytes <= cap + CHUNK_BYTES, f"{peak.bytes} bytes on disk, cap {cap}"
    assert [c.done.result() for c in calls[:-1]] == [False] * 4
    dropped = [w for w in _warnings(caplog) if "dropped" in w]
    for n in range(4):
        assert any(f"RM_capped_{n}" in w for w in dropped), n
    assert not any("going on" in w for w in _warnings(caplog))
    assert _spool_bytes(spool) <= cap


# -- what is not roark's, and what roark already delivered ---------------------------------


def test_a_folder_of_the_user_s_own_in_the_spool_is_never_moved_sent_or_counted(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "calls"
    _leave_call(roark_server, spool, "RM_beside_the_user_s_folder")
    mine = spool / "my-notes"
    mine.mkdir()
    (mine / "notes.txt").write_bytes(b"x" * (2 * 1024 * 1024))  # over the whole cap
    (spool / "README.txt").write_text("the user's own file")
    with _recovering(roark_server, spool, spool_max_bytes=1024 * 1024) as worker:
        assert worker.flush(10.0)
        assert worker.spool.over_by() < 0  # the user's 2 MB are not roark's to count
    received = roark_server.wait_for_call("RM_beside_the_user_s_folder", timeout=5)
    assert [t["content"] for t in received.transcript] == ["question 0", "answer 0"]
    assert (mine / "notes.txt").stat().st_size == 2 * 1024 * 1024
    assert (spool / "README.txt").read_text() == "the user's own file"
    assert not (spool / QUARANTINE).exists()
    assert not any("my-notes" in w for w in _warnings(caplog))


def test_a_call_whose_meta_is_missing_is_moved_aside_not_deleted(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "calls"
    folder = _leave_call(roark_server, spool, "RM_no_meta")
    (folder / "meta.json").unlink()
    with _recovering(roark_server, spool) as worker:
        assert worker.flush(2.0)
    moved = spool / QUARANTINE / folder.name
    assert sorted(p.name for p in moved.iterdir()) == sorted(
        ["lock", "records.jsonl", "000-started.json", "zzz-ended.json"]
        + [f"c{i:07d}.pcm" for i in range(3)]
    )
    assert any(folder.name in w and "meta.json is missing" in w for w in _warnings(caplog))


def test_a_records_file_that_is_not_a_regular_file_costs_the_records_not_the_call(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "calls"
    folder = _leave_call(roark_server, spool, "RM_records_fifo", ended=False)
    audio = [*folder.glob("c*.pcm"), *folder.glob("t*.pcm")]
    seconds = sum(p.stat().st_size // 4 for p in audio) / 24000
    (folder / "records.jsonl").unlink()
    os.mkfifo(folder / "records.jsonl")  # planted: reading it would block, and it is no file
    with _recovering(roark_server, spool) as worker:
        assert worker.flush(10.0)
    received = roark_server.wait_for_call("RM_records_fifo", timeout=5)
    assert (received.started_count, received.ended_count) == (1, 1)
    assert received.reason == "process-died"
    assert received.transcript == [] and received.tool_calls == []
    assert received.chunk_puts == list(range(len(received.chunks))) and received.chunks
    assert received.duration_s == seconds  # all that was spooled: the chunks and the tail
    roark_server.assert_no_violations()
    (moved,) = (spool / QUARANTINE).iterdir()
    assert "records.jsonl" in moved.name and stat.S_ISFIFO(moved.lstat().st_mode)
    assert any("records" in w and "quarantine" in w for w in _warnings(caplog))


def _rewrite_json(path: Path, change: Callable[[Any], None]) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))  # ensure_ascii: lone surrogates as \udcxx escapes


def test_spooled_text_utf8_cannot_encode_is_delivered_with_replacement_characters(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    spool = tmp_path / "calls"
    # each would otherwise fail to encode on every try: retried forever, or the whole call
    # moved aside
    started = _leave_call(roark_server, spool, "RM_odd_started")
    _rewrite_json(started / "000-started.json", lambda e: e.update(agentId="desk\udcff"))
    ended = _leave_call(roark_server, spool, "RM_odd_ended")
    _rewrite_json(ended / "zzz-ended.json", lambda e: e["transcript"][0].update(content="q\ud800"))
    records = _leave_call(roark_server, spool, "RM_odd_record", ended=False)
    lines = (records / "records.jsonl").read_text().splitlines()
    entry = json.loads(lines[0])
    assert entry["bucket"] == "transcript"
    entry["record"]["content"] = "question \udc80"
    (records / "records.jsonl").write_text("\n".join([json.dumps(entry), *lines[1:]]) + "\n")
    with _recovering(roark_server, spool) as worker:
        assert worker.flush(10.0)
    calls = roark_server.calls()
    assert calls["RM_odd_started"].started["agentId"] == "desk\ufffd"
    assert calls["RM_odd_ended"].transcript[0]["content"] == "q\ufffd"
    assert calls["RM_odd_record"].transcript[0]["content"] == "question \ufffd"
    for call in calls.values():
        assert (call.started_count, call.ended_count) == (1, 1)
    roark_server.assert_no_violations()
    assert _call_folders(spool) == []


def test_a_delivered_call_whose_folder_could_not_be_removed_is_never_sent_again(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "calls"
    worker = Worker(_settings(roark_server, spool))
    try:
        call = SyntheticCall(worker, "RM_delivered_read_only", t0=time.time() - 12)
        call.feed(4.0)
        folder = spool / call.key
        _wait(lambda: list(folder.glob("t*.pcm")), 10, "no tail spooled")
        with _frozen(folder):
            call.feed(12.0)
            call.end()
            assert call.done.result(timeout=30) is True
            worker.stop(1.0)  # the process ends with the folder still there
            # what is left looks like a call killed mid-way: its meta, records and tail
            assert folder.exists() and list(folder.glob("t*.pcm"))
            requests = len(roark_server.requests_log)
            with _recovering(roark_server, spool) as again:
                assert again.flush(2.0)
            assert len(roark_server.requests_log) == requests  # nothing sent again
        with _recovering(roark_server, spool) as again:
            assert again.flush(2.0)
        assert not folder.exists() and not list((spool / ".notes").iterdir())
    finally:
        worker.stop(0.2)
    received = roark_server.wait_for_call("RM_delivered_read_only", timeout=5)
    assert (received.started_count, received.ended_count) == (1, 1)
    assert received.chunk_puts == list(range(len(received.chunks)))
    assert abs(received.duration_s - 12.0) < 0.05
    assert len(roark_server.requests_log) == requests


# -- a base URL that is not Roark's API ------------------------------------------------------


def test_calls_spooled_behind_a_redirect_go_once_the_url_is_fixed_to_another_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "calls"
    with (
        LocalRoark(api_key="rk-the-key-0123") as proxy,
        LocalRoark(api_key="rk-the-key-0123") as roark_api,
    ):
        proxy.set_faults(error_rate=1.0, error_status=301)  # redirects everything elsewhere
        worker = Worker(_settings(proxy, spool))
        try:
            calls = [
                SyntheticCall(worker, f"RM_redirected_{n}", t0=time.time() - 6) for n in range(2)
            ]
            for call in calls:
                call.feed(6.0)
                call.end()
            _wait(lambda: worker.stats.get("destination_refused"), 10, "never refused")
        finally:
            worker.stop(0.5)
        assert len(_call_folders(spool)) == 2 and proxy.calls() == {}
        # another key on the fixed host: not its calls
        roark_api.api_key = "rk-another-key-9"
        with _recovering(roark_api, spool) as other:
            assert other.flush(2.0)
        assert roark_api.requests_log == [] and len(_call_folders(spool)) == 2
        roark_api.api_key = "rk-the-key-0123"
        caplog.clear()
        caplog.set_level(logging.INFO, logger="roark")
        with _recovering(roark_api, spool) as fixed:
            assert fixed.flush(10.0)
        for call in calls:
            received = roark_api.wait_for_call(call.call_id, timeout=5)
            assert (received.started_count, received.ended_count) == (1, 1)
            assert [t["content"] for t in received.transcript] == ["question 0", "answer 0"]
            assert received.chunk_puts == [0, 1, 2]
        roark_api.assert_no_violations()
    assert _call_folders(spool) == []
    # the proxy's refusal stays noted (7 days): a process still sending there may spool more
    assert [p.name[:8] for p in (spool / ".notes").iterdir()] == ["refused."]
    said = [r.getMessage() for r in caplog.records if "not Roark's API" in r.getMessage()]
    assert len(said) == 2 and all("127.0.0.1" in s for s in said)


# -- the spool folder itself -----------------------------------------------------------------


def test_a_spool_folder_others_can_write_to_is_made_private(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    spool = tmp_path / "calls"
    spool.mkdir()
    spool.chmod(0o777)
    with _recovering(roark_server, spool):
        pass
    assert stat.S_IMODE(spool.stat().st_mode) == 0o755


def test_a_spool_folder_linked_by_another_user_is_refused(
    roark_server: LocalRoark, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() != 0:
        pytest.skip("a link of another user's takes root to make")
    target = tmp_path / "my-folder"
    target.mkdir()
    link = tmp_path / "spool-link"
    os.symlink(target, link)
    os.lchown(link, 65534, 65534)  # planted by nobody (in a shared /tmp, say)
    with _recovering(roark_server, link) as worker:
        assert worker.spool.root is None
    assert list(target.iterdir()) == []
    assert any("link that belongs to another user" in w for w in _warnings(caplog))


def test_the_spool_cap_holds_for_processes_that_share_the_folder(
    roark_server: LocalRoark, tmp_path: Path
) -> None:
    spool = tmp_path / "calls"
    cap = 1024 * 1024
    roark_server.set_faults(error_rate=1.0, error_status=503)
    # three workers, each with its own count of the folder, as three job processes have
    workers = [Worker(_settings(roark_server, spool, spool_max_bytes=cap)) for _ in range(3)]
    try:
        with _Peak(spool) as peak:
            t0 = time.time()
            calls = [SyntheticCall(w, f"RM_shared_{n}", t0=t0) for n, w in enumerate(workers)]
            # three calls of 8 s at 24 kHz, fed as they happen: together 2.3 MB, over the
            # cap, while each process alone stays under it
            for step in range(1, 21):
                time.sleep(max(0.0, t0 + step * 0.4 - time.time()))
                for call in calls:
                    call.feed(step * 0.4)
            for worker in workers:
                assert worker.sync(10)
    finally:
        for worker in workers:
            worker.stop(0.2)
    assert peak.bytes > cap // 2  # all wrote
    assert peak.bytes <= cap + CHUNK_BYTES, f"{peak.bytes} bytes on disk, cap {cap}"
