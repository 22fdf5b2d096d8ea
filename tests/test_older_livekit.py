"""The same stories on an earlier livekit-agents 1.x (``requirements-older-livekit.txt``).

A second virtual environment (kept in ``.venv-older-livekit`` between runs) holds the older
LiveKit; the observed-call and API stories run there in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "tests" / "requirements-older-livekit.txt"
VENV = ROOT / ".venv-older-livekit"
STORIES = [
    "tests/test_observed_call.py",
    "tests/test_api.py",
    "tests/test_delivery.py",
    # the stories whose LiveKit APIs moved most over 1.x
    "tests/test_realtime.py",
    "tests/test_tools_async.py",
    "tests/test_session_io.py",
]


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@pytest.fixture(scope="module")
def older_python() -> Path:
    marker = VENV / "installed-from.txt"
    wanted = REQUIREMENTS.read_text()
    if not (marker.exists() and marker.read_text() == wanted and _python().exists()):
        venv.create(VENV, with_pip=True, clear=True)
        subprocess.run(
            [
                str(_python()),
                "-m",
                "pip",
                "install",
                "-q",
                "-r",
                str(REQUIREMENTS),
                "requests",
                "soundfile",
                "numpy",
                "tenacity",
                "pytest",
            ],
            check=True,
            timeout=900,
        )
        marker.write_text(wanted)
    return _python()


def test_observed_calls_on_an_earlier_livekit(older_python: Path) -> None:
    version = subprocess.run(
        [str(older_python), "-c", "import livekit.agents as a; print(a.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == REQUIREMENTS.read_text().split("==")[1].strip()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        # its own options: this venv has no pytest-xdist for the project's "-n 4"
        [str(older_python), "-m", "pytest", "-q", "-o", "addopts=-p no:cacheprovider", *STORIES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]
