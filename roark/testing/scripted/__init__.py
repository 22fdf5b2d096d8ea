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
* ``realtime``: :class:`ScriptedRealtimeModel`, a speech-to-speech model (audio or text
  modality) that detects and transcribes the caller's turns itself and answers with
  :class:`LLMReply` items, tool calls included.
* ``failing``: :class:`FailingLLM` and :class:`FailingTTS`, whose first attempts (or all)
  fail with LiveKit API errors, for sessions that retry or end with an error.
* ``async_agent``: :class:`ParcelAgent`, with async tools that report progress with
  ``ctx.update()`` and end later (a result, or a ``ToolError``).
* ``room``: :class:`OfflineRoom`, an ``rtc.Room`` connected without a server, for
  LiveKit's room-bound helpers (``BackgroundAudioPlayer``, ``DataStreamAudioOutput``);
  ``avatar``: :class:`ScriptedAvatar`, an avatar worker in it that plays the agent's audio
  and reports playback over RPC.

The parts record the ground truth (when the caller spoke, what the speaker played) so
tests can compare what an observer reports against what really happened.
"""

from .agent import SupportAgent
from .async_agent import ParcelAgent
from .audio_input import ScriptedAudioInput
from .audio_output import PlayedSegment, RealtimeAudioOutput
from .avatar import ScriptedAvatar
from .call import ScriptedCall, ScriptedCallTimeout
from .failing import FailingLLM, FailingTTS
from .job import run_job
from .llm import ScriptedLLM
from .realtime import ScriptedRealtimeModel, ScriptedRealtimeSession
from .room import OfflineRoom
from .script import CallScript, LLMReply, ToolCallStep, UserTurn
from .stt import ScriptedSTT
from .tts import ScriptedTTS
from .vad import ScriptedVAD

__all__ = [
    "CallScript",
    "FailingLLM",
    "FailingTTS",
    "LLMReply",
    "OfflineRoom",
    "ParcelAgent",
    "PlayedSegment",
    "RealtimeAudioOutput",
    "ScriptedAudioInput",
    "ScriptedAvatar",
    "ScriptedCall",
    "ScriptedCallTimeout",
    "ScriptedLLM",
    "ScriptedRealtimeModel",
    "ScriptedRealtimeSession",
    "ScriptedSTT",
    "ScriptedTTS",
    "ScriptedVAD",
    "SupportAgent",
    "ToolCallStep",
    "UserTurn",
    "run_job",
]
