"""``roark dev`` over HTTP: the folder store across restarts, range requests, binding, the
key, and malformed input (the same contract errors as the test fixture's local Roark)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from roark.dev import analysis
from roark.dev import cli as dev_cli
from roark.dev.server import DevServer
from roark.dev.store import FolderInUseError
from roark.testing.server import EVENT_PATH, UPLOAD_URL_PATH, LocalRoark

from .test_local_roark import KEY, auth, ended, started, stereo_pcm

CID = "RM_dev_1"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / ".roark"


@pytest.fixture
def dev(folder: Path) -> Iterator[DevServer]:
    with DevServer(folder, api_key=KEY) as server:
        yield server


def post(url: str, body: bytes | Any, **headers: str) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    merged = {**auth(), "Content-Type": "application/json", **headers}
    return requests.post(url, data=data, headers=merged, timeout=10)


def deliver(base_url: str, cid: str, pcm: np.ndarray, ended_raw: bytes) -> None:
    """A whole call over HTTP, as roark sends it: started, chunks, ended (raw bytes)."""
    assert post(base_url + EVENT_PATH, started(cid)).status_code == 200
    for index, part in enumerate(np.array_split(pcm, 3)):
        body = {"livekitCallId": cid, "chunkIndex": index, "contentType": "audio/pcm"}
        upload = post(base_url + UPLOAD_URL_PATH, body).json()["data"]["uploadUrl"]
        put = requests.put(
            upload, data=part.tobytes(), headers={"Content-Type": "audio/pcm"}, timeout=10
        )
        assert put.status_code == 200
    reply = post(base_url + EVENT_PATH, ended_raw)
    assert reply.status_code == 200, reply.text


def pretty_ended(cid: str) -> bytes:
    # indented, keys in an unusual order: "as received" means these very bytes
    body = ended(cid, audio=True)
    return json.dumps(dict(reversed(list(body.items()))), indent=3).encode()


def test_calls_survive_a_restart(folder: Path) -> None:
    pcm, raw = stereo_pcm(1.5), pretty_ended(CID)
    with DevServer(folder, api_key=KEY) as server:
        deliver(server.base_url, CID, pcm, raw)
    with DevServer(folder, api_key=KEY) as server:
        (row,) = requests.get(server.base_url + "/api/calls", timeout=10).json()["calls"]
        reason = ended(CID, audio=True)["callEndedReason"]
        assert (row["id"], row["agent_id"], row["reason"]) == (CID, "support-bot", reason)
        assert row["whole"] is True and row["problems"] == []
        assert row["duration_s"] == 1.5 and row["turns"] == 1 and row["tool_calls"] == 1
        page = requests.get(server.base_url + f"/api/calls/{row['key']}", timeout=10).json()
        assert [t["content"] for t in page["transcript"]] == ["hello there"]
        assert page["metadata"] == {"customer": "acme", "tier": 2}
        raw_back = requests.get(server.base_url + page["downloads"]["call_ended"], timeout=10)
        assert raw_back.content == raw
        call = server.wait_for_call(CID, timeout=5)
        assert np.array_equal(call.recording, pcm)
        # a resent call-ended (its sender timed out) is kept, and finds the work done
        wav = server.store.call_folder(CID) / "recording.wav"
        stitched_at = wav.stat().st_mtime_ns
        assert post(server.base_url + EVENT_PATH, raw).status_code == 200
        assert server.store.received(CID).ended_count == 2
        assert wav.stat().st_mtime_ns == stitched_at
        # a chunk for the call now comes after its call-ended, even across the restart
        body = {"livekitCallId": CID, "chunkIndex": 3, "contentType": "audio/pcm"}
        post(server.base_url + UPLOAD_URL_PATH, body)
        assert any("after call-ended" in v for v in server.store.violations_of(CID))


def test_one_server_per_folder(folder: Path) -> None:
    with DevServer(folder, api_key=KEY) as first:
        # a second one here would keep its own upload URLs and answer the same call otherwise
        with pytest.raises(FolderInUseError) as refused:
            DevServer(folder, api_key=KEY)
        held = (
            f"{folder.resolve()} is already served by process {os.getpid()} (another roark "
            "dev?); stop it, or give this one another folder (--dir)"
        )
        assert str(refused.value) == held
        # and in another process, `roark dev` says so and exits
        cmd = [sys.executable, "-m", "roark", "dev", "--dir", str(folder), "--port", "0"]
        other = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert (other.returncode, other.stdout, other.stderr) == (1, "", f"roark dev: {held}\n")
        assert requests.get(first.base_url + "/api/calls", timeout=10).status_code == 200
    # stopped, it lets the folder go; so does a server never started
    idle = DevServer(folder, api_key=KEY)
    idle.stop()
    with DevServer(folder, api_key=KEY) as again:
        assert requests.get(again.base_url + "/api/calls", timeout=10).status_code == 200


def test_waiting_for_any_call_waits_for_one_that_ends_after_the_server_started(
    folder: Path,
) -> None:
    pcm = stereo_pcm(1.0)
    with DevServer(folder, api_key=KEY) as server:
        deliver(server.base_url, "RM_old", pcm, pretty_ended("RM_old"))
        assert server.wait_for_call(timeout=5).livekit_call_id == "RM_old"
    with DevServer(folder, api_key=KEY) as server:
        # the folder's calls from before are its history, not a call that just ended
        with pytest.raises(TimeoutError, match="no call-ended for any new call within 0.3 s"):
            server.wait_for_call(timeout=0.3)
        assert server.wait_for_call("RM_old", timeout=1).livekit_call_id == "RM_old"
        # each new call once, in the order they ended; a wait begun before a call ends gets it
        for cid in ("RM_a", "RM_b"):
            deliver(server.base_url, cid, pcm, pretty_ended(cid))
        assert [server.wait_for_call(timeout=5).livekit_call_id for _ in range(2)] == [
            "RM_a",
            "RM_b",
        ]
        got: list[str] = []
        waiting = threading.Thread(
            target=lambda: got.append(server.wait_for_call(timeout=10).livekit_call_id)
        )
        waiting.start()
        deliver(server.base_url, "RM_c", pcm, pretty_ended("RM_c"))
        waiting.join(15)
        assert got == ["RM_c"]


def test_a_folder_analysed_by_an_older_viewer_is_analysed_again(folder: Path) -> None:
    with DevServer(folder, api_key=KEY) as server:
        deliver(server.base_url, CID, stereo_pcm(1.5), pretty_ended(CID))
        kept = server.store.call_folder(CID) / "analysis.json"
    # what the first viewer kept: no version, no interruptions, no unmeasured turns
    old = json.loads(kept.read_text())
    for key in ("version", "interruptions", "latency_skipped"):
        del old[key]
    kept.write_text(json.dumps(old))
    with DevServer(folder, api_key=KEY) as server:
        page = requests.get(server.base_url + f"/api/calls/{CID}", timeout=10).json()
    assert page["analysis"]["version"] == analysis.VERSION
    assert page["analysis"]["interruptions"] == [] and "latency_skipped" in page["analysis"]
    assert json.loads(kept.read_text()) == page["analysis"]


def test_the_recording_is_served_with_range_requests(dev: DevServer) -> None:
    pcm = stereo_pcm(2.0)
    deliver(dev.base_url, CID, pcm, pretty_ended(CID))
    url = dev.call_url(CID).replace("/calls/", "/api/calls/") + "/recording.wav"
    whole = requests.get(url, timeout=10)
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"] == "audio/wav"
    size = len(whole.content)
    assert whole.content[-pcm.nbytes :] == pcm.tobytes()
    part = requests.get(url, headers={"Range": "bytes=1000-1999"}, timeout=10)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{size}"
    assert part.content == whole.content[1000:2000]
    tail = requests.get(url, headers={"Range": "bytes=-100"}, timeout=10)
    assert tail.status_code == 206 and tail.content == whole.content[-100:]
    beyond = requests.get(url, headers={"Range": f"bytes={size + 10}-"}, timeout=10)
    assert beyond.status_code == 416
    download = requests.get(url + "?download=1", timeout=10)
    assert download.headers["Content-Disposition"].startswith("attachment")


def test_ingest_needs_the_key_and_the_viewer_never_shows_it(folder: Path) -> None:
    with DevServer(folder) as server:
        key = server.api_key
        assert key.startswith("rk-local-") and len(key) > 20
        assert stat.S_IMODE(os.stat(folder / "api-key").st_mode) == 0o600
        url = server.base_url + EVENT_PATH
        anonymous = requests.post(url, json=started(CID), timeout=10)
        assert anonymous.status_code == 401
        nope = {"x-roark-api-key": "nope", "Authorization": "Bearer nope"}
        wrong = post(url, started(CID), **nope)
        assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "invalid API key"
        headers = {"x-roark-api-key": key, "Authorization": f"Bearer {key}"}
        assert post(url, started(CID), **headers).status_code == 200
        pages = ["/", "/api/calls", f"/calls/{CID}", f"/api/calls/{CID}", "/static/viewer.js"]
        for path in pages:
            answer = requests.get(server.base_url + path, timeout=10)
            assert answer.status_code == 200, path
            assert key not in answer.text, path
    with DevServer(folder) as again:  # the folder's key stays: the variables stay valid
        assert again.api_key == key
    assert (folder / ".gitignore").read_text() == "*\n"


def test_binds_loopback_by_default(dev: DevServer) -> None:
    assert dev.base_url.startswith("http://127.0.0.1:")
    port = int(dev.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    import argparse

    parser = argparse.ArgumentParser()
    dev_cli.add_arguments(parser)
    code = dev_cli.run(parser.parse_args(argv))
    return code, capsys.readouterr().err


def test_another_address_needs_a_flag_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(capsys, "--dir", str(tmp_path), "--host", "192.0.2.1")
    assert code == 2 and "--allow-remote" in err
    # TEST-NET-1 is on no interface here: the warning comes, then the bind fails
    code, err = run_cli(capsys, "--dir", str(tmp_path), "--host", "192.0.2.1", "--allow-remote")
    assert "WARNING: listening on 192.0.2.1" in err and "cannot listen" in err and code == 1


def test_the_cli_says_how_to_install_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dev_cli, "_NEEDED", ("aiohttp", "no_such_module_for_roark"))
    code, err = run_cli(capsys)
    assert code == 2 and 'pip install "roark[dev]"' in err and "no_such_module_for_roark" in err


def test_roark_dev_prints_the_variables_and_the_viewer(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "roark", "dev", "--dir", str(tmp_path / "calls"), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or not lines[-1].startswith("Viewer:"):
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, f"roark dev exited: {proc.stderr.read()}"  # type: ignore[union-attr]
            lines.append(line.strip())
        found = dict(line.split()[1].split("=", 1) for line in lines if line.startswith("export"))
        assert set(found) == {"ROARK_BASE_URL", "ROARK_API_KEY"}
        assert found["ROARK_API_KEY"] == (tmp_path / "calls" / "api-key").read_text().strip()
        assert lines[-1] == f"Viewer: {found['ROARK_BASE_URL']}/"
        assert (
            requests.get(found["ROARK_BASE_URL"] + "/api/calls", timeout=10).json()["calls"] == []
        )
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


# -------------------------------------------------------------------- malformed input

BAD_REQUESTS: list[tuple[str, str, bytes | None, dict[str, str]]] = [
    ("not JSON", EVENT_PATH, b"{nope", {}),
    ("a JSON array", EVENT_PATH, b"[1, 2]", {}),
    ("NaN", EVENT_PATH, json.dumps({**started(CID), "x": float("nan")}).encode(), {}),
    ("no event", EVENT_PATH, json.dumps({"livekitCallId": CID}).encode(), {}),
    (
        "bad fields",
        EVENT_PATH,
        json.dumps({**started(CID), "isTest": 1, "agentId": ""}).encode(),
        {},
    ),
    ("ended, no start", EVENT_PATH, json.dumps(ended("RM_other", audio=False)).encode(), {}),
    ("not UTF-8", EVENT_PATH, b"\xff\xfe{}", {}),
    ("wrong type", EVENT_PATH, json.dumps(started(CID)).encode(), {"Content-Type": "text/plain"}),
    (
        "bad upload",
        UPLOAD_URL_PATH,
        json.dumps({"livekitCallId": CID, "chunkIndex": -1}).encode(),
        {},
    ),
    ("unknown URL", "/_storage/not-a-token", b"\0\0\0\0", {"Content-Type": "audio/pcm"}),
]


def send(base_url: str, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    if path.startswith("/_storage/"):
        return requests.put(base_url + path, data=body, headers=headers, timeout=10)
    return post(base_url + path, body, **headers)


def test_malformed_input_gets_the_fixtures_errors_and_the_viewer_stays_up(
    dev: DevServer, tmp_path: Path
) -> None:
    with LocalRoark(api_key=KEY, recordings_dir=tmp_path / "fixture") as fixture:
        for name, path, body, headers in BAD_REQUESTS:
            want = send(fixture.base_url, path, body, headers)
            got = send(dev.base_url, path, body, headers)
            assert want.status_code >= 400, name
            assert (got.status_code, got.content) == (want.status_code, want.content), name
        # a chunked upload is refused as a storage host refuses it
        chunks = iter([b"\0\0", b"\0\0"])
        for server in (fixture, dev):
            refused = requests.put(server.base_url + "/_storage/x", data=chunks, timeout=10)
            assert refused.status_code == 411
            chunks = iter([b"\0\0", b"\0\0"])
    # garbage that is not even HTTP
    port = int(dev.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        sock.recv(1024)
    assert requests.get(dev.base_url + "/api/calls", timeout=10).status_code == 200
    assert requests.get(dev.base_url + "/", timeout=10).status_code == 200


def test_a_call_whose_chunk_was_refused_is_not_whole(dev: DevServer) -> None:
    assert post(dev.base_url + EVENT_PATH, started(CID)).status_code == 200
    body = {"livekitCallId": CID, "chunkIndex": 0, "contentType": "audio/pcm"}
    upload = post(dev.base_url + UPLOAD_URL_PATH, body).json()["data"]["uploadUrl"]
    odd = requests.put(upload, data=b"\0" * 6, headers={"Content-Type": "audio/pcm"}, timeout=10)
    assert odd.status_code == 400
    assert post(dev.base_url + EVENT_PATH, ended(CID, audio=False)).status_code == 200
    (row,) = requests.get(dev.base_url + "/api/calls", timeout=10).json()["calls"]
    assert row["whole"] is False
    assert row["problems"] == ["chunk(s) 0 asked for an upload URL but never stored"]
    page = requests.get(dev.base_url + f"/api/calls/{row['key']}", timeout=10).json()
    assert page["audio"] is None and page["violations"]
