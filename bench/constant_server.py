"""The floors of an MCP tool round trip, on the MCP SDK's low-level server.

Two tools: ``constant`` answers a constant; ``graph`` runs ``graph.ainvoke`` of
the graph ``mcpbridge serve`` serves in the bench (`bench.graphs`, a new thread
of one ``InMemorySaver`` each call) and then answers the same constant: the
thinnest MCP server of that graph. Served over streamable HTTP as ``mcpbridge
serve`` serves its graphs (the SDK's ``streamable_http_app`` under uvicorn, on a
socket with ``TCP_NODELAY``), in the same HTTP mode, so that the difference to
``mcpbridge serve`` is mcpbridge's own work. Run from the repository root::

    python -m bench.constant_server            # prints "constant: serving at http://127.0.0.1:<port>/mcp"
    python -m bench.constant_server --stateless --json-response
"""

from __future__ import annotations

import argparse
import socket
import uuid
from collections.abc import Mapping
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server

from bench.graphs import trivial

NAME = "constant"
"""The tool that answers a constant."""
GRAPH = "graph"
"""The tool that runs the bench graph, then answers the same constant."""
ANSWER = "ok"
INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string"}},
    "required": ["message"],
}
_TOOLS = types.ListToolsResult(
    tools=[types.Tool(name=name, input_schema=INPUT_SCHEMA) for name in (NAME, GRAPH)]
)
_RESULT = types.CallToolResult(content=[types.TextContent(type="text", text=ANSWER)])
_GRAPH = trivial.copy(update={"checkpointer": InMemorySaver()})


async def _list_tools(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return _TOOLS


async def _call_tool(
    ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    if params.name == GRAPH:
        config: RunnableConfig = {"configurable": {"thread_id": str(uuid.uuid4())}}
        message = (params.arguments or {}).get("message", "")
        await _GRAPH.ainvoke({"messages": [{"role": "user", "content": message}]}, config)  # pyright: ignore[reportUnknownMemberType]
    return _RESULT


def _input_schema(name: str) -> Mapping[str, Any] | None:
    return INPUT_SCHEMA if name in (NAME, GRAPH) else None


def build_server() -> Server[Any]:
    """The server: ``constant(message)`` answers ``ok``; ``graph(message)`` runs the graph first."""
    return Server(
        "constant",
        get_tool_input_schema=_input_schema,
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
    )


async def serve(*, stateless: bool, json_response: bool) -> None:
    """Serve on a free port of 127.0.0.1 until stopped, after printing the URL."""
    app = build_server().streamable_http_app(stateless_http=stateless, json_response=json_response)
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        print(f"constant: serving at http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5, lifespan="on")
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> None:
    """Run the server."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stateless", action="store_true", help="serve HTTP without sessions")
    parser.add_argument("--json-response", action="store_true", help="answer with JSON, not event streams")
    args = parser.parse_args(argv)
    anyio.run(lambda: serve(stateless=args.stateless, json_response=args.json_response))


if __name__ == "__main__":
    main()
