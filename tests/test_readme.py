"""The README's testing example runs as written: it is read from README.rst's own text and
run with pytest in a fresh folder, as a newcomer would save and run it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.rst"
HEADING = "Testing your agent"


def code_block_after(text: str, heading: str) -> str:
    """The first ``.. code-block:: python`` in the section under ``heading``."""
    section = text[text.index(f"{heading}\n{'-' * len(heading)}\n") :]
    lines = section.splitlines()
    start = lines.index(".. code-block:: python") + 1
    block: list[str] = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip() + "\n"


def test_the_readme_testing_example_runs_as_written(tmp_path: Path) -> None:
    example = code_block_after(README.read_text(encoding="utf-8"), HEADING)
    assert "def test_" in example and "roark_server" in example
    (tmp_path / "test_support_call.py").write_text(example, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROARK_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_support_call.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout
