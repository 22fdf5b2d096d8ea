"""A process running one observed scripted call: ``python -m tests.child_call BASE KEY SPOOL``.

Prints ``CALL <room sid>`` when its session starts and ``DONE`` when the job has ended.
"""

from __future__ import annotations

import asyncio
import sys

from roark._client import configure, shutdown

from .calls import ObservedRun


async def _main(job_id: str) -> None:
    run = ObservedRun()
    entry = run.entrypoint

    async def announcing(ctx) -> None:  # type: ignore[no-untyped-def]
        print(f"CALL {ctx.job.room.sid}", flush=True)
        await entry(ctx)

    run.entrypoint = announcing  # type: ignore[method-assign]
    await run.run(job_id=job_id)


def main() -> int:
    base_url, key, spool = sys.argv[1:4]
    job_id = sys.argv[4] if len(sys.argv) > 4 else "job-child"
    configure(api_key=key, base_url=base_url, spool_dir=spool, shutdown_timeout=3.0)
    asyncio.run(_main(job_id))
    shutdown(timeout=3.0)
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
