"""What makes roark's fallback wrappers read as the object they wrap.

Where an audio object cannot be observed in place (see ``input_tap``, ``output_tap``), the
session gets a wrapper instead; user code that reads it back still sees its own object for
type checks (``isinstance``), attribute reads and writes, and the methods the wrapper does not
have itself (``aclose()`` among them). ``is`` and ``type()`` tell the difference.
"""

from __future__ import annotations

from typing import Any


class Transparent:
    """Mixin: the wrapped object is ``_roark_wrapped``; ``_roark_ready()`` ends set-up."""

    _roark_wrapped: Any

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance() falls back on it after type()
        return type(self._roark_wrapped)

    def _roark_ready(self) -> None:
        """From now on, attributes the wrapper does not hold are set on the wrapped object."""
        object.__setattr__(self, "_roark_set_up", True)

    def __getattr__(self, name: str) -> Any:
        # reached only for what the wrapper lacks: the object's own attributes and methods
        # (for an output, the object's: not the _AudioSinkProxy LiveKit puts in front of it)
        if name.startswith("__") or name.startswith("_roark"):
            raise AttributeError(name)
        return getattr(self._roark_wrapped, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_roark_set_up" not in self.__dict__ or name in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            setattr(self._roark_wrapped, name, value)
