"""Session event handlers (asyncio side): read what a record needs, hand it over, return.

Every handler runs behind roark's failure boundary (``roark._failures.guarded``): nothing
raised here reaches LiveKit's event emitter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from livekit import rtc

from .._failures import guard, guarded
from .._handoff.channel import CallChannel
from .._handoff.records import Message, Metric, Role, Tools, Usage
from .history import HistoryFollower, ToolLedger, agent_configs
from .places import Speech, ToolEnds

# VAD metrics arrive many times a second and say nothing about the call's quality
_SKIPPED_METRICS = {"vad_metrics"}
_ROLES: dict[str, Role] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
}
_TURN_SKIP = {"started_speaking_at", "stopped_speaking_at"}

CLOSE_REASONS = {
    "job_shutdown": "job-shutdown",
    "participant_disconnected": "participant-disconnected",
    "user_initiated": "agent-ended",
    "task_completed": "agent-ended",
    "error": "error",
}


def _scalars(data: dict[str, Any], skip: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in skip or key in ("type", "timestamp", "label", "request_id", "speech_id"):
            continue
        if isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif key == "metadata" and isinstance(value, dict):
            out.update({k: v for k, v in value.items() if isinstance(v, str)})
    return out


class SessionHooks:
    """Subscribes to one ``AgentSession``'s events and posts records of them."""

    def __init__(self, channel: CallChannel, on_close: Callable[[str], None]) -> None:
        self._post = channel.post
        # LiveKit's time.time() stamps, moved onto the call's clock as they arrive
        self._clock = channel.clock
        self._on_close = on_close
        self._session: Any = None
        # the LiveKit agent speaking, from the session's AgentHandoff items
        self._agent_id: str | None = None
        self._tools = ToolLedger()
        self._history = HistoryFollower()
        self._user_speech = Speech(self._clock)
        self._agent_speech = Speech(self._clock)
        self._tool_ends = ToolEnds(self._clock)
        handlers: dict[str, Callable[[Any], None]] = {
            "conversation_item_added": self.conversation_item_added,
            "function_tools_executed": self.function_tools_executed,
            "tool_execution_updated": self.tool_execution_updated,
            "user_state_changed": self._user_speech.changed,
            "agent_state_changed": self._agent_speech.changed,
            "metrics_collected": self.metrics_collected,
            "error": self.error,
            "close": self.close,
        }
        self._handlers = {
            event: guarded(f"the session's {event} handler", handler)
            for event, handler in handlers.items()
        }

    def attach(self, session: Any) -> None:
        self._session = session
        for event, handler in self._handlers.items():
            if event == "metrics_collected" and isinstance(session, rtc.EventEmitter):
                # AgentSession.on() warns that metrics_collected is deprecated (1.8+); the
                # warning is about the user's code, and roark subscribing must not print it
                rtc.EventEmitter.on(session, event, handler)
            else:
                session.on(event, handler)

    def detach(self, session: Any) -> None:
        for event, handler in self._handlers.items():
            with contextlib.suppress(Exception):  # not subscribed (any more): nothing to undo
                session.off(event, handler)

    def _agent(self) -> str | None:
        if self._agent_id is None:
            # observed after the session's first handoff item: the agent running now
            with contextlib.suppress(Exception):
                self._agent_id = _text(self._session.current_agent.id)
        return self._agent_id

    def _item_at(self, item: Any) -> float:
        created = getattr(item, "created_at", None)
        return self._clock.from_wall(float(created)) if created else self._clock.now()

    def _tool_at(self, item: Any) -> float:
        at = self._tool_ends.result_at(item)
        return self._item_at(item) if at is None else at

    def conversation_item_added(self, ev: Any) -> None:
        # first what the history gained with no event (an agent's configuration as it
        # started, a realtime model's tool items): it came before this item
        with guard("reading the session's history"):
            self.reconcile()
        item = ev.item
        kind = getattr(item, "type", None)
        if kind == "agent_handoff":
            self._handoff(item)
        elif kind == "message":
            self._message(item)

    def _message(self, item: Any) -> None:
        role = _ROLES.get(getattr(item, "role", None) or "")
        if role is None:
            return
        metrics = dict(getattr(item, "metrics", None) or {})  # ChatMessage.metrics: 1.3+
        started, stopped = self._span(role, item, metrics)
        self._post(
            Message(
                role=role,
                text=item.text_content or "",
                started_at=started,
                stopped_at=stopped,
                interrupted=bool(getattr(item, "interrupted", False)),
                language=_language(item),
                agent_id=self._agent(),
            )
        )
        turn = _scalars(metrics, _TURN_SKIP)
        if turn:
            turn["role"] = role
            self._post(Metric(kind="turn", at=stopped, fields=turn))

    def _handoff(self, item: Any) -> None:
        """The active agent changed: it names what follows, and the change is a record of its
        own (a metric), so that one followed by nothing (the last agent, a task that
        returned at once) is delivered too."""
        new, old = _text(item.new_agent_id), _text(getattr(item, "old_agent_id", None))
        self._agent_id = new or self._agent_id
        fields = {"old_agent_id": old, "new_agent_id": new}
        self._post(
            Metric(
                kind="agent_handoff",
                at=self._item_at(item),
                fields={name: value for name, value in fields.items() if value},
            )
        )

    def _span(self, role: str, item: Any, metrics: dict[str, Any]) -> tuple[float, float]:
        """Where the turn was spoken, on the call's clock."""
        started = metrics.get("started_speaking_at")
        virtual = self._clock.virtual
        if role == "user":
            # a realtime model that does not say when the turn began: its own speech
            # detection does (user_state_changed)
            spoken = self._user_speech.last_turn()
            if not started and spoken is not None and not virtual:
                return spoken
        elif role == "assistant":
            # under a test clock, where LiveKit's stamps say nothing, an agent turn is said
            # from when the agent began speaking it (agent_state_changed): one cut off by the
            # caller's text, added after that text, stays before it
            spoken = self._agent_speech.last_turn()
            if spoken is not None and virtual:
                return spoken
        begun = self._clock.from_wall(float(started)) if started else self._item_at(item)
        stopped = metrics.get("stopped_speaking_at")
        return begun, self._clock.from_wall(float(stopped)) if stopped else begun

    def function_tools_executed(self, ev: Any) -> None:
        items = [*ev.function_calls, *(o for o in ev.function_call_outputs if o is not None)]
        self._post_tools(self._tools.records(items, self._tool_at, self._agent()))

    def tool_execution_updated(self, ev: Any) -> None:
        update = ev.update
        self._tool_ends.updated(update)
        # a tool starting (ToolCallStarted, livekit-agents 1.8+) carries its call, which
        # reaches the history only once the step's tools are done: posted now, it is placed
        # where it started whatever the clock
        started = getattr(update, "function_call", None)
        if started is not None:
            self._post_tools(self._tools.records([started], self._item_at, self._agent()))
        self.reconcile()

    def _post_tools(self, tools: Tools) -> None:
        if tools.calls or tools.outputs:
            self._post(tools)

    def reconcile(self, *, whole: bool = False) -> None:
        """Post the history's items that no event carried (an async tool's updates and final
        result, an agent's configuration): those added since the last look, or all of them
        with ``whole``."""
        items = self._session.history.items
        new = self._history.new(items, whole=whole)
        if not new:
            return
        self._post_tools(
            self._tools.records([item for _, item in new], self._tool_at, self._agent())
        )
        for config in agent_configs(items, new, self._item_at):
            self._post(config)

    def metrics_collected(self, ev: Any) -> None:
        metrics = ev.metrics
        kind = str(getattr(metrics, "type", "metrics"))
        if kind in _SKIPPED_METRICS:
            return
        stamp = getattr(metrics, "timestamp", None)
        at = self._clock.from_wall(float(stamp)) if stamp else self._clock.now()
        fields = _scalars(metrics.model_dump())
        self._post(Metric(kind=kind.removesuffix("_metrics"), at=at, fields=fields))

    def error(self, ev: Any) -> None:
        err = ev.error
        fields = {
            "source": type(ev.source).__name__,
            "error": type(getattr(err, "error", err)).__name__,
            "message": str(getattr(err, "error", err))[:500],
            "recoverable": bool(getattr(err, "recoverable", False)),
        }
        self._post(Metric(kind="error", at=self._item_at(ev), fields=fields))

    def close(self, ev: Any) -> None:
        reason = getattr(ev.reason, "value", str(ev.reason))
        self._on_close(CLOSE_REASONS.get(reason, str(reason).replace("_", "-")))

    def flush_usage(self, session: Any) -> None:
        """Post the session's cumulative usage (read once, at the end: session_usage_updated
        fires after every metric, and following it would cost more than it tells)."""
        try:
            usage = session.usage  # AgentSession.usage: livekit-agents 1.5+
        except Exception:
            return
        models = []
        for model in getattr(usage, "model_usage", []) or []:
            fields = _scalars(model.model_dump())
            fields["usage_type"] = str(getattr(model, "type", "")).removesuffix("_usage")
            models.append(fields)
        if models:
            self._post(Usage(at=self._clock.now(), models=models))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _language(item: Any) -> str | None:
    extra = getattr(item, "extra", None) or {}
    lang = extra.get("language") if isinstance(extra, dict) else None
    return str(lang) if isinstance(lang, str) and lang else None
