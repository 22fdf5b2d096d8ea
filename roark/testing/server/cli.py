"""``python -m roark.testing.server``: run a local Roark by hand until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from .local_roark import LocalRoark
from .records import ReceivedCall


def summary_line(call: ReceivedCall) -> str:
    """One line about a received call, as the CLI prints it."""
    duration = f"{call.duration_s:.1f}s" if call.duration_s is not None else "no audio"
    line = (
        f"call {call.livekit_call_id}: agent={call.agent_id} reason={call.reason} "
        f"recording={duration} transcript={len(call.transcript)} "
        f"tools={len(call.tool_calls)} metrics={len(call.metrics)} chunks={len(call.chunks)}"
    )
    if call.recording_path is not None:
        line += f" -> {call.recording_path}"
    if call.violations:
        line += f" ({len(call.violations)} violation(s))"
    return line


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve_until_interrupted(stop: Callable[[], None]) -> None:
    """Sleep until Ctrl-C or SIGTERM, then call ``stop``."""
    if threading.current_thread() is threading.main_thread():
        # `kill` and process managers send SIGTERM; stop as cleanly as on Ctrl-C
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        stop()


class _Server(Protocol):
    def start(self) -> object: ...
    def stop(self) -> None: ...


def run_until_interrupted(server: _Server, banner: Callable[[], str], where: str) -> int:
    """Start ``server``, print ``banner()`` and serve until Ctrl-C: 0, or 1 if it cannot
    listen on ``where``."""
    try:
        server.start()
    except OSError as exc:
        print(f"cannot listen on {where}: {exc}", file=sys.stderr)
        return 1
    print(banner(), flush=True)
    serve_until_interrupted(server.stop)
    return 0


DEFAULT_API_KEY = "roark-local-key"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8787, help="port to listen on (0: any free)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the key requests must carry")
    parser.add_argument(
        "--recordings-dir",
        default=None,
        help="folder for the calls' WAVs (default: a new temporary folder)",
    )
    parser.add_argument(
        "--no-envelope", action="store_true", help="answer chunk-upload-url without {data: ...}"
    )


def agent_environment(base_url: str, api_key: str) -> list[str]:
    """The lines that tell how to point an agent at a local Roark."""
    return [
        "Point your agent at it:",
        f"  export ROARK_BASE_URL={base_url}",
        f"  export ROARK_API_KEY={api_key}",
    ]


def run(args: argparse.Namespace) -> int:
    """Run a local Roark from parsed arguments until Ctrl-C."""
    server = LocalRoark(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        recordings_dir=args.recordings_dir,
        envelope=not args.no_envelope,
        on_call_ended=lambda call: print(summary_line(call), flush=True),
    )

    def banner() -> str:
        return "\n".join(
            [
                f"Local Roark listening on {server.base_url} (Ctrl-C to stop)",
                *agent_environment(server.base_url, server.api_key),
                f"Recordings: {server.recordings_dir}",
            ]
        )

    return run_until_interrupted(server, banner, f"{args.host}:{args.port}")


def build_parser() -> argparse.ArgumentParser:
    from ..._cli import HelpFormatter

    parser = argparse.ArgumentParser(
        prog="python -m roark.testing.server",
        description="A local, contract-faithful Roark server for LiveKit Agents calls.",
        formatter_class=HelpFormatter,
    )
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a local Roark until Ctrl-C: ``python -m roark.testing.server --port 8787``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run(args)
