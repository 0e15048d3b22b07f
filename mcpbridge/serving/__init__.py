"""Agents as MCP servers: LangGraph graphs of this process or of an Agent Server, one MCP tool each.

```python
from mcpbridge.serving import AgentMCPServer

server = AgentMCPServer.from_graphs({"agent": make_graph}, checkpointer="sqlite:threads.db")
server.run("http", port=8000)
```

Calls keep threads (``thread_id``), report progress, can be cancelled, ask the
client when a run interrupts, and over HTTP run as the user a bearer token verifies
(or, as an OAuth protected resource, the subject of an access token: `ProtectedResource`).
``mcpbridge serve`` is the command line.
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

from mcpbridge._deprecation import moved
from mcpbridge.serving.backend import Backend, Caller, ClientInput, OpenBackend
from mcpbridge.serving.checkpointers import CheckpointerSpec, open_checkpointer
from mcpbridge.serving.loading import ServedGraph
from mcpbridge.serving.local import LocalGraphs
from mcpbridge.serving.oauth import Introspection, ProtectedResource
from mcpbridge.serving.remote import RemoteAssistants, RemoteTokenCheck
from mcpbridge.serving.server import AgentMCPServer
from mcpbridge.serving.users import ServedUser, UserVerifier

del starlette, uvicorn  # checked above, not part of this module

__all__ = [
    "AgentMCPServer",
    "Backend",
    "Caller",
    "CheckpointerSpec",
    "ClientInput",
    "Introspection",
    "LocalGraphs",
    "OpenBackend",
    "ProtectedResource",
    "RemoteAssistants",
    "RemoteTokenCheck",
    "ServedGraph",
    "ServedUser",
    "UserVerifier",
    "open_checkpointer",
]

# The command line's loaders and the tool interface's parts live in their modules; the old
# names keep working, with a warning, for one release.
__getattr__ = moved(
    "mcpbridge.serving",
    {
        **dict.fromkeys(
            ("load_config_graphs", "load_graph", "load_object", "parse_graph_arg"),
            "mcpbridge.serving.loading",
        ),
        "parse_checkpointer": "mcpbridge.serving.checkpointers",
        **dict.fromkeys(("OUTPUT_SCHEMA", "ToolInterface", "interface_for"), "mcpbridge.serving.interface"),
        "ProgressReporter": "mcpbridge.serving.progress",
    },
)
