"""A process killed while its agent speaks: ``python -m tests.child_speaking BASE KEY SPOOL``.

One call fed live into roark's worker (``tests/synthetic.py`` for the tones): the caller's
audio every 20 ms as it would arrive, a caller turn at 0.2-1.0 s, then from 1.5 s an agent
turn of 6 s whose playback started and never finished. Prints ``T0 <wall time of the
call's first sample>`` at once and ``PLAYING`` once the agent's turn started; then goes on
until it is killed.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import roark
from roark._handoff.records import AgentAudio, Begin, CallDetails, CallerAudio, PlaybackStarted

from .synthetic import AGENT_HZ, USER_HZ, tone

CALL_ID = "RM_killed_speaking"
RATE = 24000
FRAME = 0.02
CALLER_SPEAKS = (0.2, 1.0)
AGENT_FROM, AGENT_SECONDS = 1.5, 6.0


def main() -> int:
    base_url, key, spool = sys.argv[1:4]
    client = roark.configure(api_key=key, base_url=base_url, spool_dir=spool)
    assert client.worker is not None
    channel = client.worker.open_call()
    t0 = time.time()
    details = CallDetails(agent_id="speaking-agent", is_test=True)
    channel.post(Begin(at=t0, details=details, sample_rate=RATE, call_id=CALL_ID))
    print(f"T0 {t0!r}", flush=True)
    sent = 0
    while True:
        due = t0 + sent * FRAME
        time.sleep(max(0.0, due - time.time()))
        speaking = CALLER_SPEAKS[0] <= sent * FRAME < CALLER_SPEAKS[1]
        pcm = tone(USER_HZ, FRAME, RATE) if speaking else np.zeros(round(FRAME * RATE), np.int16)
        channel.post(CallerAudio(at=due, data=pcm.tobytes(), rate=RATE, channels=1))
        sent += 1
        if abs(sent * FRAME - AGENT_FROM) < FRAME / 2:
            audio = tone(AGENT_HZ, AGENT_SECONDS, RATE)
            started = t0 + AGENT_FROM
            channel.post(AgentAudio(0, started - 0.2, audio.tobytes(), RATE, 1))
            channel.post(PlaybackStarted(segment=0, at=started))
            print("PLAYING", flush=True)


if __name__ == "__main__":
    sys.exit(main())
