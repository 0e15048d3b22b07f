"""Drives ``langchain.mcp`` (LangChain's MCP adapter) for the suite, inside its own venv.

Run by the suite as ``bench/.venv-langchain-mcp/bin/python -m bench.langchain_mcp_driver``
from the repository root, speaking the protocol of `bench.adapters_driver`
(one JSON command per line on stdin, one JSON answer per line on stdout):

- ``{"op": "open", "peer": P, "mode": "persistent", "connection": {...}}``:
  ``async with MCPAdapter(target)`` kept open, and ``await adapter.list_tools()``;
  the target is ``StdioTransport(command, args, cwd=...)`` or the server's URL.
  Peer ``P.traced`` calls the same tools with ``callbacks=[RecordingHandler()]``.
- ``{"op": "calls", "peer": P, "n": k}``, ``{"op": "batch", "peer": P, "n": k, "size": s}``:
  timed ``echo`` calls through a ``ToolNode``, as in `bench.adapters_driver`.
- ``{"op": "connects", "url": U, "n": k}``: ``k`` timed
  ``async with MCPAdapter(U) as adapter: await adapter.list_tools()`` (connect, list, close).
- ``{"op": "versions"}``, ``{"op": "exit"}``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings
from contextlib import AsyncExitStack
from typing import Any

import anyio

from bench._driver import serve, timed
from bench._toolnode import RecordingHandler, ToolNodeCaller

SERVER_TOOL = "echo"
ARGS = {"text": "hi"}


class Driver:
    """The peers opened so far, each a `ToolNodeCaller` over ``langchain.mcp`` tools."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self.stack = stack
        self.peers: dict[str, ToolNodeCaller] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the namespace warns that it is in beta
            self.adapter_class: Any = importlib.import_module("langchain.mcp").MCPAdapter
        self.transports: Any = importlib.import_module("fastmcp.client.transports")

    def target(self, connection: dict[str, Any]) -> Any:
        """The ``MCPAdapter`` target of a connection."""
        if connection["transport"] == "stdio":
            return self.transports.StdioTransport(
                command=connection["command"], args=list(connection["args"]), cwd=connection["cwd"]
            )
        return connection["url"]

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """Carry out one command; its answer without ``ok``."""
        op = command["op"]
        if op == "open":
            target = self.target(command["connection"])
            adapter = await self.stack.enter_async_context(self.adapter_class(target))
            tools = await adapter.list_tools()
            self.peers[command["peer"]] = ToolNodeCaller(tools)
            self.peers[f"{command['peer']}.traced"] = ToolNodeCaller(tools, RecordingHandler())
            return {"tools": sorted(t.name for t in tools)}
        if op == "calls":
            peer = self.peers[command["peer"]]
            return {"ms": [await timed(peer.call(SERVER_TOOL, ARGS)) for _ in range(command["n"])]}
        if op == "batch":
            peer, size = self.peers[command["peer"]], command["size"]
            return {
                "ms": [await timed(peer.call_many(SERVER_TOOL, [ARGS] * size)) for _ in range(command["n"])]
            }
        if op == "connects":
            return {"ms": [await timed(self.connect(command["url"])) for _ in range(command["n"])]}
        if op == "versions":
            names = ("langchain", "fastmcp", "mcp", "langgraph", "langchain-core")
            return {"versions": {name: importlib.metadata.version(name) for name in names}}
        raise ValueError(f"unknown op {op!r}")

    async def connect(self, url: str) -> None:
        """Connect to ``url``, list its tools as LangChain tools, and close."""
        async with self.adapter_class(url) as adapter:
            tools = await adapter.list_tools()
        if SERVER_TOOL not in {t.name for t in tools}:
            raise RuntimeError(f"no {SERVER_TOOL} tool at {url}")


async def main() -> None:
    """Answer commands until ``exit`` or the end of stdin."""
    await serve(Driver)


if __name__ == "__main__":
    anyio.run(main)
