"""The delivery scheduler, driven by hand: a fake transport answers from a script, a fake
clock says when retries are due, and the test thread plays the sender.

The end-to-end stories of delivery under trouble (a real Roark that fails, hangs or
refuses the key) are in ``test_delivery.py``; here each rule of the scheduler is one test.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from roark._config import resolve
from roark._failures import Stats
from roark._handoff.records import CallDetails
from roark._threads import wire
from roark._threads.delivery import AUTH_PROBE_INTERVAL, RESEND_AFTER, Action, Delivery, action_for
from roark._threads.spool import CallSpool, Spooled
from roark._threads.transport import (
    CHUNK_PUT,
    AuthError,
    DestinationError,
    RejectedError,
    TransientError,
    UnexpectedStatusError,
    status_error,
)

RATE = 24000


class FakeTransport:
    """The ``Transport``'s methods: each request is recorded as (call id, what), and answered
    with the next exception scripted for it (the transport's own), or accepted."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.events: list[dict[str, Any]] = []
        self._script: dict[tuple[str, str], list[Exception]] = {}

    def fail(self, call_id: str, what: str, *errors: Exception) -> None:
        self._script.setdefault((call_id, what), []).extend(errors)

    def _answer(self, call_id: str, what: str) -> None:
        self.requests.append((call_id, what))
        scripted = self._script.get((call_id, what))
        if scripted:
            raise scripted.pop(0)

    def send_event(self, body: dict[str, Any], deadline: float) -> None:
        self._answer(body["livekitCallId"], body["event"])
        self.events.append(body)

    def upload_chunk(self, call_id: str, index: int, data: bytes, deadline: float) -> None:
        self._answer(call_id, f"chunk {index}")

    def close(self) -> None:
        pass

    def of(self, call_id: str) -> list[str]:
        return [what for cid, what in self.requests if cid == call_id]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def delivery(transport: FakeTransport, clock: FakeClock) -> Iterator[Delivery]:
    settings = resolve({"api_key": "k"}, env={})
    yield Delivery(settings, transport, Stats(), threading.Event(), now=clock)  # type: ignore[arg-type]


def _json(record: Any) -> bytes:
    return json.dumps(record).encode()


def _open_call(
    delivery: Delivery, call_id: str, chunks: int = 3, vanished: Path | None = None
) -> concurrent.futures.Future:
    """A call with its started, ``chunks`` chunks and ended queued; with ``vanished``, chunk 1
    is a file there that no longer exists (a cleaner removed it)."""
    done: concurrent.futures.Future[bool] = concurrent.futures.Future()
    delivery.open(call_id, done)
    spool = CallSpool(None, call_id)
    started = wire.call_started(call_id, 0.0, CallDetails(agent_id="a", is_test=True))
    items = [spool.put("started", _json(started))]
    for index in range(chunks):
        if vanished is not None and index == 1:
            items.append(Spooled("chunk", index, path=vanished / "c0000001.pcm"))
        else:
            items.append(spool.put("chunk", b"\0" * 16, index))
    ended = wire.call_ended(
        call_id=call_id,
        started_at=0.0,
        ended_at=1.0,
        reason="agent-ended",
        transcript=[],
        tools=[],
        metrics=[],
        sample_rate=RATE,
        chunks=chunks,
    )
    items.append(spool.put("ended", _json(ended)))
    for item in items:
        delivery.put(call_id, item, spool=spool, call_id=call_id)
    return done


def _send_all(delivery: Delivery) -> None:
    while delivery.send_next():
        pass


def _ended(transport: FakeTransport, call_id: str) -> dict[str, Any]:
    (ended,) = [e for e in transport.events if e["livekitCallId"] == call_id and "callEndedAt" in e]
    return ended


WHOLE_CALL = ["call-started", "chunk 0", "chunk 1", "chunk 2", "call-ended"]


def test_each_call_goes_out_in_order_started_chunks_by_index_ended(
    delivery: Delivery, transport: FakeTransport
) -> None:
    first, second = _open_call(delivery, "RM_a"), _open_call(delivery, "RM_b")
    _send_all(delivery)

    assert transport.of("RM_a") == WHOLE_CALL
    assert transport.of("RM_b") == WHOLE_CALL
    assert first.result(timeout=0) is True and second.result(timeout=0) is True
    assert _ended(transport, "RM_a")["recordingSampleRate"] == RATE
    assert delivery.keys() == set()


def test_a_call_roark_does_not_answer_is_retried_later_backing_off(
    delivery: Delivery, transport: FakeTransport, clock: FakeClock
) -> None:
    # the transport's own retries outlasted the window twice for chunk 1 of this call
    transport.fail("RM_a", "chunk 1", TransientError("HTTP 503"), requests.ConnectionError())
    done, other = _open_call(delivery, "RM_a"), _open_call(delivery, "RM_b")
    _send_all(delivery)
    assert transport.of("RM_a") == ["call-started", "chunk 0", "chunk 1"]
    assert other.result(timeout=0) is True  # the other call does not wait for this one

    first_wait = RESEND_AFTER[0] * 2
    clock.now += first_wait - 0.1
    delivery.wake_retries()
    assert not delivery.send_next()  # not yet
    clock.now += 0.2
    delivery.wake_retries()
    _send_all(delivery)
    assert transport.of("RM_a")[3:] == ["chunk 1"]  # failed again: the wait doubles

    clock.now += 2 * first_wait - 0.1
    delivery.wake_retries()
    assert not delivery.send_next()
    clock.now += 0.2
    delivery.wake_retries()
    _send_all(delivery)
    assert transport.of("RM_a")[4:] == ["chunk 1", "chunk 2", "call-ended"]
    assert done.result(timeout=0) is True


def test_a_refused_key_pauses_every_call_and_probes_later(
    delivery: Delivery,
    transport: FakeTransport,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport.fail("RM_a", "call-started", AuthError("call-started: HTTP 401"))
    with caplog.at_level(logging.WARNING, logger="roark"):
        first = _open_call(delivery, "RM_a")
        _send_all(delivery)
        second = _open_call(delivery, "RM_b")  # queued during the pause: it waits too
        _send_all(delivery)
    assert transport.requests == [("RM_a", "call-started")]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "API key" in errors[0].getMessage()

    clock.now += AUTH_PROBE_INTERVAL - 1
    delivery.wake_retries()
    assert not delivery.send_next()
    clock.now += 2  # the key was fixed meanwhile: the probe goes through, and all follow
    delivery.wake_retries()
    _send_all(delivery)
    assert transport.of("RM_a") == ["call-started", *WHOLE_CALL]
    assert transport.of("RM_b") == WHOLE_CALL
    assert first.result(timeout=0) is True and second.result(timeout=0) is True


@pytest.mark.parametrize("lost", ["refused", "vanished"])
def test_a_lost_chunk_stops_later_chunks_and_the_end_keeps_what_came_before(
    delivery: Delivery, transport: FakeTransport, tmp_path: Path, lost: str
) -> None:
    if lost == "refused":
        transport.fail("RM_a", "chunk 1", RejectedError("chunk PUT: HTTP 400"))
    done = _open_call(delivery, "RM_a", vanished=tmp_path if lost == "vanished" else None)
    _send_all(delivery)

    # chunk 2 after a hole would shift the rest of the recording: it is not sent
    tried = ["chunk 1"] if lost == "refused" else []  # a vanished file is never requested
    assert transport.of("RM_a") == ["call-started", "chunk 0", *tried, "call-ended"]
    # chunk 0 arrived: the recording Roark builds is its audio
    assert _ended(transport, "RM_a")["recordingSampleRate"] == RATE
    assert done.result(timeout=0) is True


def test_when_the_first_chunk_is_lost_the_end_advertises_no_recording(
    delivery: Delivery, transport: FakeTransport
) -> None:
    transport.fail("RM_a", "chunk 0", RejectedError("chunk PUT: HTTP 413"))
    done = _open_call(delivery, "RM_a")
    _send_all(delivery)

    assert transport.of("RM_a") == ["call-started", "chunk 0", "call-ended"]
    ended = _ended(transport, "RM_a")
    assert "recordingSampleRate" not in ended and "recordingNumChannels" not in ended
    assert done.result(timeout=0) is True


def test_a_refused_call_ended_retires_the_call_undelivered(
    delivery: Delivery, transport: FakeTransport
) -> None:
    transport.fail("RM_a", "call-ended", RejectedError("call-ended: HTTP 422"))
    done = _open_call(delivery, "RM_a")
    _send_all(delivery)

    assert transport.of("RM_a") == WHOLE_CALL
    assert done.result(timeout=0) is False
    assert delivery.keys() == set()


def test_items_beyond_the_first_few_wait_on_disk_only(delivery: Delivery, tmp_path: Path) -> None:
    spool = CallSpool(tmp_path, "k")
    spool.create()
    delivery.open("k", concurrent.futures.Future())
    items = [spool.put("chunk", b"\0" * 16, index) for index in range(6)]
    for item in items:
        delivery.put("k", item, spool=spool, call_id="RM_k")
    assert [item.data is not None for item in items] == [True] * 4 + [False] * 2
    assert items[5].read() == b"\0" * 16
    spool.remove()


STATUS_ACTIONS = [
    (200, "call-started", None, Action.NEXT),
    (204, CHUNK_PUT, None, Action.NEXT),
    (401, "call-started", AuthError, Action.PAUSE_ALL),
    (403, "call-ended", AuthError, Action.PAUSE_ALL),
    (401, "upload URL", AuthError, Action.PAUSE_ALL),
    # the API is not where the base URL points (a path too many, a proxy): the data is fine
    (404, "call-started", DestinationError, Action.PAUSE_ALL),
    (404, "upload URL", DestinationError, Action.PAUSE_ALL),
    (405, "call-ended", DestinationError, Action.PAUSE_ALL),
    (301, "call-started", DestinationError, Action.PAUSE_ALL),
    (307, "call-ended", DestinationError, Action.PAUSE_ALL),
    (308, "upload URL", DestinationError, Action.PAUSE_ALL),
    # the presigned URL was refused, moved or is gone: a fresh one (the next try) may work
    (403, CHUNK_PUT, TransientError, Action.RETRY_LATER),
    (401, CHUNK_PUT, TransientError, Action.RETRY_LATER),
    (404, CHUNK_PUT, TransientError, Action.RETRY_LATER),
    (405, CHUNK_PUT, TransientError, Action.RETRY_LATER),
    (301, CHUNK_PUT, TransientError, Action.RETRY_LATER),
    (307, CHUNK_PUT, TransientError, Action.RETRY_LATER),
    # only answers that judge the data give an item up
    (400, "call-started", RejectedError, Action.GIVE_UP),
    (413, CHUNK_PUT, RejectedError, Action.GIVE_UP),
    (400, CHUNK_PUT, RejectedError, Action.GIVE_UP),
    (422, "call-ended", RejectedError, Action.GIVE_UP),
    (413, "upload URL", RejectedError, Action.GIVE_UP),
    *[(s, "call-ended", TransientError, Action.RETRY_LATER) for s in (408, 425, 429, 500, 504)],
    (502, "upload URL", TransientError, Action.RETRY_LATER),
    (503, CHUNK_PUT, TransientError, Action.RETRY_LATER),
    # anything else says nothing about the data: kept, and tried again later
    (409, "call-started", UnexpectedStatusError, Action.RETRY_LATER),
    (410, "upload URL", UnexpectedStatusError, Action.RETRY_LATER),
    (418, CHUNK_PUT, UnexpectedStatusError, Action.RETRY_LATER),
    (451, "call-ended", UnexpectedStatusError, Action.RETRY_LATER),
]


@pytest.mark.parametrize(("status", "what", "error", "action"), STATUS_ACTIONS)
def test_each_status_is_one_error_and_one_action(
    status: int, what: str, error: type[Exception] | None, action: Action
) -> None:
    classified = status_error(status, what, text="the answer's body")
    assert (type(classified) if classified is not None else None) is error
    assert action_for(classified) is action


def test_a_transient_status_keeps_the_servers_retry_after() -> None:
    error = status_error(429, "call-ended", retry_after=2.5)
    assert isinstance(error, TransientError) and error.retry_after == 2.5


@pytest.mark.parametrize(
    ("error", "action"),
    [
        (requests.ConnectionError(), Action.RETRY_LATER),
        (requests.Timeout(), Action.RETRY_LATER),
        (FileNotFoundError("c0000001.pcm"), Action.GIVE_UP),
    ],
)
def test_failures_other_than_a_status_are_one_action(error: Exception, action: Action) -> None:
    assert action_for(error) is action


def test_a_wrong_destination_pauses_every_call_with_one_error_naming_the_base_url(
    delivery: Delivery,
    transport: FakeTransport,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    answered = status_error(404, "call-started", url="http://127.0.0.1:9/api/v1/x")
    transport.fail("RM_a", "call-started", answered, answered)  # the probe fails once more
    with caplog.at_level(logging.WARNING, logger="roark"):
        first = _open_call(delivery, "RM_a")
        _send_all(delivery)
        second = _open_call(delivery, "RM_b")
        _send_all(delivery)
        clock.now += AUTH_PROBE_INTERVAL + 1
        delivery.wake_retries()
        _send_all(delivery)
    assert transport.requests == [("RM_a", "call-started"), ("RM_a", "call-started")]
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and errors[0].levelno == logging.ERROR
    message = errors[0].getMessage()
    assert "ROARK_BASE_URL" in message and "HTTP 404" in message
    assert "http://127.0.0.1:9/api/v1/x" in message

    clock.now += AUTH_PROBE_INTERVAL + 1  # fixed: the probe goes through and everything follows
    delivery.wake_retries()
    _send_all(delivery)
    assert transport.of("RM_a") == ["call-started", "call-started", *WHOLE_CALL]
    assert transport.of("RM_b") == WHOLE_CALL
    assert first.result(timeout=0) is True and second.result(timeout=0) is True


ROARK_400 = json.dumps(
    {
        "error": {
            "status": 400,
            "message": "invalid call-started: 'agentId' must be a non-empty string, got \"\"",
        }
    }
)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (ROARK_400, "agentId"),
        (json.dumps({"error": {"message": "bad", "field": "metadata.tier"}}), "metadata.tier"),
        (
            json.dumps({"errors": [{"path": ["transcript", 0, "content"], "message": "x"}]}),
            "transcript.0.content",
        ),
        (json.dumps({"detail": "invalid", "param": "isTest"}), "isTest"),
    ],
)
def test_a_refusal_of_the_data_names_the_call_and_the_field(
    delivery: Delivery,
    transport: FakeTransport,
    caplog: pytest.LogCaptureFixture,
    body: str,
    field: str,
) -> None:
    transport.fail("RM_a", "call-started", status_error(400, "call-started", text=body))
    with caplog.at_level(logging.WARNING, logger="roark"):
        done = _open_call(delivery, "RM_a")
        _send_all(delivery)
    # the refused event is given up, the rest of the call goes on
    assert transport.of("RM_a") == WHOLE_CALL
    assert done.result(timeout=0) is True
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    message = warning.getMessage()
    assert warning.levelno == logging.WARNING
    assert "call-started" in message and "RM_a" in message and "HTTP 400" in message
    assert f"field {field}" in message


def test_a_refusal_that_quotes_the_call_s_id_names_no_field(
    delivery: Delivery, transport: FakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    # the local Roark's answer to a call-ended whose call-started it never had
    body = json.dumps(
        {
            "error": {
                "status": 400,
                "message": "call-ended for 'RM_a' without a call-started before it",
            }
        }
    )
    transport.fail("RM_a", "call-ended", status_error(400, "call-ended", text=body))
    with caplog.at_level(logging.WARNING, logger="roark"):
        _open_call(delivery, "RM_a")
        _send_all(delivery)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "call-ended of call RM_a refused by Roark" in warning
    assert "field" not in warning


def test_a_quoted_answer_is_cut_short_and_never_carries_the_key() -> None:
    key = "rk-live-5d1f0c2b9a"
    body = json.dumps({"error": {"message": f"key {key} is not valid here; " + "x" * 5000}})
    error = status_error(422, "call-ended", text=body, secret=key)
    assert isinstance(error, RejectedError)
    assert key not in str(error) and "[key]" in str(error)
    assert len(str(error)) < 300
