"""The example agent (``examples/agent.py``) with ``pool=False``: each run connects and closes its sessions.

The tests that count one connection set per run (one stdio process, one handshake
per server, no process left once the run ends) serve this graph as ``agent`` (see
`tests.support.processes.per_run_config`); the example's own default, warm sessions,
is served as is by the tests of warm runs. Its model records each input it gets in
``$MCPBRIDGE_RECORD_MODEL`` (`tests.support.history.RecordingChatModel`).
"""

from __future__ import annotations

from examples.agent import make_factory
from tests.support.history import RecordingChatModel

make_graph = make_factory(pool=False, model=RecordingChatModel())
