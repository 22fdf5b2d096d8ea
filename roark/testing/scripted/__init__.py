"""Scripted, deterministic parts for driving a real LiveKit ``AgentSession`` offline.

Everything here subclasses LiveKit Agents' own base classes, so a real
:class:`livekit.agents.AgentSession` runs its normal pipeline (VAD, STT, endpointing,
LLM with function tools, TTS, playout, interruptions) against a scripted caller, with
no network and no API keys. One part per module, as LiveKit's own ``tests/fake_*.py``:

* ``script``: :class:`CallScript`, :class:`UserTurn`, :class:`LLMReply`,
  :class:`ToolCallStep`, the call as data.
* ``audio_input``: :class:`ScriptedAudioInput`, the caller: real-time paced audio with a
  tone during each :class:`UserTurn` and exact digital silence elsewhere.
* ``vad``: :class:`ScriptedVAD`, an energy VAD; ``stt``: :class:`ScriptedSTT` returns the
  N-th scripted transcript for the N-th detected speech segment; ``llm``:
  :class:`ScriptedLLM` replays :class:`LLMReply` items in order; ``tts``:
  :class:`ScriptedTTS` renders a tone whose length is proportional to the text.
* ``audio_output``: :class:`RealtimeAudioOutput`, the agent's speaker: it accepts audio
  faster than real time and reports playback in real time, like a device
  (:class:`PlayedSegment` for each segment).
* ``agent``: :class:`SupportAgent`, an example agent with an order-lookup tool.
* ``call``: :class:`ScriptedCall` wires them into a session; ``job``: :func:`run_job`
  runs an entrypoint the way LiveKit's job runner does, inside ``fake_job_context``,
  including shutdown.

The parts record the ground truth (when the caller spoke, what the speaker played) so
tests can compare what an observer reports against what really happened.
"""

from .agent import SupportAgent
from .audio_input import ScriptedAudioInput
from .audio_output import PlayedSegment, RealtimeAudioOutput
from .call import ScriptedCall, ScriptedCallTimeout
from .job import run_job
from .llm import ScriptedLLM
from .script import CallScript, LLMReply, ToolCallStep, UserTurn
from .stt import ScriptedSTT
from .tts import ScriptedTTS
from .vad import ScriptedVAD

__all__ = [
    "CallScript",
    "LLMReply",
    "PlayedSegment",
    "RealtimeAudioOutput",
    "ScriptedAudioInput",
    "ScriptedCall",
    "ScriptedCallTimeout",
    "ScriptedLLM",
    "ScriptedSTT",
    "ScriptedTTS",
    "ScriptedVAD",
    "SupportAgent",
    "ToolCallStep",
    "UserTurn",
    "run_job",
]
