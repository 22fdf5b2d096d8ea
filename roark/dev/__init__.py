"""``roark dev``: the local, contract-faithful Roark with a viewer, over a folder of calls.

Point an agent at it (``ROARK_BASE_URL``, ``ROARK_API_KEY``) and every call it makes can be
seen and heard in the browser: the two channels on one timeline, the transcript at its
audio offsets, tool calls, interruptions, and the latency of each turn as the caller heard
it. The parts: ``store`` (calls in a folder, indexed in SQLite), ``analysis`` (peaks,
speech, latency, alignment: computed once per call), ``views`` (the pages' JSON), ``app``
(the aiohttp app: the contract's endpoints and the viewer), ``server`` (DevServer, in a
thread), ``cli`` and ``static/`` (the page, and wavesurfer.js vendored).

Only ``cli`` is imported by ``roark`` itself; the rest needs the ``dev`` extra.
"""
