"""Turns one call's hand-off records into wire records, its recording and spooled items.

Runs on the processor thread only; one ``CallAssembler`` per call.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from .._config import Settings
from .._failures import Stats
from .._handoff.clock import CallClock
from .._handoff.records import (
    AgentAudio,
    AgentConfig,
    Begin,
    CallDetails,
    CallerAudio,
    CallId,
    End,
    Message,
    Metric,
    PlaybackFinished,
    PlaybackProgressed,
    PlaybackStarted,
    Record,
    Tools,
    Usage,
)
from .._handoff.text import encodable, encodable_or_none, encodable_value
from . import wire
from .recording import Recording
from .spool import METRICS, TOOLS, TRANSCRIPT, CallSpool, Spooled

logger = logging.getLogger("roark.assembler")

TRUNCATION_MARKER = "…[truncated by roark]"
# an agent turn's start (LiveKit's first frame) and its first segment's playback start are
# one moment read twice; they may differ by this much
TURN_ONSET = 0.5


def _clean_text(text: str) -> str:
    # control characters other than newline/tab make transcripts unreadable; drop them
    return "".join(c for c in encodable(text) if c.isprintable() or c in "\n\t")


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
    text = encodable(value) if isinstance(value, str) else tool_text(value, limit * 2)
    text = redact(text)
    if len(text) <= limit:
        try:
            json.loads(text)
            return text
        except ValueError:
            pass
    return json.dumps(tool_text(text, limit), ensure_ascii=False)


class CallAssembler:
    """The thread side's state of one call, made when its ``Begin`` arrives."""

    def __init__(
        self,
        *,
        key: str,
        clock: CallClock,
        settings: Settings,
        spool: CallSpool,
        stats: Stats,
        on_spooled: Callable[[CallAssembler, Spooled], None],
    ) -> None:
        self.key = key
        #: the call's clock, made with the call (on the loop); every stamp of the call is on it
        self.clock = clock
        self.settings = settings
        self.spool = spool
        self._stats = stats
        self._on_spooled = on_spooled
        self._details: CallDetails | None = None
        self.call_id: str | None = None
        self.started_at: float | None = None
        self.transcript: list[wire.TranscriptEntry] = []
        self.tools: list[wire.ToolRecord] = []
        self.metrics: list[wire.MetricRecord] = []
        #: the last usage snapshot (cumulative, so it replaces the one before)
        self.usage: list[wire.MetricRecord] = []
        #: made with the call's first audio: a call without audio has no recording at all
        self.recording: Recording | None = None
        self._rate: int | None = None
        self.ended = False
        #: the call ended with nothing in it (no transcript, tool or audio): it is not sent
        self.discarded = False
        # call-started waits here until the call has content (a session started and closed at
        # once is no call); it is on disk from the start all the same, so a crash keeps it
        self._held: Spooled | None = None
        self._has_content = False
        #: where the agent's last segments played (start, end), for the turns they belong to
        self._played: deque[tuple[float, float]] = deque(maxlen=8)

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
            self._stats.failed("the redact callable (the text is withheld)")
            return "[REDACTED]"

    def _spool_record(self, bucket: str, record: Any) -> None:
        # written at once: a crash keeps the conversation up to here for a recovery
        self.spool.append_record(bucket, record)

    # -- records -------------------------------------------------------------------------

    def handle(self, record: Record) -> None:
        if self.ended:
            return
        if isinstance(record, CallerAudio):
            rec = self._audio()
            if rec is not None:
                rec.add_caller_audio(
                    record.at, record.data, record.rate, record.channels, self.clock.current()
                )
        elif isinstance(record, AgentAudio):
            rec = self._audio()
            if rec is not None:
                rec.add_agent_audio(
                    record.segment, record.data, record.rate, record.channels, record.at
                )
        elif isinstance(record, (PlaybackStarted, PlaybackProgressed, PlaybackFinished)):
            self._playback(record)
        else:
            self._conversation(record)

    def _conversation(self, record: Record) -> None:
        if isinstance(record, Message):
            self._message(record)
        elif isinstance(record, Tools):
            self._tools(record)
        elif isinstance(record, Metric):
            self._metric(encodable(record.kind), record.at, encodable_value(record.fields))
        elif isinstance(record, AgentConfig):
            self._agent_config(record)
        elif isinstance(record, Usage):
            self.usage = [
                wire.metric("usage", record.at, self._offset(record.at), encodable_value(fields))
                for fields in record.models
            ]
        elif isinstance(record, Begin):
            self._begin(record)
        elif isinstance(record, CallId):
            self._set_call_id(encodable(record.call_id))
        elif isinstance(record, End):
            self._end(record)

    def cut(self) -> None:
        """Cut what of the recording can no longer change, and keep its tail in the spool."""
        if self.recording is not None and not self.ended:
            now = self.clock.current()
            self.recording.cut(now)
            if self.spool.durable:
                self.recording.sync_tail(now)

    def _begin(self, record: Begin) -> None:
        self.started_at = record.at
        if record.sample_rate is not None:
            self._rate = self.settings.recording_sample_rate or record.sample_rate
        details = self._details = _encodable_details(record.details)
        call_id = encodable_or_none(record.call_id)
        self.spool.note_start(record.at, call_id, details.agent_id, details.is_test)
        if call_id:
            self._set_call_id(call_id)

    def _set_call_id(self, call_id: str) -> None:
        if self.call_id is not None or self._details is None:
            return
        self.call_id = call_id
        started = wire.call_started(call_id, self.started_at or 0.0, self._details)
        self.spool.note_call_id(call_id, self._rate)
        self._held = self.spool.put("started", _json(started))
        if self._has_content:
            self._release()

    def _audio(self) -> Recording | None:
        """The recording, made at the call's first audio (None: observed without audio)."""
        if self.recording is None and self._rate is not None:
            self.recording = Recording(
                t0=self.started_at or self.clock.current(),
                sample_rate=self._rate,
                chunk_bytes=self.settings.chunk_bytes,
                emit=self._chunk,
                tail=self.spool.write_tail,
            )
        self._content()
        return self.recording

    def _content(self) -> None:
        """The call has content: it is a call, its call-started may go."""
        if not self._has_content:
            self._has_content = True
            self._release()

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._on_spooled(self, held)

    def _chunk(self, index: int, data: bytes) -> None:
        spooled = self.spool.put("chunk", data, index)
        self.spool.note_chunk(index)  # for a recovery: how many chunks Roark holds or will
        self._on_spooled(self, spooled)

    def _playback(self, record: PlaybackStarted | PlaybackProgressed | PlaybackFinished) -> None:
        rec = self.recording
        if rec is None:
            return
        if isinstance(record, PlaybackStarted):
            rec.playback_started(record.segment, record.at, record.provisional)
        elif isinstance(record, PlaybackProgressed):
            rec.playback_progressed(record.segment, record.at, record.offset, record.duration)
        else:
            placed = rec.playback_finished(record.segment, record.played, record.at)
            if placed is not None:
                self._played.append(placed)

    def _message(self, record: Message) -> None:
        text = self._redact(_clean_text(record.text)).strip()
        if not text:
            return
        start, stop = record.started_at, max(record.stopped_at, record.started_at)
        if record.interrupted and record.role == "assistant":
            stop = self._cut_at(start, stop)
        entry = wire.transcript_entry(
            record.role,
            text,
            span=(start, stop),
            offsets_ms=(self._offset(start), self._offset(stop)),
            interrupted=record.interrupted,
            language=encodable_or_none(record.language),
            agent_id=encodable_or_none(record.agent_id),
        )
        self.transcript.append(entry)
        self._spool_record(TRANSCRIPT, entry)
        self._content()

    def _cut_at(self, start: float, stop: float) -> float:
        """Where the audio of an interrupted agent turn spoken from ``start`` stopped: LiveKit
        ends the turn when it commits the message, after the interruption has been handled;
        the segments that began within the turn say where their playback was cut."""
        ends = [end for began, end in self._played if start - TURN_ONSET <= began <= stop]
        return max(start, min(stop, max(ends))) if ends else stop

    def _tools(self, record: Tools) -> None:
        limit = self.settings.max_tool_text_chars
        made: list[wire.ToolRecord] = []
        for call in record.calls:
            arguments = tool_arguments(call.arguments, limit, self._redact)
            call_id, name = encodable(str(call.call_id)), encodable(str(call.name))
            agent = encodable_or_none(call.agent_id)
            offset = self._offset(call.at)
            made.append(wire.tool_call(call_id, name, arguments, call.at, offset, agent))
        for out in record.outputs:
            content = self._redact(tool_text(out.output, limit))
            call_id, agent = encodable(str(out.call_id)), encodable_or_none(out.agent_id)
            offset = self._offset(out.at)
            made.append(wire.tool_result(call_id, content, out.is_error, out.at, offset, agent))
        for tool in made:
            self.tools.append(tool)
            self._spool_record(TOOLS, tool)
        if made:
            self._content()

    def _metric(self, kind: str, at: float, fields: dict[str, Any]) -> None:
        metric = wire.metric(kind, at, self._offset(at), fields)
        self.metrics.append(metric)
        self._spool_record(METRICS, metric)

    def _agent_config(self, record: AgentConfig) -> None:
        """An agent's configuration, as a metric: its instructions are the developer's text,
        redacted and cut as a tool's text is (they may hold what the caller said)."""
        instructions = record.instructions
        if instructions:
            instructions = self._redact(tool_text(instructions, self.settings.max_tool_text_chars))
        fields = {
            "livekit_agent_id": record.agent_id,
            "instructions": instructions,
            "tools_added": ",".join(record.tools_added),
            "tools_removed": ",".join(record.tools_removed),
        }
        self._metric("agent_config_update", record.at, encodable_value(fields))

    def _end(self, record: End) -> None:
        self.ended = True
        if not self._has_content:
            self._discard()
            return
        if self.call_id is None:
            # nothing resolved the id in time; the contract's last fallback is a random UUID
            self._set_call_id(self.key)
        if self.recording is not None:
            self.recording.finish(record.at)
            self.spool.end_recording()
        ended = wire.call_ended(
            call_id=self.call_id or self.key,
            started_at=self.started_at or record.at,
            ended_at=record.at,
            reason=encodable(record.reason),
            transcript=self.transcript,
            tools=self.tools,
            metrics=self.metrics + self.usage,
            sample_rate=self.recording.rate if self.recording else None,
            chunks=self.recording.chunks if self.recording else 0,
        )
        self._on_spooled(self, self.spool.put("ended", _json(ended)))

    def _discard(self) -> None:
        self.discarded = True
        self._held = None
        self.spool.remove()
        logger.debug(
            "call %s ended with nothing in it (no transcript, tool or audio): not sent",
            self.call_id or self.key,
        )


def _encodable_details(details: CallDetails) -> CallDetails:
    """The job's ids (LiveKit's) made encodable; the developer's options already are."""
    return dataclasses.replace(
        details,
        room_sid=encodable_or_none(details.room_sid),
        room_name=encodable_or_none(details.room_name),
        participant_identity=encodable_or_none(details.participant_identity),
        job_id=encodable_or_none(details.job_id),
    )


def _json(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
