"""Turns one call's hand-off items into wire records, its recording and spooled items.

Runs on the processor thread only; one ``CallAssembler`` per call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from .._config import Settings
from .._handoff.clock import CallClock
from .._handoff.records import (
    Begin,
    CallId,
    End,
    InputFrame,
    Message,
    Metric,
    OutputFrame,
    Playback,
    Record,
    Tools,
    Usage,
)
from . import wire
from .recording import Recording
from .spool import CallSpool, Spooled

logger = logging.getLogger("roark.assembler")

TRUNCATION_MARKER = "…[truncated by roark]"
DEFAULT_SAMPLE_RATE = 24000


def _clean_text(text: str) -> str:
    # control characters other than newline/tab make transcripts unreadable; drop them
    return "".join(c for c in text if c.isprintable() or c in "\n\t")


def tool_text(value: Any, limit: int) -> str:
    """A tool argument or result as the contract's string: JSON for objects, str() else."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list, tuple)):
        try:
            text = json.dumps(value, ensure_ascii=False, default=str, allow_nan=False)
        except ValueError:
            text = str(value)
    else:
        text = str(value)
    text = _clean_text(text)
    if len(text) > limit:
        text = text[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
    return text


def tool_arguments(value: Any, limit: int, redact: Callable[[str], str]) -> str:
    """Tool arguments as a JSON string: the model's own JSON when it is valid and fits,
    else the text (redacted, cut) as a JSON string literal, which is valid JSON too."""
    text = value if isinstance(value, str) else tool_text(value, limit * 2)
    text = redact(text)
    if len(text) <= limit:
        try:
            json.loads(text)
            return text
        except ValueError:
            pass
    return json.dumps(tool_text(text, limit), ensure_ascii=False)


def metric_record(kind: str, at_iso: str, offset_ms: int, fields: dict[str, Any]) -> dict:
    record: dict[str, Any] = {"kind": kind, "timestamp": at_iso, "audioOffsetMs": offset_ms}
    extra: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, bool):
            if name == "streamed":
                record["streamed"] = value
            else:
                extra[wire.camel(name)] = value
            continue
        if isinstance(value, (int, float)):
            number = wire.finite(value)
            if number is None:
                continue  # NaN and infinities are not JSON; drop the field
            target = wire.METRIC_FIELDS.get(name)
            if target and target not in record:
                record[target] = number
            else:
                extra[wire.camel(name)] = number
        elif isinstance(value, str) and value:
            extra[wire.camel(name)] = value
    if extra:
        record["extra"] = extra
    return record


