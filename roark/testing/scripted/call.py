"""A scripted call: every scripted part wired into one real ``AgentSession``, and the truth.

``ScriptedCall(script)`` builds the scripted VAD, STT, LLM, TTS, caller and speaker from a
:class:`~roark.testing.scripted.CallScript`; inside the entrypoint a test calls
:meth:`ScriptedCall.build_session` for an ``AgentSession`` with deterministic turn
handling (VAD endpointing, no preemptive generation, no AEC warm-up) and starts it with
its agent. :func:`~roark.testing.scripted.run_job` then waits for
:meth:`ScriptedCall.wait_until_done`, and the test compares what an observer reported
against the parts' records (``call.input``, ``call.output.segments``, ``call.llm``).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from typing import Any

from livekit.agents import Agent, AgentSession

from .agent import SupportAgent
from .audio_input import ScriptedAudioInput
from .audio_output import RealtimeAudioOutput
from .llm import ScriptedLLM
from .script import CallScript
from .stt import ScriptedSTT
from .tts import ScriptedTTS
from .vad import ScriptedVAD

__all__ = ["ScriptedCall", "ScriptedCallTimeout"]


class ScriptedCallTimeout(TimeoutError):
    """A scripted call or job did not reach the expected state in time.

    Example::

        with pytest.raises(ScriptedCallTimeout):
            await call.wait_until_done(timeout=0.1)
    """


_ENDPOINTING_DELAY = 0.25
_INTERRUPTION_MIN_DURATION = 0.3


def _default_session_kwargs() -> dict[str, Any]:
    params = inspect.signature(AgentSession.__init__).parameters
    opts: dict[str, Any] = {}
    if "turn_handling" in params:
        opts["turn_handling"] = {
            # explicit "vad": the default is LiveKit's model-based turn detector
            "turn_detection": "vad",
            "endpointing": {"min_delay": _ENDPOINTING_DELAY, "max_delay": 3.0},
            # explicit "vad": "adaptive" interruption needs LiveKit inference (network)
            "interruption": {"mode": "vad", "min_duration": _INTERRUPTION_MIN_DURATION},
            # a preemptive generation would consume scripted LLM replies out of order
            "preemptive_generation": {"enabled": False},
        }
    else:
        opts.update(
            turn_detection="vad",
            min_endpointing_delay=_ENDPOINTING_DELAY,
            max_endpointing_delay=3.0,
            min_interruption_duration=_INTERRUPTION_MIN_DURATION,
            preemptive_generation=False,
        )
    # AEC warmup ignores barge-in for the first seconds of agent speech; there is no echo here
    opts["aec_warmup_duration"] = None
    opts["session_close_transcript_timeout"] = 0.5
    return {k: v for k, v in opts.items() if k in params}


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class ScriptedCall:
    """One scripted voice call: the scripted parts, the session, and the truth.

    Example::

        call = ScriptedCall(script)

        async def entrypoint(ctx: JobContext) -> None:
            session = call.build_session()
            await session.start(agent=SupportAgent(greeting=script.greeting))

        await run_job(entrypoint, call=call)
        print(call.input.onsets_relative(), call.output.segments)
    """

    def __init__(self, script: CallScript, *, tools_agent: type[Agent] | None = None) -> None:
        self.script = script
        self.tools_agent: type[Agent] = tools_agent or SupportAgent
        self.vad = ScriptedVAD()
        self.stt = ScriptedSTT([t.text for t in script.user_turns])
        self.llm = ScriptedLLM(
            script.llm_replies,
            prompt_tokens=script.llm_prompt_tokens,
            completion_tokens=script.llm_completion_tokens,
        )
        self.tts = ScriptedTTS(
            sample_rate=script.output_sample_rate,
            seconds_per_char=script.seconds_per_char,
            realtime_factor=script.tts_realtime_factor,
        )
        self.input = ScriptedAudioInput(
            script.user_turns,
            total_seconds=script.caller_seconds,
            sample_rate=script.input_sample_rate,
            num_channels=script.input_channels,
            frame_ms=script.input_frame_ms,
            pauses=script.input_pauses,
        )
        self.output = RealtimeAudioOutput()
        self.session: AgentSession | None = None
        self._session_closed = False
        self._check_gaps()

    def _check_gaps(self) -> None:
        min_gap = self.vad.min_silence_duration + self.input.frame_seconds
        turns = self.script.user_turns
        for prev, nxt in itertools.pairwise(turns):
            if nxt.at - prev.end < min_gap:
                raise ValueError(
                    f"turns {prev.text!r} and {nxt.text!r} are {nxt.at - prev.end:.2f}s apart; "
                    f"the VAD needs more than {min_gap:.2f}s of silence to split them"
                )
        if turns and self.script.caller_seconds - turns[-1].end < min_gap:
            raise ValueError(
                "the caller audio must continue for at least "
                f"{min_gap:.2f}s after the last turn so the VAD can detect its end"
            )

    def make_agent(self) -> Agent:
        """An instance of ``tools_agent`` (``SupportAgent`` gets the script's greeting)."""
        if issubclass(self.tools_agent, SupportAgent):
            return self.tools_agent(greeting=self.script.greeting)
        return self.tools_agent()

    def build_session(self, **session_kwargs: Any) -> AgentSession:
        """Create the ``AgentSession`` with the scripted parts and deterministic options.

        ``session_kwargs`` override the defaults (dicts such as ``turn_handling`` are
        merged). The scripted audio input and speaker are assigned before ``start()``,
        so no RoomIO is created.
        """
        if self.session is not None:
            raise RuntimeError("build_session() was already called for this ScriptedCall")
        kwargs = _deep_merge(
            {
                "stt": self.stt,
                "vad": self.vad,
                "llm": self.llm,
                "tts": self.tts,
                **_default_session_kwargs(),
            },
            session_kwargs,
        )
        session: AgentSession = AgentSession(**kwargs)
        session.input.audio = self.input
        session.output.audio = self.output
        session.on("close", self._on_session_close)
        self.session = session
        return session

    def _on_session_close(self, _ev: Any) -> None:
        self._session_closed = True

    def _idle(self) -> bool:
        session = self.session
        if session is None:
            return False
        if self._session_closed:
            return True
        return (
            self.input.done
            and self.output.idle
            and session.agent_state in ("listening", "idle")
            and session.user_state != "speaking"
        )

    def describe(self) -> str:
        """A one-line summary of the call state, for error messages."""
        session = self.session
        return (
            f"session={'built' if session else 'not built'}, "
            f"agent_state={session.agent_state if session else None}, "
            f"user_state={session.user_state if session else None}, "
            f"input_done={self.input.done}, output_idle={self.output.idle}, "
            f"stt_recognized={len(self.stt.recognized)}/{len(self.script.user_turns)}, "
            f"llm_replies_left={self.llm.remaining}, played_segments={len(self.output.segments)}"
        )

    async def wait_until_done(self, timeout: float = 30.0, *, settle: float = 0.5) -> None:
        """Wait until the caller audio is over and the agent is idle.

        Idle means: nothing playing or buffered, agent ``listening``, user not speaking,
        held for ``settle`` seconds (so a reply about to be scheduled is not missed), or
        the session closed. Raises :class:`ScriptedCallTimeout` after ``timeout``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        idle_since: float | None = None
        while True:
            now = loop.time()
            if self._idle():
                idle_since = now if idle_since is None else idle_since
                if now - idle_since >= settle or self._session_closed:
                    return
            else:
                idle_since = None
            if now >= deadline:
                raise ScriptedCallTimeout(
                    f"scripted call not done after {timeout:.1f}s: {self.describe()}"
                )
            await asyncio.sleep(0.02)

    async def aclose(self) -> None:
        """Stop the scripted input and the speaker's playback task."""
        await self.input.aclose()
        await self.output.aclose()
