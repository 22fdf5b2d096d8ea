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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default at the end of its help line (unless the line says it already);
    descriptions and epilogs as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and "(default:" in action.help:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The ``roark`` command's parser, every subcommand in it."""
    from .dev import cli as dev_cli  # `roark dev`: the local Roark with a viewer
    from .testing.server import cli as server_cli

    parser = argparse.ArgumentParser(
        prog="roark",
        description="Check roark's configuration, deliver a spool, run a local Roark.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, **kwargs: str) -> argparse.ArgumentParser:
        kwargs.setdefault("description", help[:1].upper() + help[1:] + ".")
        return sub.add_parser(name, help=help, formatter_class=HelpFormatter, **kwargs)

    checking = command(
        "check",
        "check the ROARK_* settings and ask Roark with the key (read only)",
        description="Check the ROARK_* settings, ask Roark one harmless question with the key "
        "and say what waits in the spool. Read only: no spool folder, no thread, no delivery.",
        epilog=check.exit_codes_help(),
    )
    checking.set_defaults(fn=_check)
    deliver = command("deliver-spool", "deliver the calls left in the spool, then exit")
    deliver.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to deliver within, at most"
    )
    deliver.set_defaults(fn=_deliver)
    serve = command("local-server", "run a local, contract-faithful Roark until Ctrl-C")
    server_cli.add_arguments(serve)
    serve.set_defaults(fn=server_cli.run)
    dev = command("dev", dev_cli.HELP)
    dev_cli.add_arguments(dev)
    dev.set_defaults(fn=dev_cli.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    return int(args.fn(args))
