"""Text the wire can carry: every string that goes to Roark is made encodable once, where it
enters roark.

A lone surrogate (``os.environ`` and ``os.fsdecode`` turn bytes that are not UTF-8 into
``"\\udce9"``) cannot be written as UTF-8: JSON holding one can be neither spooled nor sent,
and the whole call would be lost. Where each kind of text enters:

- the developer's per-call options (agent id, name, prompt, call id, metadata), when
  ``CallOptions`` checks them: once per decorated entrypoint, nothing per call;
- everything LiveKit hands over (the job's ids, transcript, tool names, ids, arguments and
  results, metric labels, the end reason), on the thread side where the assembler turns it
  into the wire's text: the loop only copies, and tool arguments and results are objects
  that become text only there.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def encodable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode replaced by U+FFFD (a valid surrogate pair
    becomes the character it stands for)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def encodable_value(value: T) -> T:
    """``value`` with every string in it (dict keys too, in lists and dicts) ``encodable``."""
    if isinstance(value, str):
        return encodable(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {encodable_value(k): encodable_value(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, (list, tuple)):  # a JSON array either way
        return [encodable_value(v) for v in value]  # type: ignore[return-value]
    return value


def encodable_or_none(text: Any) -> Any:
    """``encodable`` for a string, anything else as it is (an optional field)."""
    return encodable(text) if isinstance(text, str) else text
