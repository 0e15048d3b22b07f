"""Agents as MCP servers: LangGraph graphs of this process or of an Agent Server, one MCP tool each.

```python
from mcpbridge.serving import AgentMCPServer

server = AgentMCPServer.from_graphs({"agent": make_graph}, checkpointer="sqlite:threads.db")
server.run("http", port=8000)
```

Calls keep threads (``thread_id``), report progress, can be cancelled, and over
HTTP run as the user a bearer token verifies. ``mcpbridge serve`` is the command line.
Its web stack (starlette, uvicorn) is the ``serve`` extra: ``pip install 'mcpbridge[serve]'``.
"""

try:  # the serve extra, checked first, so that its absence says what to install
    import starlette
    import uvicorn
except ImportError as error:
    raise ImportError(
        f"mcpbridge.serving needs {error.name or 'starlette and uvicorn'}, which the serve extra "
        "installs: pip install 'mcpbridge[serve]'",
        name=error.name,
    ) from None

from mcpbridge.serving.backend import Backend, Caller, OpenBackend
from mcpbridge.serving.checkpointers import CheckpointerSpec, open_checkpointer, parse_checkpointer
from mcpbridge.serving.interface import OUTPUT_SCHEMA, ToolInterface, interface_for
from mcpbridge.serving.loading import (
    ServedGraph,
    load_config_graphs,
    load_graph,
    load_object,
    parse_graph_arg,
)
from mcpbridge.serving.local import LocalGraphs
from mcpbridge.serving.progress import ProgressReporter
from mcpbridge.serving.remote import RemoteAssistants, RemoteTokenCheck
from mcpbridge.serving.server import AgentMCPServer
from mcpbridge.serving.users import ServedUser, UserVerifier

del starlette, uvicorn  # checked above, not part of this module

__all__ = [
    "OUTPUT_SCHEMA",
    "AgentMCPServer",
    "Backend",
    "Caller",
    "CheckpointerSpec",
    "LocalGraphs",
    "OpenBackend",
    "ProgressReporter",
    "RemoteAssistants",
    "RemoteTokenCheck",
    "ServedGraph",
    "ServedUser",
    "ToolInterface",
    "UserVerifier",
    "interface_for",
    "load_config_graphs",
    "load_graph",
    "load_object",
    "open_checkpointer",
    "parse_checkpointer",
    "parse_graph_arg",
]
