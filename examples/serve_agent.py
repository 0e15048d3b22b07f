r"""Serve an agent as an MCP server: a tool named after the graph, each call one run.

    python examples/serve_agent.py                      # over stdio, for an MCP client to start
    python examples/serve_agent.py --http --port 8000   # streamable HTTP at http://127.0.0.1:8000/mcp

The tool ``agent`` takes ``{"message": "...", "thread_id": "..."}``; a call with the same
``thread_id`` continues the conversation, and the tool's progress notifications follow the
run. The CLI serves any graph or factory the same way, with auth and a lasting checkpointer::

    mcpbridge serve agent=examples/serve_agent.py:make_graph --transport http \\
        --auth examples.serve_auth:verify --checkpointer sqlite:threads.db

The agent itself uses the example MCP server (``python -m mcpbridge.testing.echo``), so a
served agent may be an MCP client too.
"""

from __future__ import annotations

import argparse
import sys

from mcpbridge import StdioServer, agent_factory
from mcpbridge.serving import AgentMCPServer
from mcpbridge.testing import load_chat_model

echo = StdioServer(name="echo", command=sys.executable, args=["-m", "mcpbridge.testing.echo"], prefix="echo")

make_graph = agent_factory([echo], load_chat_model())
"""The served agent: a factory, so runs connect to ``echo`` (kept open between a user's runs)."""


def main() -> None:
    """Serve ``make_graph`` as the tool ``agent``, over stdio or streamable HTTP."""
    parser = argparse.ArgumentParser(description="Serve an agent as an MCP server.")
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    server = AgentMCPServer.from_graphs({"agent": make_graph}, name="assistant")
    if args.http:
        server.run("http", host="127.0.0.1", port=args.port)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
