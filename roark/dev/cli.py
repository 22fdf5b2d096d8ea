"""``roark dev``: the local Roark with a viewer, until Ctrl-C.

Only the standard library is imported here, so ``roark --help`` stays fast and works
without the viewer's dependencies; :func:`run` says how to install them when missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

HELP = "run a local Roark with a viewer: see and hear every call on this machine"
INSTALL_HINT = 'the viewer needs roark\'s "dev" extra: pip install "roark[dev]"'
_NEEDED = ("aiohttp",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=".roark", help="folder the calls are kept in")
    parser.add_argument("--port", type=int, default=8787, help="port to listen on")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (another needs --allow-remote)"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --host to be an address other machines can reach",
    )
    parser.add_argument(
        "--api-key", default=None, help="key the agent must send (default: the folder's own)"
    )


def missing_dependencies() -> list[str]:
    return [name for name in _NEEDED if importlib.util.find_spec(name) is None]


def run(args: argparse.Namespace) -> int:
    """Start the server from parsed arguments and serve until interrupted."""
    missing = missing_dependencies()
    if missing:
        print(f"roark dev: {', '.join(missing)} not installed; {INSTALL_HINT}", file=sys.stderr)
        return 2
    from ..testing.server.cli import run_until_interrupted, summary_line
    from .server import DevServer, is_loopback
    from .store import FolderInUseError

    if not is_loopback(args.host):
        if not args.allow_remote:
            print(
                f"roark dev: --host {args.host} would let other machines see your calls; "
                "add --allow-remote if that is what you want",
                file=sys.stderr,
            )
            return 2
        print(
            f"WARNING: listening on {args.host}: anyone who can reach this machine can see "
            "and hear your calls (the viewer asks for no key)",
            file=sys.stderr,
        )
    try:
        server = DevServer(
            args.dir,
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            on_call_ended=lambda call: print(summary_line(call), flush=True),
        )
    except FolderInUseError as exc:
        print(f"roark dev: {exc}", file=sys.stderr)
        return 1
    return run_until_interrupted(
        server,
        lambda: banner(server.base_url, server.api_key, str(server.folder)),
        f"{args.host}:{args.port}",
    )


def banner(base_url: str, api_key: str, folder: str) -> str:
    from ..testing.server.cli import agent_environment

    return "\n".join(
        [
            f"roark dev: a local Roark with a viewer; calls are kept in {folder}",
            *agent_environment(base_url, api_key),
            f"Viewer: {base_url}/",
            "Ctrl-C to stop.",
        ]
    )
