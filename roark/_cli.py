"""The ``roark`` command: check the configuration, deliver a spool, run a local Roark (alone,
or with a viewer: ``roark dev``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from . import _check as check
from ._client import configure, shutdown


def _check(_: argparse.Namespace) -> int:
    return check.run(sys.stdout, sys.stderr)


def _deliver(args: argparse.Namespace) -> int:
    """Deliver calls left in the spool by processes that stopped, then exit."""
    client = configure()
    if client.worker is None:
        print("roark is not active (set ROARK_API_KEY)", file=sys.stderr)
        return 1
    deadline = time.monotonic() + args.timeout
    client.worker.recovered.wait(args.timeout)
    ok = client.flush(timeout=max(0.0, deadline - time.monotonic()))
    stats = client.worker.stats
    shutdown(timeout=1.0)
    events, chunks = stats.get("events"), stats.get("chunks")
    print(f"delivered: {events} events, {chunks} chunks; all done: {ok}")
    return 0 if ok else 1


def _serve(args: argparse.Namespace) -> int:
    from .testing.server import main as serve_main

    argv = ["--port", str(args.port), "--api-key", args.api_key]
    return serve_main(argv) or 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="roark", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    checking = sub.add_parser(
        "check",
        help="check the ROARK_* settings and ask Roark with the key (read only)",
        description="Check the ROARK_* settings, ask Roark one harmless question with the key "
        "and say what waits in the spool. Read only: no spool folder, no thread, no delivery.",
        epilog=check.exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    checking.set_defaults(fn=_check)
    deliver = sub.add_parser("deliver-spool", help="deliver calls left in the spool")
    deliver.add_argument("--timeout", type=float, default=60.0)
    deliver.set_defaults(fn=_deliver)
    serve = sub.add_parser("local-server", help="run a local, contract-faithful Roark")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--api-key", default="roark-local-key")
    serve.set_defaults(fn=_serve)
    from .dev import cli as dev_cli  # `roark dev`: the local Roark with a viewer

    dev_cli.add_arguments(sub.add_parser("dev", help=dev_cli.HELP, description=dev_cli.HELP))
    sub.choices["dev"].set_defaults(fn=dev_cli.run)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    return int(args.fn(args))
