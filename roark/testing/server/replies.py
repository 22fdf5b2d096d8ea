"""The answers the local Roark gives, independent of the HTTP server that sends them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """One answer: status, body, and its headers (``Content-Length`` is the sender's)."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, "application/json", dict(headers or {}))


def error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """The Roark API's error body: ``{"error": {"status": ..., "message": ...}}``."""
    return json_reply(status, {"error": {"status": status, "message": message}}, headers)


def s3_error(status: int, code: str, message: str) -> Reply:
    """The storage host answers like S3 does: an XML error document."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    return Reply(status, body, "application/xml")
