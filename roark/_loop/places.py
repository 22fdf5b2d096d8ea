"""Where a turn or a tool result belongs when LiveKit's stamps do not say (asyncio side).

A realtime model's user turn carries no ``started_speaking_at``: its own speech detection
(``user_state_changed``) says when the caller spoke. Under a test clock (``CallClock.virtual``)
every stamp of LiveKit's is taken at its arrival, and some items arrive long after they
happened: an agent turn cut off by the caller's text is added after that text, and a tool's
result waits for the step's other tools (a nested ``AgentTask`` can run for minutes in
between). The session's own events place them instead: the agent began speaking the turn at
``agent_state_changed``, and the tool ended at its ``tool_execution_updated`` (``ToolCallEnded``,
livekit-agents 1.8+).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .._handoff.clock import CallClock


class Speech:
    """When one side spoke, from the session's ``user_state_changed`` or
    ``agent_state_changed`` (``speaking``, then any other state)."""

    def __init__(self, clock: CallClock) -> None:
        self._clock = clock
        self._since: float | None = None
        self._read = False  # the stretch going on was read already: it is no later turn's
        self._turns: deque[tuple[float, float]] = deque(maxlen=4)

    def changed(self, ev: Any) -> None:
        now = self._clock.now()
        if ev.new_state == "speaking":
            if self._since is None:
                self._since, self._read = now, False
        elif self._since is not None:
            if not self._read:
                self._turns.append((self._since, now))
            self._since = None

    def last_turn(self) -> tuple[float, float] | None:
        """The last stretch of speech since the previous turn was read (the one going on,
        up to now), or None; each stretch is read once."""
        last = self._turns[-1] if self._turns else None
        self._turns.clear()
        if last is not None:
            return last
        if self._since is not None and not self._read:
            self._read = True
            return self._since, self._clock.now()
        return None


class ToolEnds:
    """When each tool call ended, by the call id its result carries: where a result belongs
    under a test clock. Noted whatever the clock, as a test clock is seen only after a few of
    its jumps, and a session on LiveKit's virtual time may be over in a few milliseconds."""

    # a bound for the results that are never posted or never asked for (a real clock)
    _KEPT = 256

    def __init__(self, clock: CallClock) -> None:
        self._clock = clock
        self._ended: dict[str, float] = {}

    def updated(self, update: Any) -> None:
        """A ``tool_execution_updated`` update: note a ``ToolCallEnded``'s time."""
        if getattr(update, "type", None) != "tool_call_ended":
            return
        # the id of the result's item: the call's own, or "<call id>_final" for an async tool
        entry = getattr(update, "id", None)
        if isinstance(entry, str) and entry:
            if len(self._ended) >= self._KEPT:
                self._ended.pop(next(iter(self._ended)))
            self._ended[entry] = self._clock.now()

    def result_at(self, item: Any) -> float | None:
        """Where the result ``item`` belongs (once: a call id may be used again), or None."""
        if not self._clock.virtual or getattr(item, "type", None) != "function_call_output":
            return None
        return self._ended.pop(item.call_id, None)
