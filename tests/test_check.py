"""``roark check``: a read-only diagnostic that asks Roark with the key.

It exits 0 only when the settings are valid and Roark answered with the key; a bad key, a
wrong path and a Roark that cannot be reached each have their own message and exit code; it
creates no spool folder and starts no thread; it says what waits in the spool, and never
prints the key.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from roark import _check
from roark._cli import main
from roark._threads.spool import Destination
from roark.testing import LocalRoark


@pytest.fixture
def server() -> Iterator[LocalRoark]:
    with LocalRoark(api_key="rk-check-0123456789") as running:
        yield running


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_with(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    spooled: bool = False,
    **env: str,
) -> tuple[int, str]:
    for name in list(os.environ):
        if name.startswith("ROARK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ROARK_SPOOL_DIR", str(tmp_path / "spool"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["check"])
    out, err = capsys.readouterr()
    # read-only: no worker thread, no spool folder made
    assert [t.name for t in threading.enumerate() if t.name.startswith("roark")] == []
    assert (tmp_path / "spool").exists() is spooled
    return code, out + err


def test_a_good_key_and_url_exit_0_and_the_key_is_never_printed(
    server: LocalRoark,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    code, text = _check_with(
        monkeypatch,
        capsys,
        tmp_path,
        ROARK_API_KEY=server.api_key,
        ROARK_BASE_URL=server.base_url,
    )
    assert code == _check.OK == 0
    assert "Roark accepted the key" in text
    assert f"base_url: {server.base_url}" in text and "api_key: set" in text
    assert server.api_key not in text
    assert f"spool: {tmp_path / 'spool'}: does not exist yet, no call waiting" in text
    # one harmless request, and no contract violation for it
    assert [(r.method, r.path, r.status) for r in server.requests_log] == [
        ("POST", "/v1/integrations/livekit-sdk", 400)
    ]
    assert server.violations == []


def test_a_bad_key_exits_with_its_own_code(
    server: LocalRoark,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    code, text = _check_with(
        monkeypatch,
        capsys,
        tmp_path,
        ROARK_API_KEY="rk-not-the-right-one",
        ROARK_BASE_URL=server.base_url,
    )
    assert code == _check.KEY_REFUSED == 4
    assert "refused the key (HTTP 401)" in text and "ROARK_API_KEY" in text
    assert "rk-not-the-right-one" not in text


def test_a_wrong_path_exits_with_its_own_code(
    server: LocalRoark,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    code, text = _check_with(
        monkeypatch,
        capsys,
        tmp_path,
        ROARK_API_KEY=server.api_key,
        ROARK_BASE_URL=server.base_url + "/api",
    )
    assert code == _check.WRONG_URL == 5
    assert f"ROARK_BASE_URL={server.base_url}/api does not lead to Roark's API" in text
    assert "HTTP 404" in text


def test_no_roark_listening_exits_with_its_own_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    code, text = _check_with(
        monkeypatch, capsys, tmp_path, ROARK_API_KEY="rk-whatever-key", ROARK_BASE_URL=url
    )
    assert code == _check.UNREACHABLE == 6
    assert f"cannot reach Roark at {url}" in text


@pytest.mark.parametrize(
    ("env", "code", "says"),
    [
        ({"ROARK_BASE_URL": "ftp://api.roark.ai"}, 2, "invalid ROARK_BASE_URL"),
        ({}, 3, "ROARK_API_KEY is not set"),
        ({"ROARK_API_KEY": "k", "ROARK_OBSERVABILITY_ENABLED": "off"}, 3, "turned off"),
    ],
)
def test_settings_that_cannot_observe_exit_before_asking_roark(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    env: dict[str, str],
    code: int,
    says: str,
) -> None:
    got, text = _check_with(monkeypatch, capsys, tmp_path, **env)
    assert got == code and says in text


def test_it_says_what_waits_in_the_spool_and_for_whom(
    server: LocalRoark,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    where = {"scheme": "https", "host": "api.roark.ai", "port": 443, "key": "sha256:0f1e2d"}
    ours = Destination.of(server.base_url, server.api_key).as_json()
    for name, meta in [
        ("a" * 32, {"startedAt": 1.0, "callId": "RM_a", "destination": where}),
        ("b" * 32, {"startedAt": 2.0, "callId": "RM_b", "destination": where}),
        ("c" * 32, {"startedAt": 3.0, "callId": "RM_c"}),
        ("d" * 32, {"startedAt": 4.0, "callId": "RM_d", "destination": ours}),
        # a folder of the user's own in the spool folder is not a call
        ("my-notes", {"startedAt": 5.0, "callId": "RM_not_a_call", "destination": ours}),
    ]:
        (spool / name).mkdir(parents=True)
        (spool / name / "meta.json").write_text(json.dumps(meta))
    (spool / ".quarantine").mkdir()
    before = sorted(p.relative_to(spool) for p in spool.rglob("*"))

    code, text = _check_with(
        monkeypatch,
        capsys,
        tmp_path,
        ROARK_API_KEY=server.api_key,
        ROARK_BASE_URL=server.base_url,
        spooled=True,
    )
    assert code == 0
    assert f"spool: {spool}: 4 calls waiting" in text
    assert "  2 for https://api.roark.ai:443 (key sha256:0f1e2d)\n" in text
    assert "  1 for an unknown destination\n" in text
    port = server.base_url.rsplit(":", 1)[1]
    mine = f"  1 for http://127.0.0.1:{port} (key {ours['key']}) (this configuration's)"
    assert mine in text
    assert sorted(p.relative_to(spool) for p in spool.rglob("*")) == before  # nothing touched


def test_it_warns_of_roark_variables_it_does_not_read(
    server: LocalRoark,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    code, text = _check_with(
        monkeypatch,
        capsys,
        tmp_path,
        ROARK_API_KEY=server.api_key,
        ROARK_BASE_URL=server.base_url,
        ROARK_ENABLED="false",  # meant to turn it off: it does not
        ROARK_REDACT="true",
        ROARK_PROJECT_ID="p-42",  # not roark's: nothing said
    )
    assert code == 0
    warnings = [line for line in text.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: ROARK_ENABLED is not a roark variable and is ignored; did you mean "
        "ROARK_OBSERVABILITY_ENABLED?",
        "warning: ROARK_REDACT is not read: redact is set with roark.configure(redact=...)",
    ]


def test_the_exit_codes_are_in_the_help_and_a_real_process_exits_with_them(
    server: LocalRoark, tmp_path: Path
) -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "roark", "check", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for code in range(2, 8):
        assert f"  {code}  " in help_text
    env = {
        "PATH": "/usr/bin:/bin",
        "ROARK_API_KEY": "rk-wrong-key-0000",
        "ROARK_BASE_URL": server.base_url,
        "ROARK_SPOOL_DIR": str(tmp_path / "spool"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "roark", "check"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert not (tmp_path / "spool").exists()


def test_a_planted_fifo_or_link_in_the_spool_neither_hangs_nor_is_read(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    fifo_call, linked_call = spool / ("a" * 32), spool / ("b" * 32)
    fifo_call.mkdir(parents=True)
    linked_call.mkdir()
    os.mkfifo(fifo_call / "meta.json")  # reading it would wait for a writer forever
    secret = tmp_path / "elsewhere.json"
    secret.write_text(json.dumps({"destination": {"scheme": "https", "host": "not-read"}}))
    os.symlink(secret, linked_call / "meta.json")
    env = {"PATH": "/usr/bin:/bin", "ROARK_SPOOL_DIR": str(spool)}
    done = subprocess.run(
        [sys.executable, "-m", "roark", "check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 3  # no key
    assert "  2 for an unknown destination (no readable meta.json)\n" in done.stdout
    assert "not-read" not in done.stdout
