"""The scripted LLM: replays the script's replies in order, one per ``chat()``.

Each :class:`~roark.testing.scripted.LLMReply` streams as a few text chunks, then its tool
calls as ``FunctionToolCall`` with the scripted call ids, then the scripted token usage,
so LiveKit runs the function tools and emits ``LLMMetrics`` as with a real model. A test
reads :attr:`ScriptedLLM.requests` for the chat context of every request and
:attr:`ScriptedLLM.remaining` for the replies not yet used.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from livekit.agents import llm, utils
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)

from ._shared import PROVIDER
from .script import LLMReply

__all__ = ["ScriptedLLM"]


class ScriptedLLM(llm.LLM):
    """LLM replaying :class:`LLMReply` items in order, one per ``chat()`` call.

    Text is streamed in a few chunks, tool calls are yielded as ``FunctionToolCall`` with
    the scripted ``call_id``, and the last chunk carries the scripted token usage, so
    LiveKit's ``LLMStream`` emits ``LLMMetrics`` with those counts. When the replies run
    out it answers ``fallback_text`` (it never hangs).

    Example::

        llm = ScriptedLLM([LLMReply("Hello there.")], prompt_tokens=50, completion_tokens=20)
    """

    _stream_type: type[_ScriptedLLMStream]

    def __init__(
        self,
        replies: Sequence[LLMReply],
        *,
        prompt_tokens: int = 50,
        completion_tokens: int = 20,
        fallback_text: str = "Okay.",
        chunk_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self._replies: collections.deque[LLMReply] = collections.deque(replies)
        self._prompt_tokens = prompt_tokens
        self._completion_tokens = completion_tokens
        self._fallback_text = fallback_text
        self._chunk_delay = chunk_delay
        self.requests: list[llm.ChatContext] = []
        """A copy of the chat context of every ``chat()`` call, in order."""
        self.replies_used: list[LLMReply] = []

    @property
    def model(self) -> str:
        return "scripted-llm"

    @property
    def provider(self) -> str:
        return PROVIDER

    @property
    def remaining(self) -> int:
        """Scripted replies not yet consumed."""
        return len(self._replies)

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[Any] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[Any] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        reply = self._replies.popleft() if self._replies else LLMReply(self._fallback_text)
        self.requests.append(chat_ctx.copy())
        self.replies_used.append(reply)
        return self._stream_type(
            self, reply=reply, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )


def _text_chunks(text: str, parts: int = 3) -> list[str]:
    words = re.findall(r"\S+\s*|\s+", text)
    if not words:
        return []
    size = max(1, math.ceil(len(words) / parts))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


class _ScriptedLLMStream(llm.LLMStream):
    def __init__(
        self,
        llm_: ScriptedLLM,
        *,
        reply: LLMReply,
        chat_ctx: llm.ChatContext,
        tools: list[Any],
        conn_options: APIConnectOptions,
    ) -> None:
        super().__init__(llm_, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._reply = reply
        self._scripted = llm_

    async def _run(self) -> None:
        request_id = utils.shortuuid("scripted_llm_")
        for chunk in _text_chunks(self._reply.text):
            self._event_ch.send_nowait(
                llm.ChatChunk(id=request_id, delta=llm.ChoiceDelta(role="assistant", content=chunk))
            )
            await asyncio.sleep(self._scripted._chunk_delay)

        if self._reply.tool_calls:
            calls = [
                llm.FunctionToolCall(
                    name=step.name, arguments=json.dumps(step.arguments), call_id=step.call_id
                )
                for step in self._reply.tool_calls
            ]
            self._event_ch.send_nowait(
                llm.ChatChunk(
                    id=request_id, delta=llm.ChoiceDelta(role="assistant", tool_calls=calls)
                )
            )

        prompt, completion = self._scripted._prompt_tokens, self._scripted._completion_tokens
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=request_id,
                usage=llm.CompletionUsage(
                    completion_tokens=completion,
                    prompt_tokens=prompt,
                    total_tokens=prompt + completion,
                ),
            )
        )


ScriptedLLM._stream_type = _ScriptedLLMStream
