"""What the viewer's pages get: the calls list and one call, as JSON-ready dicts.

Built from a :class:`~.store.FolderStore` on request; the expensive parts (peaks, speech,
latency, alignment) were computed once when the call ended.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from .store import FolderStore

# the transcript may run a little past the recording: the last words' offsets are rounded
_SPOKEN_SLACK_S = 0.5


def _indices(text: str | None) -> set[int]:
    return {int(part) for part in text.split(",")} if text else set()


def _ranges(indices: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``'1-3, 7'``."""
    groups: list[list[int]] = []
    for i in indices:
        if groups and i == groups[-1][-1] + 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    return ", ".join(str(g[0]) if len(g) == 1 else f"{g[0]}-{g[-1]}" for g in groups)


def wholeness(row: dict[str, Any]) -> list[str]:
    """Why a call did not arrive whole (call-started, every chunk, call-ended); [] if it did."""
    problems = []
    if not row["started_count"]:
        problems.append("no call-started")
    if not row["ended_count"]:
        problems.append("no call-ended (yet)")
    chunks, asked = _indices(row["chunk_list"]), _indices(row["asked_list"])
    if chunks:
        gaps = sorted(set(range(max(chunks) + 1)) - chunks)
        if gaps:
            problems.append(f"chunk(s) {_ranges(gaps)} missing")
    never = sorted(asked - chunks)
    if never:
        problems.append(f"chunk(s) {_ranges(never)} asked for an upload URL but never stored")
    recorded = row["frames"] / row["sample_rate"] if row["frames"] and row["sample_rate"] else 0
    spoken = (row["spoken_to_ms"] or 0) / 1000
    if row["ended_count"] and chunks and spoken > recorded + _SPOKEN_SLACK_S:
        problems.append(f"the recording ends at {recorded:.1f} s, the transcript at {spoken:.1f} s")
    return problems


def _seconds_between(start: str | None, end: str | None) -> float | None:
    try:
        a = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        b = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return None
    return round((b - a).total_seconds(), 3)


def list_row(row: dict[str, Any]) -> dict[str, Any]:
    """One line of the calls list."""
    if row["frames"] and row["sample_rate"]:
        duration = round(row["frames"] / row["sample_rate"], 3)
    else:
        duration = _seconds_between(row["call_started_at"], row["call_ended_at"])
    problems = wholeness(row)
    return {
        "id": row["call_id"],
        "key": row["folder"],
        "url": "/calls/" + quote(row["folder"]),
        "agent_id": row["agent_id"],
        "agent_name": row["agent_name"],
        "started_at": row["started_at"] or row["call_started_at"],
        "duration_s": duration,
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


def calls_list(store: FolderStore, agent_id: str | None = None) -> dict[str, Any]:
    """The calls list: rows newest first (one agent's when given), and every agent."""
    return {
        "calls": [list_row(r) for r in store.rows(agent_id=agent_id)],
        "agents": store.agents(),
    }


def _tools(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = {r.get("toolCallId"): r for r in records if r.get("kind") == "tool_result"}
    tools = []
    for call in (r for r in records if r.get("kind") == "tool_call"):
        result = results.get(call.get("toolCallId")) or {}
        tools.append(
            {
                "id": call.get("toolCallId"),
                "name": call.get("name"),
                "arguments": call.get("arguments"),
                "at_s": call.get("audioOffsetMs", 0) / 1000,
                "result": result.get("content"),
                "is_error": bool(result.get("isError")),
                "result_at_s": result["audioOffsetMs"] / 1000 if result else None,
            }
        )
    return tools


_IDS = ("livekitCallId", "roomSid", "roomName", "jobId", "participantIdentity", "agentId")


def call_page(store: FolderStore, key: str) -> dict[str, Any] | None:
    """Everything the page of one call shows, or None if there is no such call."""
    call_id = store.call_id_of(key)
    rows = store.rows(call_id=call_id) if call_id is not None else []
    if not rows:
        return None
    started = store.first_event(call_id, "call-started") or {}
    ended = store.first_event(call_id, "call-ended") or {}
    folder = store.call_folder(call_id)
    analysis_file = folder / "analysis.json"
    analysis = json.loads(analysis_file.read_text()) if analysis_file.exists() else None
    base = f"/api/calls/{quote(key)}"
    metric_kinds: dict[str, int] = {}
    for record in ended.get("metrics") or []:
        metric_kinds[str(record.get("kind"))] = metric_kinds.get(str(record.get("kind")), 0) + 1
    return {
        "call": list_row(rows[0]),
        "ids": {name: started[name] for name in _IDS if name in started},
        "agent_name": started.get("agentName"),
        "prompt": started.get("agentPrompt"),
        "metadata": started.get("metadata") or {},
        "agent_spoke_first": ended.get("agentSpokeFirst"),
        "transcript": ended.get("transcript") or [],
        "tools": _tools(ended.get("toolCalls") or []),
        "metric_kinds": metric_kinds,
        "analysis": analysis,
        "violations": store.violations_of(call_id),
        "audio": None
        if analysis is None
        else {"url": f"{base}/recording.wav", "peaks": f"{base}/peaks"},
        "downloads": {
            "recording": f"{base}/recording.wav?download=1" if analysis is not None else None,
            "call_started": f"{base}/call-started.json" if started else None,
            "call_ended": f"{base}/call-ended.json" if ended else None,
        },
    }