class CallAssembler:
    """The worker-side state of one call."""

    def __init__(
        self,
        *,
        key: str,
        clock: CallClock,
        settings: Settings,
        spool_factory: Callable[[], CallSpool],
        on_item: Callable[[CallAssembler, Spooled], None],
    ) -> None:
        self.key = key
        self.settings = settings
        self._spool_factory = spool_factory
        self.spool: CallSpool = CallSpool(None, key)
        self._on_item = on_item
        self._started_fields: dict[str, Any] = {}
        self.usage: list[dict] = []
        self.call_id: str | None = None
        self.started_at: float | None = None
        self.transcript: list[dict] = []
        self.tools: list[dict] = []
        self.metrics: list[dict] = []
        self.recording: Recording | None = None
        self.ended = False
        #: the call's clock, made with the call (on the loop); every stamp of the call is on it
        self.clock = clock

    # -- helpers -------------------------------------------------------------------------

    def _offset(self, wall: float) -> int:
        if self.recording is not None:
            return self.recording.offset_ms(wall)
        return max(0, round((wall - (self.started_at or wall)) * 1000))

    def _redact(self, text: str) -> str:
        if self.settings.redact is None:
            return text
        try:
            return self.settings.redact(text)
        except Exception:
            logger.exception("the redact callable failed; the text is withheld")
            return "[REDACTED]"

    def _record(self, bucket: str, record: dict) -> None:
        {"transcript": self.transcript, "tools": self.tools, "metrics": self.metrics}[
            bucket
        ].append(record)
        self.spool.append_record({"bucket": bucket, "record": record})

    # -- items ---------------------------------------------------------------------------

    def handle(self, item: Record, now: float) -> None:
        if self.ended:
            return
        now = self.clock.from_wall(now)
        if isinstance(item, InputFrame):
            if self.recording is not None:
                self.recording.input_frame(item.at, item.data, item.rate, item.channels, now)
        elif isinstance(item, OutputFrame):
            if self.recording is not None:
                self.recording.output_frame(
                    item.segment, item.data, item.rate, item.channels, item.at
                )
        elif isinstance(item, Playback):
            self._playback(item)
        elif isinstance(item, Message):
            self._message(item)
        elif isinstance(item, Tools):
            self._tools(item)
        elif isinstance(item, Metric):
            self._record(
                "metrics",
                metric_record(item.kind, wire.iso(item.at), self._offset(item.at), item.fields),
            )
        elif isinstance(item, Usage):
            self._usage(item)
        elif isinstance(item, Begin):
            self._begin(item)
        elif isinstance(item, CallId):
            self._set_call_id(item.call_id)
        elif isinstance(item, End):
            self._end(item)

    def tick(self, now: float) -> None:
        if self.recording is not None and not self.ended:
            self.recording.tick(self.clock.from_wall(now))

    def _begin(self, item: Begin) -> None:
        self.spool = self._spool_factory()
        self.started_at = item.at
        if item.sample_rate is not None:
            self.recording = Recording(
                t0=item.at,
                sample_rate=self.settings.recording_sample_rate or item.sample_rate,
                chunk_bytes=self.settings.chunk_bytes,
                emit=self._chunk,
            )
        self._started_fields = dict(item.started)
        self.spool.write_meta({"startedAt": item.at, "callId": item.call_id, "key": self.key})
        if item.call_id:
            self._set_call_id(item.call_id)

    def _set_call_id(self, call_id: str) -> None:
        if self.call_id is not None:
            return
        self.call_id = call_id
        body: dict[str, Any] = {
            "event": "call-started",
            "livekitCallId": call_id,
            "eventTimestamp": wire.iso(self.started_at or 0.0),
            **self._started_fields,
        }
        self.spool.update_meta(
            callId=call_id, sampleRate=self.recording.rate if self.recording else None
        )
        self._on_item(self, self.spool.put("started", _json(body)))

    def _chunk(self, index: int, data: bytes) -> None:
        self._on_item(self, self.spool.put("chunk", data, index))

    def _playback(self, item: Playback) -> None:
        rec = self.recording
        if rec is None:
            return
        if item.what == "started":
            rec.playback_started(item.segment, item.at)
        elif item.what == "progressed":
            rec.playback_progressed(item.segment, item.at, item.offset, item.position)
        else:
            rec.playback_finished(item.segment, item.position, item.at)

    def _message(self, item: Message) -> None:
        text = self._redact(_clean_text(item.text)).strip()
        if not text:
            return
        start, stop = item.started_at, max(item.stopped_at, item.started_at)
        entry: dict[str, Any] = {
            "role": item.role,
            "content": text,
            "timestamp": wire.iso(start),
            "endTimestamp": wire.iso(stop),
            "audioOffsetMs": self._offset(start),
            "endAudioOffsetMs": self._offset(stop),
        }
        if item.role == "assistant":
            entry["interrupted"] = item.interrupted
        if item.language:
            entry["language"] = item.language
        self._record("transcript", entry)

    def _tools(self, item: Tools) -> None:
        limit = self.settings.max_tool_text_chars
        for call_id, name, arguments, at in item.calls:
            self._record(
                "tools",
                {
                    "kind": "tool_call",
                    "toolCallId": call_id,
                    "name": name,
                    "arguments": tool_arguments(arguments, limit, self._redact),
                    "timestamp": wire.iso(at),
                    "audioOffsetMs": self._offset(at),
                },
            )
        for call_id, output, is_error, at in item.outputs:
            self._record(
                "tools",
                {
                    "kind": "tool_result",
                    "toolCallId": call_id,
                    "content": self._redact(tool_text(output, limit)),
                    "isError": bool(is_error),
                    "timestamp": wire.iso(at),
                    "audioOffsetMs": self._offset(at),
                },
            )

    def _usage(self, item: Usage) -> None:
        # only the last usage snapshot matters: it is cumulative
        self.usage = [
            metric_record("usage", wire.iso(item.at), self._offset(item.at), fields)
            for fields in item.models
        ]

    def _end(self, item: End) -> None:
        self.ended = True
        if self.call_id is None:
            # nothing resolved the id in time; the contract's last fallback is a random UUID
            self._set_call_id(self.key)
        if self.recording is not None:
            self.recording.finish(item.at)
        body = build_call_ended(
            call_id=self.call_id or self.key,
            started_at=self.started_at or item.at,
            ended_at=item.at,
            reason=item.reason,
            transcript=self.transcript,
            tools=self.tools,
            metrics=self.metrics + self.usage,
            sample_rate=self.recording.rate if self.recording else None,
            chunks=self.recording.chunks if self.recording else 0,
        )
        self._on_item(self, self.spool.put("ended", _json(body)))


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")


def build_call_ended(
    *,
    call_id: str,
    started_at: float,
    ended_at: float,
    reason: str,
    transcript: list[dict],
    tools: list[dict],
    metrics: list[dict],
    sample_rate: int | None,
    chunks: int,
) -> dict[str, Any]:
    """The call-ended body; the recording is advertised only when chunks were made."""
    ordered = sorted(transcript, key=lambda e: (e["audioOffsetMs"], e["endAudioOffsetMs"]))
    body: dict[str, Any] = {
        "event": "call-ended",
        "livekitCallId": call_id,
        "eventTimestamp": wire.iso(ended_at),
        "callStartedAt": wire.iso(started_at),
        "callEndedAt": wire.iso(ended_at),
        "callEndedReason": reason,
        "transcript": ordered,
        "toolCalls": sorted(tools, key=lambda r: r["timestamp"]),
        "metrics": metrics,
    }
    spoken = [e for e in ordered if e["role"] in ("user", "assistant")]
    if spoken:
        body["agentSpokeFirst"] = spoken[0]["role"] == "assistant"
    if chunks and sample_rate:
        body["recordingSampleRate"] = sample_rate
        body["recordingNumChannels"] = wire.NUM_CHANNELS
    return body
