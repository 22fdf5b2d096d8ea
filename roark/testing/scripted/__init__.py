"""Scripted, deterministic LiveKit parts for driving a real ``AgentSession`` offline."""

from .call import (
    CallScript,
    LLMReply,
    PlayedSegment,
    RealtimeAudioOutput,
    ScriptedAudioInput,
    ScriptedCall,
    ScriptedCallTimeout,
    ScriptedLLM,
    ScriptedSTT,
    ScriptedTTS,
    ScriptedVAD,
    SupportAgent,
    ToolCallStep,
    UserTurn,
    run_job,
)

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
