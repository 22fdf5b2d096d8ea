"""The wire records as the contract spells them: optional fields only when known, finite
numbers, the transcript in audio order, a recording advertised only when it exists."""

from __future__ import annotations

from roark._handoff.records import CallDetails
from roark._threads import wire

T0 = 1767225600.0  # 2026-01-01T00:00:00Z


def test_metric_records_drop_non_finite_values() -> None:
    record = wire.metric(
        "llm",
        T0,
        10,
        {
            "ttft": float("nan"),
            "duration": float("inf"),
            "prompt_tokens": 5,
            "streamed": True,
            "model_name": "gpt",
            "cancelled": False,
            "odd_delay": 0.25,
        },
    )
    assert record == {
        "kind": "llm",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "audioOffsetMs": 10,
        "promptTokens": 5,
        "streamed": True,
        "extra": {"modelName": "gpt", "cancelled": False, "oddDelay": 0.25},
    }


def test_call_started_carries_only_the_details_known() -> None:
    details = CallDetails(
        agent_id="bot", is_test=False, room_sid="RM_1", job_id="", metadata={"tier": "gold"}
    )
    assert wire.call_started("RM_1", T0 + 0.0125, details) == {
        "event": "call-started",
        "livekitCallId": "RM_1",
        "eventTimestamp": "2026-01-01T00:00:00.012Z",
        "agentId": "bot",
        "isTest": False,
        "roomSid": "RM_1",
        "metadata": {"tier": "gold"},
    }


def _entry(role: str, start_ms: int, stop_ms: int) -> wire.TranscriptEntry:
    return wire.transcript_entry(
        role,  # type: ignore[arg-type]
        f"{role} at {start_ms}",
        span=(T0 + start_ms / 1000, T0 + stop_ms / 1000),
        offsets_ms=(start_ms, stop_ms),
        interrupted=False,
        language=None,
    )


def test_call_ended_orders_the_transcript_and_advertises_a_recording_only_with_chunks() -> None:
    transcript = [_entry("user", 1500, 2000), _entry("system", 0, 0), _entry("assistant", 200, 900)]
    ended = wire.call_ended(
        call_id="RM_1",
        started_at=T0,
        ended_at=T0 + 3,
        reason="agent-ended",
        transcript=transcript,
        tools=[],
        metrics=[],
        sample_rate=24000,
        chunks=2,
    )
    assert [(e["role"], e["audioOffsetMs"]) for e in ended["transcript"]] == [
        ("system", 0),
        ("assistant", 200),
        ("user", 1500),
    ]
    assert ended["agentSpokeFirst"] is True
    assert (ended["recordingSampleRate"], ended["recordingNumChannels"]) == (24000, 2)
    assert ended["callEndedAt"] == "2026-01-01T00:00:03.000Z"

    bare = wire.without_recording(ended)
    assert "recordingSampleRate" not in bare and "recordingNumChannels" not in bare
    no_chunks = wire.call_ended(
        call_id="RM_1",
        started_at=T0,
        ended_at=T0 + 3,
        reason="agent-ended",
        transcript=[],
        tools=[],
        metrics=[],
        sample_rate=24000,
        chunks=0,
    )
    assert "recordingSampleRate" not in no_chunks and "agentSpokeFirst" not in no_chunks


def test_the_upload_url_answer_is_read_with_or_without_its_envelope() -> None:
    assert wire.upload_url({"uploadUrl": "https://s/1"}) == "https://s/1"
    assert wire.upload_url({"data": {"uploadUrl": "https://s/2", "chunkIndex": 0}}) == "https://s/2"
