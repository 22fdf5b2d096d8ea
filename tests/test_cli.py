"""The ``roark`` command as a newcomer meets it: every option says what it does and its
default, and ``roark local-server`` says how to point an agent at it."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from roark._cli import build_parser
from roark.testing.server.cli import build_parser as build_server_parser


def _parsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


PARSERS = _parsers(build_parser()) + _parsers(build_server_parser())


def test_every_subcommand_is_walked() -> None:
    names = [name for name, _ in PARSERS]
    assert names == [
        "roark",
        "roark check",
        "roark deliver-spool",
        "roark local-server",
        "roark dev",
        "python -m roark.testing.server",
    ]


@pytest.mark.parametrize(("prog", "parser"), PARSERS, ids=[name for name, _ in PARSERS])
def test_every_option_has_a_help_line_and_shows_its_default(
    prog: str, parser: argparse.ArgumentParser
) -> None:
    options = [
        action
        for action in parser._actions
        if action.option_strings and not isinstance(action, argparse._HelpAction)
    ]
    text = " ".join(parser.format_help().split())
    for action in options:
        assert action.help and action.help != argparse.SUPPRESS, (prog, action.option_strings)
        # the option's line in --help ends with its default
        line = re.search(re.escape(action.option_strings[-1]) + r"\b.*?\(default: [^)]*\)", text)
        assert line is not None, (prog, action.option_strings, text)


def test_local_server_prints_the_key_and_the_two_variables() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROARK_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "roark", "local-server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if "ROARK_API_KEY" in line:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    text = "\n".join(lines)
    assert re.search(r"^  export ROARK_BASE_URL=http://127\.0\.0\.1:\d+$", text, re.M), text
    assert "  export ROARK_API_KEY=roark-local-key" in lines, text
