"""``roark check``: a read-only diagnostic of this environment's roark configuration.

It resolves the ``ROARK_*`` settings, asks Roark one harmless question with the key, and
says what waits in the spool, without ``configure()``'s worker: no thread, no spool folder,
no recovery, nothing sent but the question.

The question is an empty event (``{}``) to the events endpoint. Roark checks the key
before the body, so the answer tells the cases apart: a 400 (the empty event judged) means
the key and the URL are right; 401/403 a bad key; 404, 405 or a redirect a base URL that
does not lead to Roark's API; no answer a host that cannot be reached.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import requests

from ._config import ConfigurationError, Settings, resolve, unread_variables
from ._threads.spool import Destination, is_call_key
from ._threads.spool_files import read_own
from ._threads.transport import (
    AuthError,
    DestinationError,
    RejectedError,
    TransientError,
    Transport,
    quote,
)

OK = 0
INVALID_SETTINGS = 2
NOT_OBSERVING = 3
KEY_REFUSED = 4
WRONG_URL = 5
UNREACHABLE = 6
UNEXPECTED = 7

EXIT_CODES = {
    OK: "the settings are valid and Roark accepted the key",
    INVALID_SETTINGS: "a setting is invalid (the message names it)",
    NOT_OBSERVING: "calls would not be observed: no ROARK_API_KEY, or turned off",
    KEY_REFUSED: "Roark refused the key (401/403): check ROARK_API_KEY",
    WRONG_URL: "ROARK_BASE_URL does not lead to Roark's API (404, 405 or a redirect)",
    UNREACHABLE: "Roark cannot be reached or is unavailable (no answer, timeout, 5xx)",
    UNEXPECTED: "Roark gave an answer that says none of the above",
}
PROBE_SECONDS = 10.0


def exit_codes_help() -> str:
    return "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


def run(out: TextIO, err: TextIO) -> int:
    """Check the environment's configuration; the exit code (``EXIT_CODES``)."""
    try:
        settings = resolve({})
    except ConfigurationError as exc:
        print(exc, file=err)
        return INVALID_SETTINGS
    print(describe_settings(settings), file=out)
    for problem in unread_variables():
        print(f"warning: {problem}", file=err)
    print(describe_spool(settings), file=out)
    if not settings.enabled:
        print("observation is turned off (ROARK_OBSERVABILITY_ENABLED)", file=err)
        return NOT_OBSERVING
    if not settings.api_key:
        print("ROARK_API_KEY is not set: calls would not be observed", file=err)
        return NOT_OBSERVING
    code, message = ask_roark(settings)
    print(message, file=out if code == OK else err)
    return code


def describe_settings(settings: Settings) -> str:
    """The settings, one a line; of the key only whether it is set."""
    lines = ["settings:", f"  api_key: {'set' if settings.api_key else 'not set'}"]
    for field in dataclasses.fields(settings):
        if field.name == "api_key":
            continue
        value = getattr(settings, field.name)
        if field.name == "redact":
            value = "off" if value is None else "on"
        lines.append(f"  {field.name}: {value}")
    return "\n".join(lines)


def ask_roark(settings: Settings) -> tuple[int, str]:
    """Ask Roark the harmless question with the key: (exit code, what its answer means)."""
    base = settings.base_url
    transport = Transport(settings, threading.Event())
    try:
        transport.probe(time.monotonic() + PROBE_SECONDS)
    except RejectedError:
        pass  # the empty event judged: the key and the URL were accepted
    except AuthError as exc:
        return KEY_REFUSED, f"Roark at {base} refused the key ({_status(exc)}): check ROARK_API_KEY"
    except DestinationError as exc:
        return WRONG_URL, (
            f"ROARK_BASE_URL={base} does not lead to Roark's API ({exc}): check its path and any "
            "proxy in between"
        )
    except TransientError as exc:
        return UNREACHABLE, f"Roark at {base} is unavailable now ({exc}): try again later"
    except requests.RequestException as exc:
        why = _unreachable(exc, settings.api_key)
        return UNREACHABLE, f"cannot reach Roark at {base} ({why}): check the host and network"
    except Exception as exc:
        return UNEXPECTED, f"Roark at {base} gave an unexpected answer ({exc})"
    finally:
        transport.close()
    return OK, f"Roark accepted the key at {base}"


def _unreachable(exc: requests.RequestException, key: str | None) -> str:
    """Why a request got no answer, in a few words (requests' own text is a page long)."""
    text = str(exc)
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return "the TLS handshake failed"
    if "Connection refused" in text:
        return "connection refused: nothing listens there"
    if "resolve" in text or "Name or service not known" in text:
        return "its host name does not resolve"
    return quote(text, key)


def _status(exc: Exception) -> str:
    return str(exc).split(": ", 1)[-1]


def describe_spool(settings: Settings) -> str:
    """Where the spool is, how many calls wait in it and for which destination (read only)."""
    root = settings.spool_dir
    try:
        folders = [
            entry
            for entry in os.scandir(root)
            if is_call_key(entry.name) and entry.is_dir(follow_symlinks=False)
        ]
    except FileNotFoundError:
        return f"spool: {root}: does not exist yet, no call waiting"
    except OSError as exc:
        return f"spool: {root}: cannot be read ({exc.strerror})"
    if not folders:
        return f"spool: {root}: no call waiting"
    by_destination = Counter(_destination(Path(entry.path)) for entry in folders)
    waiting = "1 call waiting" if len(folders) == 1 else f"{len(folders)} calls waiting"
    lines = [f"spool: {root}: {waiting}"]
    ours = _shown(Destination.of(settings.base_url, settings.api_key).as_json())
    for where, count in sorted(by_destination.items()):
        mine = " (this configuration's)" if settings.api_key and where == ours else ""
        lines.append(f"  {count} for {where}{mine}")
    return "\n".join(lines)


def _destination(folder: Path) -> str:
    """Where a spooled call was going, as its ``meta.json`` says (if it says)."""
    try:
        # never through a link, nor a FIFO that would hang the check
        meta: Any = json.loads(read_own(folder / "meta.json"))
    except (OSError, ValueError):
        return "an unknown destination (no readable meta.json)"
    where = meta.get("destination") if isinstance(meta, dict) else None
    if not isinstance(where, dict):
        return "an unknown destination"
    return _shown(where)


def _shown(where: dict[str, Any]) -> str:
    scheme, host, port = where.get("scheme"), where.get("host"), where.get("port")
    key = where.get("key")
    text = f"{scheme}://{host}:{port}"
    return f"{text} (key {key})" if isinstance(key, str) else text
