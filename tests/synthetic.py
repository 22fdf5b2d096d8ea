"""A call fed straight into roark's worker, stamped on a simulated clock.

Used where the LiveKit side adds nothing but wall time: a ten-minute call in a second, a
process killed in the middle of a call. The call's channel, the worker, spool, recording and
HTTP are the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from roark._handoff.records import (
    AgentAudio,
    Begin,
    CallDetails,
    CallerAudio,
    End,
    Message,
    PlaybackFinished,
    PlaybackStarted,
    Record,
)
from roark._threads.worker import Worker

USER_HZ = 700.0
AGENT_HZ = 300.0


def tone(hz: float, seconds: float, rate: int, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t) * 32767).astype(np.int16)


@dataclass
class SyntheticCall:
    """Every ``period`` seconds the caller speaks for ``speech`` s, then the agent answers."""

    worker: Worker
    call_id: str
    t0: float
    rate_in: int = 16000
    rate_out: int = 24000
    period: float = 6.0
    speech: float = 2.0
    frame: float = 0.02

    def __post_init__(self) -> None:
        self.channel = self.worker.open_call()
        self.key = self.channel.key
        self.done = self.channel.delivered
        self._fed = 0.0
        self._turn = 0
        self.post(
            Begin(
                at=self.t0,
                details=CallDetails(agent_id="synthetic-agent", is_test=True),
                sample_rate=self.rate_out,
                call_id=self.call_id,
            )
        )
        # the processor makes the call's state from its first record: once that is handled,
        # the state (and its recording) is there to look at
        assert self.worker.sync(timeout=10)
        self.assembler = self.worker.calls[self.channel]

    def post(self, record: Record) -> None:
        self.channel.post(record)

    def feed(self, seconds: float) -> None:
        """Caller audio up to ``seconds`` into the call, with the agent's turns in between."""
        n = round(self.frame * self.rate_in)
        while self._fed + self.frame <= seconds + 1e-9:
            start = self._fed
            # _fed sums 20 ms steps: a turn boundary can land a hair below its exact value
            phase = (start + 1e-9) % self.period
            speaking = phase < self.speech
            if speaking:
                pcm = tone(USER_HZ, self.frame, self.rate_in)
            else:
                pcm = np.zeros(n, dtype=np.int16)
            self.post(
                CallerAudio(at=self.t0 + start, data=pcm.tobytes(), rate=self.rate_in, channels=1)
            )
            turn_start = start - phase
            if abs(phase - self.speech) < self.frame / 2:
                self._agent_turn(turn_start)
            self._fed += self.frame

    def _agent_turn(self, turn_start: float) -> None:
        said = self.t0 + turn_start
        self.post(
            Message(
                role="user",
                text=f"question {self._turn}",
                started_at=said,
                stopped_at=said + self.speech,
                interrupted=False,
                language=None,
            )
        )
        reply_at = said + self.speech + 0.5
        audio = tone(AGENT_HZ, 2.0, self.rate_out)
        self.post(
            AgentAudio(
                segment=self._turn,
                at=reply_at - 0.3,
                data=audio.tobytes(),
                rate=self.rate_out,
                channels=1,
            )
        )
        self.post(PlaybackStarted(segment=self._turn, at=reply_at))
        self.post(PlaybackFinished(segment=self._turn, at=reply_at + 2.0, played=2.0))
        self.post(
            Message(
                role="assistant",
                text=f"answer {self._turn}",
                started_at=reply_at,
                stopped_at=reply_at + 2.0,
                interrupted=False,
                language=None,
            )
        )
        self._turn += 1

    def end(self, reason: str = "participant-disconnected") -> None:
        self.post(End(at=self.t0 + self._fed, reason=reason))
