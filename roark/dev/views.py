"""What the viewer's pages get: the calls list and one call, as JSON-ready dicts.

Built from a :class:`~.store.FolderStore` on request; the expensive parts (peaks, speech,
latency, alignment) were computed once when the call ended.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from ..testing.server.contract import format_runs, index_gaps
from .store import FolderStore

# the transcript may run a little past the recording: the last words' offsets are rounded
_SPOKEN_SLACK_S = 0.5


def _indices(text: str | None) -> set[int]:
    return {int(part) for part in text.split(",")} if text else set()


def _ranges(indices: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``'1-3, 7'``."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return format_runs(runs)


def wholeness(row: dict[str, Any]) -> list[str]:
    """Why a call did not arrive whole (call-started, every chunk, call-ended); [] if it did."""
    problems = []
    if not row["started_count"]:
        problems.append("no call-started")
    if not row["ended_count"]:
        problems.append("no call-ended (yet)")
    chunks, asked = _indices(row["chunk_list"]), _indices(row["asked_list"])
    gaps = index_gaps(list(chunks))
    if gaps:
        problems.append(f"chunk(s) {format_runs(gaps)} missing")
    never = sorted(asked - chunks)
    if never:
        problems.append(f"chunk(s) {_ranges(never)} asked for an upload URL but never stored")
    recorded = row["frames"] / row["sample_rate"] if row["frames"] and row["sample_rate"] else 0
    spoken = (row["spoken_to_ms"] or 0) / 1000
    if row["ended_count"] and chunks and spoken > recorded + _SPOKEN_SLACK_S:
        problems.append(f"the recording ends at {recorded:.1f} s, the transcript at {spoken:.1f} s")
    return problems


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        a = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        b = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((b - a).total_seconds(), 3)


def _recorded_s(row: dict[str, Any]) -> float | None:
    if row["frames"] is None or not row["sample_rate"]:
        return None
    return round(row["frames"] / row["sample_rate"], 3)


def list_row(row: dict[str, Any]) -> dict[str, Any]:
    """One line of the calls list: ``duration_s`` is how long the call lasted (its
    call-ended's times), ``recording_s`` how much of it was recorded."""
    recorded = _recorded_s(row)
    duration = _seconds_between(row["call_started_at"], row["call_ended_at"])
    problems = wholeness(row)
    return {
        "id": row["call_id"],
        "key": row["folder"],
        "url": "/calls/" + quote(row["folder"]),
        "agent_id": row["agent_id"],
        "agent_name": row["agent_name"],
        "started_at": row["started_at"] or row["call_started_at"],
        "duration_s": duration if duration is not None else recorded,
        "recording_s": recorded,
        "reason": row["reason"],
        "turns": row["turns"],
        "tool_calls": row["tool_calls"],
        "tool_errors": row["tool_errors"],
        "interruptions": row["interruptions"],
        "is_test": None if row["is_test"] is None else bool(row["is_test"]),
        "ended": bool(row["ended_count"]),
        "whole": not problems,
        "problems": problems,
        "violations": row["violation_count"],
    }


def calls_list(
    store: FolderStore, agent_id: str | None = None, call_id: str | None = None
) -> dict[str, Any]:
    """The calls list: rows newest first (one agent's, one call's when given), and every
    agent."""
    return {
        "calls": [list_row(r) for r in store.rows(agent_id=agent_id, call_id=call_id)],
        "agents": store.agents(),
    }


_IDS = ("livekitCallId", "roomSid", "roomName", "jobId", "participantIdentity", "agentId")
# which LiveKit agent (Agent.id) spoke a turn or ran a tool: calls with handoffs have several
_AGENT_FIELD = "livekitAgentId"


def _seconds(record: dict[str, Any], key: str = "audioOffsetMs") -> float | None:
    value = record.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / 1000
    return None


def _tools(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each tool call with its result (``result_at_s`` None: no result arrived)."""
    results = {r.get("toolCallId"): r for r in records if r.get("kind") == "tool_result"}
    tools = []
    for call in (r for r in records if r.get("kind") == "tool_call"):
        result = results.get(call.get("toolCallId"))
        tools.append(
            {
                "id": call.get("toolCallId"),
                "name": call.get("name"),
                "arguments": call.get("arguments"),
                "at_s": _seconds(call) or 0.0,
                "agent": call.get(_AGENT_FIELD),
                "result": None if result is None else result.get("content"),
                "is_error": bool(result and result.get("isError")),
                "result_at_s": None if result is None else _seconds(result),
            }
        )
    return tools


def _agents(transcript: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[str]:
    """The LiveKit agents of the call, in the order they first spoke or acted."""
    named = [t.get(_AGENT_FIELD) for t in transcript] + [t["agent"] for t in tools]
    return list(dict.fromkeys(a for a in named if isinstance(a, str) and a))


def _no_recording(row: dict[str, Any], ended: dict[str, Any]) -> str:
    """Why the call has no recording to show, in the viewer's words."""
    chunks, asked = _indices(row["chunk_list"]), _indices(row["asked_list"])
    if not row["ended_count"]:
        if chunks:
            return (
                f"No recording yet: {len(chunks)} chunk(s) stored; the call is stitched when "
                "its call-ended arrives (it carries the sample rate)."
            )
        return "No recording yet: no call-ended and no chunk so far."
    if asked and not chunks:
        return (
            f"No recording: chunk(s) {_ranges(sorted(asked))} asked for an upload URL but never "
            "stored (refused or lost), so no audio of this call arrived."
        )
    if not chunks and "recordingSampleRate" not in ended:
        return "No audio: the call sent no recording (a text-only session, or no audio I/O)."
    if chunks and row["frames"] == 0:
        return "No recording: the chunks stored hold no audio (0 frames)."
    return "No recording: no chunk of this call was stored."


def call_page(store: FolderStore, key: str) -> dict[str, Any] | None:
    """Everything the page of one call shows, or None if there is no such call."""
    call_id = store.call_id_of(key)
    rows = store.rows(call_id=call_id) if call_id is not None else []
    if not rows:
        return None
    row = rows[0]
    started = store.first_event(call_id, "call-started") or {}
    ended = store.first_event(call_id, "call-ended") or {}
    # a recording of no frames (empty chunks) has nothing to draw or play
    analysis = store.analysis_of(call_id) if row["frames"] else None
    base = f"/api/calls/{quote(key)}"
    metric_kinds: dict[str, int] = {}
    for record in ended.get("metrics") or []:
        metric_kinds[str(record.get("kind"))] = metric_kinds.get(str(record.get("kind")), 0) + 1
    transcript = ended.get("transcript") or []
    tools = _tools(ended.get("toolCalls") or [])
    return {
        "call": list_row(row),
        "ids": {name: started[name] for name in _IDS if name in started},
        "agent_name": started.get("agentName"),
        "prompt": started.get("agentPrompt"),
        "metadata": started.get("metadata") or {},
        "agent_spoke_first": ended.get("agentSpokeFirst"),
        "transcript": transcript,
        "agents": _agents(transcript, tools),
        "tools": tools,
        "metric_kinds": metric_kinds,
        "analysis": analysis,
        "violations": store.violations_of(call_id),
        "audio": None
        if analysis is None
        else {"url": f"{base}/recording.wav", "peaks": f"{base}/peaks"},
        "no_recording": None if analysis is not None else _no_recording(row, ended),
        "downloads": {
            "recording": f"{base}/recording.wav?download=1" if analysis is not None else None,
            "call_started": f"{base}/call-started.json" if started else None,
            "call_ended": f"{base}/call-ended.json" if ended else None,
        },
    }
