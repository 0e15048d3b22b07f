"""An Agent Server graph whose MCP servers come from an ``mcp.json`` file.

``mcp.json`` is the ``mcpServers`` format of Claude Desktop, Cursor and VS Code (with
``${VAR:-default}`` expanded from the environment). Name the factory in ``langgraph.json``::

    {
      "dependencies": ["."],
      "graphs": {"agent": "./examples/mcp_json_factory.py:make_graph"}
    }

and run ``langgraph dev``. A user's first run connects to the servers (starting ``echo`` as
a subprocess, reaching ``remote`` over HTTP at ``ECHO_URL``); the factory keeps the sessions
open for that user's next runs, and closes them when idle or at shutdown. Reading state or
schemas connects to nothing. ``remote`` is optional (``"required": false``):
runs go on without it when it is down.

The model is ``MCPBRIDGE_MODEL=provider:model`` if set, else an offline model that calls the
tools a message names (``call echo_whoami``); put your own model in its place.
"""

from __future__ import annotations

from pathlib import Path

from mcpbridge import agent_factory, load_servers
from mcpbridge.testing import load_chat_model

servers = load_servers(Path(__file__).with_name("mcp.json"))

make_graph = agent_factory(
    servers,
    load_chat_model(),
    system_prompt="You are a helpful assistant. Call a tool when the user asks for one.",
)
"""The factory for ``langgraph.json``: MCP tools for runs, the same tool-less graph elsewhere."""
