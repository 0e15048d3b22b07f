"""The graphs ``langgraph dev`` serves for the bench's end-to-end sections (this venv's, with mcpbridge).

Named by file path in the ``langgraph.json`` the suite writes:

- ``bridge``: `agent_factory` with its default settings over the bench server on
  stdio and the offline model; a run asks for one ``echo`` call. The bench server
  records its starts and handshakes in ``MCPBRIDGE_BENCH_EVENTS`` when set.
- ``pooled``: `agent_factory` with a `SessionPool` over the recording echo server
  of the tests (``tests.support.servers.echo``) on stdio; a run asks for one
  ``whoami`` call, recorded (with the identity it carried and the server's pid) in
  ``MCPBRIDGE_RECORD``, and every server start in ``MCPBRIDGE_RECORD_EVENTS``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcpbridge import SessionPool, StdioServer, agent_factory
from mcpbridge.testing import OfflineChatModel

ROOT = Path(__file__).resolve().parent.parent
EVENTS_ENV = "MCPBRIDGE_BENCH_EVENTS"
BRIDGE_MESSAGE = 'echo {"text": "hi"}'
"""What a user asks the ``bridge`` graph: the offline model calls ``echo`` once, then answers."""
POOLED_MESSAGE = "whoami"
"""What a user asks the ``pooled`` graph: one ``whoami`` call."""
RECORDING = ("MCPBRIDGE_RECORD", "MCPBRIDGE_RECORD_EVENTS")


def _bench_server() -> StdioServer:
    events = os.environ.get(EVENTS_ENV)
    args = ["-m", "bench.servers", *(["--events", events] if events else [])]
    return StdioServer(name="bench", command=sys.executable, args=args, cwd=ROOT)


def _recording_server() -> StdioServer:
    env = {name: os.environ[name] for name in RECORDING if name in os.environ}
    args = ["-m", "tests.support.servers.echo"]
    return StdioServer(name="echo", command=sys.executable, args=args, cwd=ROOT, env=env)


bridge = agent_factory([_bench_server()], OfflineChatModel())
"""The bridge's factory as a user writes it from the README: default settings."""

pooled = agent_factory([_recording_server()], OfflineChatModel(), pool=SessionPool())
"""Sessions kept per server, user and event loop, to count cold starts in the Agent Server's modes."""
