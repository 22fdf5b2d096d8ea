"""A local, contract-faithful Roark server for tests, demos and benchmarks.

:class:`LocalRoark` speaks the Roark wire contract for LiveKit Agents calls on 127.0.0.1:
the lifecycle webhook, the presigned chunk-upload-url endpoint and a one-shot "storage
host" that takes the PCM chunks. It validates every request against the contract, keeps
what it received (per call), stitches each call's chunks into a stereo WAV when the call
ends, and records every contract violation it sees. Faults (errors, dropped connections,
latency, hangs) can be injected at any time to exercise a client's retry logic.

Example::

    with LocalRoark() as roark_server:
        # point the client at roark_server.base_url with key roark_server.api_key ...
        call = roark_server.wait_for_call("RM_abc", timeout=10)
        assert call.reason == "participant-disconnected"
        assert call.recording.shape[1] == 2
        assert roark_server.violations == []

Run it by hand with ``python -m roark.testing.server --port 8787 --api-key KEY``.

The parts, one per module: ``contract`` (paths and body checks), ``ingest`` (the
endpoints: what to answer, what to keep), ``storage`` (where calls are kept), ``faults``,
``http`` (the threading HTTP server), ``local_roark`` (the facade) and ``cli``.
"""

from .cli import main
from .contract import EVENT_PATH, STORAGE_PREFIX, UPLOAD_URL_PATH
from .local_roark import LocalRoark
from .records import ReceivedCall, RequestRecord
from .storage import CallStore, MemoryStore

__all__ = [
    "EVENT_PATH",
    "STORAGE_PREFIX",
    "UPLOAD_URL_PATH",
    "CallStore",
    "LocalRoark",
    "MemoryStore",
    "ReceivedCall",
    "RequestRecord",
    "main",
]
