"""What the local Roark reports: the requests it saw and the calls it received."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class RequestRecord:
    """One HTTP request as the server saw it.

    ``endpoint`` is ``"event"``, ``"upload_url"``, ``"put"`` or ``"unknown"``. ``status`` is
    the status answered, or ``None`` while unanswered or when the connection was dropped or
    hung. Header names are lower-cased; API key values are replaced by ``"<redacted>"``.
    ``fault`` names the injected fault that hit the request (``"latency"``, ``"error"``,
    ``"drop"``, ``"hang"``) or is ``None``.
    """

    method: str
    path: str
    endpoint: str
    status: int | None
    headers: dict[str, str]
    received_at: float
    fault: str | None = None
    body_size: int = 0


@dataclass(eq=False)  # holds a numpy array: compare fields, not snapshots
class ReceivedCall:
    """Everything the local Roark received for one ``livekitCallId`` (a snapshot).

    ``recording`` is the stitched stereo recording as int16 with shape ``(frames, 2)``:
    column 0 is the left channel (user), column 1 the right channel (agent). It is set, and
    written to ``recording_path``, when a call-ended arrives and chunks exist. ``chunks``
    maps each chunk index to its bytes (read from disk on access in a folder store).

    Example::

        call = server.wait_for_call("RM_abc")
        assert [t["role"] for t in call.transcript] == ["assistant", "user"]
        assert call.duration_s == pytest.approx(3.2, abs=0.1)
    """

    livekit_call_id: str
    started: dict[str, Any] | None = None
    started_count: int = 0
    ended: dict[str, Any] | None = None
    ended_count: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    chunks: Mapping[int, bytes] = field(default_factory=dict)
    chunk_puts: list[int] = field(default_factory=list)
    recording_path: Path | None = None
    recording: np.ndarray | None = None
    sample_rate: int | None = None
    upload_url_requests: list[int] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def transcript(self) -> list[dict[str, Any]]:
        """The call-ended transcript entries (``[]`` before call-ended)."""
        return list((self.ended or {}).get("transcript") or [])

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The call-ended tool call and tool result records."""
        return list((self.ended or {}).get("toolCalls") or [])

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The call-ended metric records."""
        return list((self.ended or {}).get("metrics") or [])

    @property
    def metadata(self) -> dict[str, Any]:
        """The call-started ``metadata`` object (``{}`` when absent)."""
        return dict((self.started or {}).get("metadata") or {})

    @property
    def reason(self) -> str | None:
        """``callEndedReason`` of the first call-ended."""
        return None if self.ended is None else self.ended.get("callEndedReason")

    @property
    def agent_id(self) -> str | None:
        """``agentId`` of the first call-started."""
        return None if self.started is None else self.started.get("agentId")

    @property
    def duration_s(self) -> float | None:
        """Length of the stitched recording in seconds."""
        if self.recording is None or not self.sample_rate:
            return None
        return self.recording.shape[0] / self.sample_rate

    @property
    def user_audio(self) -> np.ndarray | None:
        """The left (user) channel of the recording."""
        return None if self.recording is None else self.recording[:, 0]

    @property
    def agent_audio(self) -> np.ndarray | None:
        """The right (agent) channel of the recording."""
        return None if self.recording is None else self.recording[:, 1]
