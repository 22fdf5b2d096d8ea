"""A support agent with real providers, observed by roark.

Set ROARK_API_KEY (and the providers' keys: OPENAI_API_KEY, DEEPGRAM_API_KEY,
CARTESIA_API_KEY; LIVEKIT_URL/LIVEKIT_API_KEY/LIVEKIT_API_SECRET for dev/start), then::

    python samples/support_agent/agent.py console   # talk to it in the terminal
    python samples/support_agent/agent.py dev       # against a LiveKit server
    python samples/support_agent/agent.py start     # production mode
"""

from __future__ import annotations

import logging

from dotenv import load_dotenv
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    RunContext,
    cli,
    function_tool,
)
from livekit.plugins import cartesia, deepgram, openai, silero

import roark

load_dotenv()
roark.configure()  # at import time: a bad ROARK_* setting fails here, where you see it

logger = logging.getLogger("support-agent")

SYSTEM_PROMPT = (
    "You are Ava, a friendly support agent for an online shop. Keep answers short. "
    "Use lookup_order when the caller gives an order number."
)

ORDERS = {"4217": "shipped", "5120": "being packed"}


class SupportAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions=SYSTEM_PROMPT)

    async def on_enter(self) -> None:
        await self.session.say("Hi, this is Ava from the shop. How can I help?")

    @function_tool
    async def lookup_order(self, context: RunContext, order_id: str) -> dict:
        """Look up the status of an order by its number."""
        status = ORDERS.get(order_id.replace(" ", ""))
        if status is None:
            return {"order_id": order_id, "found": False}
        return {"order_id": order_id, "found": True, "status": status}


server = AgentServer()


@server.rtc_session()
@roark.observe(
    agent_id="support-agent-v1",
    agent_name="Ava (support)",
    agent_prompt=SYSTEM_PROMPT,
    team="support",
)
async def entrypoint(ctx: JobContext) -> None:
    session = AgentSession(
        stt=deepgram.STT(),
        llm=openai.LLM(model="gpt-4o-mini"),
        tts=cartesia.TTS(),
        vad=silero.VAD.load(),
    )
    await session.start(room=ctx.room, agent=SupportAgent())


if __name__ == "__main__":
    cli.run_app(server)
