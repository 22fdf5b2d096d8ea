"""The local Roark on its own, driven with plain ``requests`` as a client would."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
import soundfile as sf

from roark.testing.server import EVENT_PATH, UPLOAD_URL_PATH, LocalRoark

KEY = "test-key-123"
RATE = 16_000


@pytest.fixture
def server(tmp_path: Any) -> Iterator[LocalRoark]:
    srv = LocalRoark(api_key=KEY, recordings_dir=tmp_path / "rec").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def auth(key: str = KEY) -> dict[str, str]:
    return {"x-roark-api-key": key, "Authorization": f"Bearer {key}"}


def started(cid: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": "call-started",
        "livekitCallId": cid,
        "eventTimestamp": "2026-01-02T03:04:05.000Z",
        "agentId": "support-bot",
        "agentName": "Support Bot",
        "isTest": True,
        "roomSid": cid,
        "metadata": {"customer": "acme", "tier": 2},
        **extra,
    }


def ended(cid: str, *, audio: bool, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": "call-ended",
        "livekitCallId": cid,
        "eventTimestamp": "2026-01-02T03:04:07.000Z",
        "callStartedAt": "2026-01-02T03:04:05.000Z",
        "callEndedAt": "2026-01-02T03:04:06.500Z",
        "callEndedReason": "participant-disconnected",
        "agentSpokeFirst": False,
        "transcript": [
            {
                "role": "user",
                "content": "hello there",
                "timestamp": "2026-01-02T03:04:05.000Z",
                "endTimestamp": "2026-01-02T03:04:05.250Z",
                "audioOffsetMs": 0,
                "endAudioOffsetMs": 250,
            }
        ],
        "toolCalls": [
            {
                "kind": "tool_call",
                "toolCallId": "t1",
                "name": "lookup",
                "arguments": '{"q": "x"}',
                "timestamp": "2026-01-02T03:04:05.300Z",
                "audioOffsetMs": 300,
            },
            {
                "kind": "tool_result",
                "toolCallId": "t1",
                "content": "42",
                "isError": False,
                "timestamp": "2026-01-02T03:04:05.310Z",
                "audioOffsetMs": 310,
            },
        ],
        "metrics": [
            {
                "kind": "llm",
                "timestamp": "2026-01-02T03:04:05.400Z",
                "audioOffsetMs": 400,
                "ttft": 0.25,
                "promptTokens": 12,
                "extra": {"model": "m"},
            }
        ],
    }
    if audio:
        body["recordingSampleRate"] = RATE
        body["recordingNumChannels"] = 2
    body.update(extra)
    return body


def stereo_pcm(seconds: float = 0.5) -> np.ndarray:
    """Left: a 440 Hz tone in the first half, then silence. Right: silence."""
    frames = int(RATE * seconds)
    t = np.arange(frames) / RATE
    left = (0.5 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    left[frames // 2 :] = 0
    return np.stack([left, np.zeros(frames, dtype=np.int16)], axis=1)


def post_event(client: requests.Session, server: LocalRoark, body: Any) -> requests.Response:
    return client.post(server.base_url + EVENT_PATH, json=body, headers=auth(), timeout=5)


def upload_url(
    client: requests.Session, server: LocalRoark, cid: str, index: int
) -> requests.Response:
    body = {"livekitCallId": cid, "chunkIndex": index, "contentType": "audio/pcm"}
    return client.post(server.base_url + UPLOAD_URL_PATH, json=body, headers=auth(), timeout=5)


def put_chunk(
    client: requests.Session, server: LocalRoark, cid: str, index: int, data: bytes
) -> str:
    resp = upload_url(client, server, cid, index)
    assert resp.status_code == 200
    url = resp.json()["data"]["uploadUrl"]
    put = client.put(url, data=data, headers={"Content-Type": "audio/pcm"}, timeout=5)
    assert put.status_code == 200
    assert put.content == b""
    return url


# ------------------------------------------------------------------------- auth


def test_auth_is_required_on_api_requests(server: LocalRoark, client: requests.Session) -> None:
    url = server.base_url + EVENT_PATH
    body = started("RM_auth")

    assert client.post(url, json=body, timeout=5).status_code == 401
    wrong = client.post(url, json=body, headers=auth("other-key"), timeout=5)
    assert wrong.status_code == 401
    assert wrong.json() == {"error": {"status": 401, "message": "invalid API key"}}
    mismatched = {"x-roark-api-key": KEY, "Authorization": "Bearer other-key"}
    assert client.post(url, json=body, headers=mismatched, timeout=5).status_code == 401
    only_key = {"x-roark-api-key": KEY}
    assert upload_url_with(client, server, only_key).status_code == 401

    assert server.calls() == {}
    assert server.violations == [
        f"POST {EVENT_PATH}: missing header(s) x-roark-api-key, Authorization",
        f"POST {EVENT_PATH}: Authorization is not 'Bearer ' + the x-roark-api-key value",
        f"POST {UPLOAD_URL_PATH}: missing header(s) Authorization",
    ]

    server.revoke_key()
    assert post_event(client, server, body).status_code == 401
    server.restore_key()
    assert post_event(client, server, body).status_code == 200
    assert server.call("RM_auth").started_count == 1

    server.api_key = "rotated"
    assert post_event(client, server, body).status_code == 401
    assert len(server.violations) == 3  # wrong or revoked keys are not contract violations

    log = server.requests_log
    assert [r.status for r in log] == [401, 401, 401, 401, 401, 200, 401]
    assert log[1].headers["x-roark-api-key"] == "<redacted>"
    assert log[1].headers["authorization"] == "<redacted>"
    assert "x-roark-api-key" not in log[0].headers
    assert all(KEY not in json.dumps(r.headers) for r in log)


def upload_url_with(
    client: requests.Session, server: LocalRoark, headers: dict[str, str]
) -> requests.Response:
    body = {"livekitCallId": "RM_auth", "chunkIndex": 0, "contentType": "audio/pcm"}
    return client.post(server.base_url + UPLOAD_URL_PATH, json=body, headers=headers, timeout=5)


# ------------------------------------------------------------------------- a whole call


def test_full_call_is_stitched_into_a_stereo_wav(
    server: LocalRoark, client: requests.Session
) -> None:
    cid = "RM_full"
    pcm = stereo_pcm(0.5)
    raw = pcm.astype("<i2").tobytes()
    split = 3001 * 4  # whole frames, deliberately uneven halves

    assert post_event(client, server, started(cid)).status_code == 200
    put_chunk(client, server, cid, 0, raw[:split])
    put_chunk(client, server, cid, 1, raw[split:])
    resp = post_event(client, server, ended(cid, audio=True))
    assert resp.status_code == 200
    assert resp.json() == {"success": True}

    call = server.wait_for_call(cid, timeout=5)
    assert server.violations == []
    assert call.started_count == 1
    assert call.ended_count == 1
    assert call.chunk_puts == [0, 1]
    assert call.upload_url_requests == [0, 1]
    assert call.chunks == {0: raw[:split], 1: raw[split:]}
    assert call.sample_rate == RATE
    assert call.recording is not None
    assert call.recording.dtype == np.int16
    assert call.recording.shape == (8000, 2)
    np.testing.assert_array_equal(call.recording, pcm)
    assert np.count_nonzero(call.user_audio[:4000]) > 3900
    assert np.count_nonzero(call.user_audio[4000:]) == 0
    assert np.count_nonzero(call.agent_audio) == 0
    assert call.duration_s == 0.5

    assert call.recording_path == server.recordings_dir / "RM_full.wav"
    data, rate = sf.read(call.recording_path, dtype="int16", always_2d=True)
    info = sf.info(call.recording_path)
    assert (rate, info.channels, info.frames, info.subtype) == (RATE, 2, 8000, "PCM_16")
    np.testing.assert_array_equal(data, pcm)

    assert call.agent_id == "support-bot"
    assert call.metadata == {"customer": "acme", "tier": 2}
    assert call.reason == "participant-disconnected"
    assert [t["content"] for t in call.transcript] == ["hello there"]
    assert [t["kind"] for t in call.tool_calls] == ["tool_call", "tool_result"]
    assert call.metrics[0]["ttft"] == 0.25
    assert [e["event"] for e in call.events] == ["call-started", "call-ended"]
    assert list(server.calls()) == [cid]
    assert [r.endpoint for r in server.requests_log] == [
        "event", "upload_url", "put", "upload_url", "put", "event",
    ]  # fmt: skip
    assert server.wait_for_calls(1, timeout=1)[0].livekit_call_id == cid
    assert server.wait_for_call(timeout=1).livekit_call_id == cid


def test_call_without_audio_and_resent_events(server: LocalRoark, client: requests.Session) -> None:
    cid = "RM_quiet"
    assert post_event(client, server, started(cid)).status_code == 200
    assert post_event(client, server, started(cid, agentName="Renamed")).status_code == 200
    assert post_event(client, server, ended(cid, audio=False)).status_code == 200
    assert (
        post_event(client, server, ended(cid, audio=False, callEndedReason="x")).status_code == 200
    )

    call = server.wait_for_call(cid, timeout=5)
    assert (call.started_count, call.ended_count) == (2, 2)
    assert call.started is not None and call.started["agentName"] == "Support Bot"
    assert call.reason == "participant-disconnected"
    assert (call.recording, call.recording_path, call.duration_s) == (None, None, None)
    assert server.violations == []


def test_wait_for_call_times_out_with_what_was_received(server: LocalRoark) -> None:
    with pytest.raises(TimeoutError) as info:
        server.wait_for_call("RM_missing", timeout=0.05)
    assert "no call-ended for 'RM_missing' within 0.05 s" in str(info.value)
    assert "Calls received: none" in str(info.value)
    with pytest.raises(KeyError):
        server.call("RM_missing")


# ------------------------------------------------------------------------- upload URLs


def test_upload_url_is_one_shot(server: LocalRoark, client: requests.Session) -> None:
    url = put_chunk(client, server, "RM_once", 0, b"\x01\x00\x02\x00")
    again = client.put(
        url, data=b"\x03\x00\x04\x00", headers={"Content-Type": "audio/pcm"}, timeout=5
    )
    assert again.status_code == 403
    assert server.call("RM_once").chunks == {0: b"\x01\x00\x02\x00"}
    assert server.call("RM_once").chunk_puts == [0]
    assert server.violations == [
        "PUT /_storage/...: upload URL already used (one PUT per upload URL)"
    ]


def test_put_with_roark_auth_is_rejected_and_counted(
    server: LocalRoark, client: requests.Session
) -> None:
    url = upload_url(client, server, "RM_leak", 0).json()["data"]["uploadUrl"]
    pcm_headers = {"Content-Type": "audio/pcm"}
    leaked = client.put(url, data=b"\0" * 8, headers={**pcm_headers, **auth()}, timeout=5)
    assert leaked.status_code == 400
    assert b"InvalidArgument" in leaked.content
    assert server.put_header_violations == 1
    assert len(server.violations) == 1
    assert "carried a Roark auth header" in server.violations[0]
    assert server.call("RM_leak").chunks == {}
    assert server.requests_log[-1].headers["authorization"] == "<redacted>"

    # the failed PUT did not consume the URL
    assert client.put(url, data=b"\0" * 8, headers=pcm_headers, timeout=5).status_code == 200
    assert server.call("RM_leak").chunks == {0: b"\0" * 8}
    assert server.put_header_violations == 1


def test_put_checks_content_type_and_whole_frames(
    server: LocalRoark, client: requests.Session
) -> None:
    url = upload_url(client, server, "RM_bad", 0).json()["data"]["uploadUrl"]
    octets = {"Content-Type": "application/octet-stream"}
    assert client.put(url, data=b"\0" * 4, headers=octets, timeout=5).status_code == 400
    pcm = {"Content-Type": "audio/pcm"}
    assert client.put(url, data=b"\0" * 6, headers=pcm, timeout=5).status_code == 400
    assert (
        client.put(server.base_url + "/_storage/nope", data=b"", headers=pcm, timeout=5).status_code
        == 403
    )
    assert server.call("RM_bad").chunks == {}
    assert len(server.violations) == 3


def test_chunked_put_is_refused(server: LocalRoark, client: requests.Session) -> None:
    url = upload_url(client, server, "RM_chunked", 0).json()["data"]["uploadUrl"]
    pcm = {"Content-Type": "audio/pcm"}
    resp = client.put(url, data=iter([b"\0" * 4, b"\0" * 4]), headers=pcm, timeout=5)
    assert resp.status_code == 411
    assert server.violations == [
        "PUT /_storage/" + url.rsplit("/", 1)[1] + ": chunked Transfer-Encoding is refused; "
        "send Content-Length"
    ]
    assert client.put(url, data=b"\0" * 8, headers=pcm, timeout=5).status_code == 200


def test_upload_url_envelope_on_and_off(server: LocalRoark, client: requests.Session) -> None:
    wrapped = upload_url(client, server, "RM_env", 3).json()
    assert list(wrapped) == ["data"]
    data = wrapped["data"]
    assert data["uploadUrl"].startswith(server.base_url + "/_storage/")
    assert {k: v for k, v in data.items() if k != "uploadUrl"} == {
        "s3Key": "recordings/RM_env/3.pcm",
        "chunkIndex": 3,
        "expiresInSeconds": 900,
        "method": "PUT",
        "contentType": "audio/pcm",
    }
    server.envelope = False
    bare = upload_url(client, server, "RM_env", 4).json()
    assert set(bare) == {
        "uploadUrl",
        "s3Key",
        "chunkIndex",
        "expiresInSeconds",
        "method",
        "contentType",
    }
    assert bare["chunkIndex"] == 4
    assert bare["uploadUrl"] != data["uploadUrl"]


def test_bare_answers_when_built_without_envelope(client: requests.Session) -> None:
    with LocalRoark(api_key=KEY, envelope=False) as srv:
        assert "data" not in upload_url(client, srv, "RM_bare", 0).json()


def test_upload_url_request_is_validated(server: LocalRoark, client: requests.Session) -> None:
    body = {"livekitCallId": "RM_v", "chunkIndex": -1, "contentType": "audio/wav"}
    resp = client.post(server.base_url + UPLOAD_URL_PATH, json=body, headers=auth(), timeout=5)
    assert resp.status_code == 400
    assert server.violations == [
        (
            f"POST {UPLOAD_URL_PATH}: 'chunkIndex' must be >= 0, got -1; "
            "'contentType' must be 'audio/pcm', got \"audio/wav\""
        )
    ]


# ------------------------------------------------------------------------- contract checks


def test_nan_is_rejected(server: LocalRoark, client: requests.Session) -> None:
    body = json.dumps(ended("RM_nan", audio=False)).replace('"ttft": 0.25', '"ttft": NaN')
    headers = {**auth(), "Content-Type": "application/json"}
    resp = client.post(server.base_url + EVENT_PATH, data=body, headers=headers, timeout=5)
    assert resp.status_code == 400
    assert server.violations == [
        f"POST {EVENT_PATH}: body is not valid JSON: NaN is not valid JSON (numbers must be finite)"
    ]
    assert server.calls() == {}


def test_invalid_bodies_are_rejected_with_reasons(
    server: LocalRoark, client: requests.Session
) -> None:
    bad_started = started("RM_bad", isTest="yes", agentName="", eventTimestamp="yesterday")
    resp = post_event(client, server, bad_started)
    assert resp.status_code == 400
    assert server.violations == [
        (
            f"POST {EVENT_PATH} call-started for 'RM_bad': 'eventTimestamp' must be an ISO 8601 "
            'UTC timestamp, got "yesterday"; \'agentName\' must be a non-empty string, got ""; '
            "'isTest' must be a boolean, got \"yes\""
        )
    ]
    assert "'isTest' must be a boolean" in resp.json()["error"]["message"]

    assert post_event(client, server, started("RM_bad")).status_code == 200
    put_chunk(client, server, "RM_bad", 0, b"\0" * 16)
    body = ended("RM_bad", audio=False)  # chunks exist but no recordingSampleRate
    body["transcript"][0]["endAudioOffsetMs"] = -5
    # 1e999 parses to infinity without any NaN/Infinity literal
    raw = json.dumps(body).replace('"ttft": 0.25', '"ttft": 1e999')
    headers = {**auth(), "Content-Type": "application/json"}
    resp = client.post(server.base_url + EVENT_PATH, data=raw, headers=headers, timeout=5)
    assert resp.status_code == 400
    assert server.violations[1:] == [
        (
            f"POST {EVENT_PATH} call-ended for 'RM_bad': metrics[0].ttft is not a finite number "
            "(inf); missing 'recordingSampleRate' although audio chunks were uploaded; missing "
            "'recordingNumChannels' although audio chunks were uploaded; transcript[0]: "
            "'endAudioOffsetMs' (-5) is before 'audioOffsetMs' (0); metrics[0]: 'ttft' must be "
            "a finite number, got Infinity"
        )
    ]
    call = server.call("RM_bad")
    assert (call.ended, call.ended_count) == (None, 0)
    assert len(call.violations) == 2


def test_call_ended_without_call_started(server: LocalRoark, client: requests.Session) -> None:
    assert post_event(client, server, ended("RM_orphan", audio=False)).status_code == 400
    call = server.wait_for_call("RM_orphan", timeout=5)
    assert (call.started, call.ended_count) == (None, 1)
    assert server.violations == [
        f"POST {EVENT_PATH}: call-ended for 'RM_orphan' without a call-started before it"
    ]


def test_gap_in_chunk_indices_is_a_violation(server: LocalRoark, client: requests.Session) -> None:
    cid = "RM_gap"
    assert post_event(client, server, started(cid)).status_code == 200
    put_chunk(client, server, cid, 0, b"\x01\x00\x02\x00")
    put_chunk(client, server, cid, 2, b"\x03\x00\x04\x00")
    assert post_event(client, server, ended(cid, audio=True)).status_code == 200
    call = server.wait_for_call(cid, timeout=5)
    assert server.violations == [
        "call 'RM_gap': chunk indices must be 0..n-1 without gaps; got [0, 2], missing [1]"
    ]
    assert call.violations == server.violations
    assert call.recording is not None
    assert call.recording.tolist() == [[1, 2], [3, 4]]


def test_chunk_after_call_ended_is_a_violation(
    server: LocalRoark, client: requests.Session
) -> None:
    cid = "RM_late"
    assert post_event(client, server, started(cid)).status_code == 200
    put_chunk(client, server, cid, 0, b"\0" * 4)
    assert post_event(client, server, ended(cid, audio=True)).status_code == 200
    put_chunk(client, server, cid, 1, b"\0" * 4)
    assert server.violations == [
        f"POST {UPLOAD_URL_PATH}: upload URL for chunk 1 of 'RM_late' asked after call-ended",
        "PUT chunk 1 of 'RM_late' arrived after call-ended",
    ]


def test_unknown_paths(server: LocalRoark, client: requests.Session) -> None:
    assert client.get(server.base_url + "/_health", timeout=5).json() == {"ok": True}
    assert client.post(server.base_url + "/v1/other", json={}, timeout=5).status_code == 404
    assert client.get(server.base_url + EVENT_PATH, timeout=5).status_code == 405
    assert [r.endpoint for r in server.requests_log] == ["unknown"] * 3
    assert len(server.violations) == 2


# ------------------------------------------------------------------------- faults


def test_error_fault_answers_status_and_changes_nothing(
    server: LocalRoark, client: requests.Session
) -> None:
    server.set_faults(error_rate=1.0, retry_after=2)
    resp = post_event(client, server, started("RM_err"))
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "2"
    server.set_faults(error_rate=1.0, error_status=429, retry_after=0.25)
    assert post_event(client, server, started("RM_err")).headers["Retry-After"] == "0.25"
    server.set_faults(error_rate=1.0)
    resp = upload_url(client, server, "RM_err", 0)
    assert resp.status_code == 503
    assert "Retry-After" not in resp.headers
    assert server.calls() == {}
    assert [(r.status, r.fault) for r in server.requests_log] == [
        (503, "error"),
        (429, "error"),
        (503, "error"),
    ]

    server.set_faults(error_rate=1.0, endpoints=["put"])
    assert post_event(client, server, started("RM_err")).status_code == 200
    url = upload_url(client, server, "RM_err", 0).json()["data"]["uploadUrl"]
    pcm = {"Content-Type": "audio/pcm"}
    assert client.put(url, data=b"\0" * 4, headers=pcm, timeout=5).status_code == 503
    server.clear_faults()
    assert client.put(url, data=b"\0" * 4, headers=pcm, timeout=5).status_code == 200
    assert server.violations == []


def test_faults_are_deterministic_per_seed(server: LocalRoark, client: requests.Session) -> None:
    def statuses() -> list[int]:
        server.set_faults(error_rate=0.5, seed=7)
        return [post_event(client, server, started("RM_seed")).status_code for _ in range(12)]

    first = statuses()
    assert statuses() == first
    assert set(first) == {200, 503}


def test_drop_fault_closes_without_answer(server: LocalRoark, client: requests.Session) -> None:
    server.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        post_event(client, server, started("RM_drop"))
    assert server.calls() == {}
    assert [(r.status, r.fault) for r in server.requests_log] == [(None, "drop")]
    server.clear_faults()
    assert post_event(client, server, started("RM_drop")).status_code == 200


def test_latency_fault_delays(server: LocalRoark, client: requests.Session) -> None:
    server.set_faults(latency=0.15, endpoints=["event"])
    began = time.monotonic()
    assert post_event(client, server, started("RM_slow")).status_code == 200
    assert time.monotonic() - began >= 0.15
    assert server.requests_log[-1].fault == "latency"


def test_hang_blocks_until_cleared(server: LocalRoark, client: requests.Session) -> None:
    server.set_faults(hang=True, endpoints=["event"])
    outcome: list[BaseException | int] = []

    def send() -> None:
        try:
            outcome.append(post_event(requests.Session(), server, started("RM_hang")).status_code)
        except requests.RequestException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=send)
    worker.start()
    server.wait_until(lambda s: any(r.fault == "hang" for r in s.requests_log), timeout=5)
    assert worker.is_alive()
    assert outcome == []
    # other endpoints are not affected
    assert upload_url(client, server, "RM_hang", 0).status_code == 200

    released = time.monotonic()
    server.clear_faults()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert time.monotonic() - released < 2
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)
    assert server.call("RM_hang").started is None
    assert post_event(client, server, started("RM_hang")).status_code == 200


def test_stop_releases_hanging_requests_promptly(client: requests.Session) -> None:
    srv = LocalRoark(api_key=KEY).start()
    srv.set_faults(hang=True)
    worker = threading.Thread(target=lambda: _swallow(lambda: post_event(client, srv, {})))
    worker.start()
    srv.wait_until(lambda s: len(s.requests_log) == 1 and s.requests_log[0].fault == "hang")
    began = time.monotonic()
    srv.stop()
    srv.stop()  # idempotent
    assert time.monotonic() - began < 2
    worker.join(timeout=5)
    assert not worker.is_alive()


def _swallow(fn: Any) -> None:
    try:
        fn()
    except requests.RequestException:
        pass


def test_keep_alive_and_stop_closes_idle_connections() -> None:
    srv = LocalRoark(api_key=KEY).start()
    host, port = srv.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for _ in range(3):  # three requests on one connection
            conn.request("GET", "/_health")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b'{"ok":true}')
        srv.stop()
        with pytest.raises((http.client.HTTPException, OSError)):
            conn.request("GET", "/_health")
            conn.getresponse()
    finally:
        conn.close()
        srv.stop()
