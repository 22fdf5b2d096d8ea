"""A process that forks mid-call: the child gets its own threads and calls, the parent keeps
its own (LiveKit's process pool forks job processes from a worker that may observe calls)."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from roark._client import get_client
from roark.testing import LocalRoark

from .synthetic import SyntheticCall


def _forked_call(base_url: str, key: str, result: Any) -> None:
    client = get_client()
    assert client is not None and client.worker is not None
    call = SyntheticCall(client.worker, "RM_forked_child", t0=time.time() - 10)
    call.feed(10.0)
    call.end()
    result.put(call.done.result(timeout=20))


def test_fork_gives_the_child_its_own_threads_and_calls(roark_server: LocalRoark) -> None:
    client = get_client()
    assert client is not None and client.worker is not None
    parent_call = SyntheticCall(client.worker, "RM_forked_parent", t0=time.time() - 10)
    parent_call.feed(5.0)
    ctx = multiprocessing.get_context("fork")
    result = ctx.Queue()
    child = ctx.Process(
        target=_forked_call, args=(roark_server.base_url, roark_server.api_key, result)
    )
    child.start()
    assert result.get(timeout=30) is True
    child.join(10)
    assert child.exitcode == 0
    parent_call.feed(10.0)
    parent_call.end()
    assert parent_call.done.result(timeout=20) is True
    for call_id in ("RM_forked_child", "RM_forked_parent"):
        received = roark_server.wait_for_call(call_id, timeout=10)
        assert received.started_count == 1 and received.ended_count == 1
        # ten seconds of caller audio; the second agent turn plays until 10.5 s
        assert abs(received.duration_s - 10.5) < 0.05
