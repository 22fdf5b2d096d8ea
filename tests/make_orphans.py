"""A process that dies leaving calls in a spool:
``python -m tests.make_orphans SPOOL COUNT BASE_URL API_KEY``.

Each call is fed straight into roark's worker (``tests/synthetic.py``): six seconds of a
caller's question and the agent's answer, stamped from now, spooled for the Roark at
``BASE_URL`` with ``API_KEY`` (a spooled call belongs to that destination). Nothing may reach
that Roark meanwhile: the caller makes it refuse the key (``leave_orphans`` in
``tests/job_processes.py`` does). Once every call is on disk the process ends with
``os._exit``, as a killed process would: no flush, no atexit, its spool locks released by
the kernel. Calls with an even number had ended before that (three chunks each); odd ones
were still going on (two whole chunks and the recording's tail spooled: three chunks too,
once recovered). Prints one line per call: ``<call id> ended|in-flight``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import roark

from .synthetic import SyntheticCall

CALL_SECONDS = 6.0
# what the spool holds once a call of CALL_SECONDS is written down (its layout's names)
ENDED_FILE = "zzz-ended.json"
THIRD_CHUNK_TAIL_FILE = "t0000002.pcm"


def orphan_id(n: int) -> str:
    return f"RM_orphan_{n:03d}"


def _spooled(spool: Path, call: SyntheticCall, ended: bool) -> bool:
    folder = spool / call.key
    return (folder / (ENDED_FILE if ended else THIRD_CHUNK_TAIL_FILE)).exists()


def main() -> int:
    spool, count, base_url, api_key = Path(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:5]
    client = roark.configure(api_key=api_key, base_url=base_url, spool_dir=spool)
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
