"""A process that dies leaving calls in a spool: ``python -m tests.make_orphans SPOOL COUNT``.

Each call is fed straight into roark's worker (``tests/synthetic.py``): six seconds of a
caller's question and the agent's answer, stamped from now. Nothing reaches any Roark (the
local one this process talks to refuses the key), and once every call is on disk the
process ends with ``os._exit``, as a killed process would: no flush, no atexit, its spool
locks released by the kernel. Calls with an even number had ended before that (three chunks
each); odd ones were still going on (two whole chunks spooled). Prints one line per call:
``<call id> ended|in-flight``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import roark
from roark.testing import LocalRoark

from .synthetic import SyntheticCall

CALL_SECONDS = 6.0
# what the spool holds once a call of CALL_SECONDS is written down (its layout's names)
ENDED_FILE = "zzz-ended.json"
SECOND_CHUNK_FILE = "c0000001.pcm"


def orphan_id(n: int) -> str:
    return f"RM_orphan_{n:03d}"


def _spooled(spool: Path, call: SyntheticCall, ended: bool) -> bool:
    folder = spool / call.key
    return (folder / (ENDED_FILE if ended else SECOND_CHUNK_FILE)).exists()


def main() -> int:
    spool, count = Path(sys.argv[1]), int(sys.argv[2])
    server = LocalRoark().start()
    server.revoke_key()
    client = roark.configure(api_key=server.api_key, base_url=server.base_url, spool_dir=spool)
    assert client.worker is not None
    calls = []
    for n in range(count):
        call = SyntheticCall(client.worker, orphan_id(n), t0=time.time())
        call.feed(CALL_SECONDS)
        if n % 2 == 0:
            call.end()
        calls.append((call, n % 2 == 0))
    deadline = time.monotonic() + 60
    while not all(_spooled(spool, call, ended) for call, ended in calls):
        if time.monotonic() > deadline:
            print("not spooled in time", file=sys.stderr, flush=True)
            os._exit(1)
        time.sleep(0.05)
    for call, ended in calls:
        print(call.call_id, "ended" if ended else "in-flight", flush=True)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
