"""The asyncio side: runs on the agent's event loop, only copies and hands over.

Nothing here blocks, touches the network or the disk: the session hooks and audio taps read
what a record needs and post it through the call's channel (``roark._handoff``).
"""
