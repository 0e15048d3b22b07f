"""Drives ``langchain-mcp-adapters`` for the suite, inside its own venv (it pins ``mcp<2``).

Run by the suite as ``bench/.venv-adapters/bin/python -m bench.adapters_driver``
from the repository root. It reads one JSON command per line on stdin and
answers one JSON line on stdout:

- ``{"op": "open", "peer": P, "mode": "default" | "persistent", "connection": {...}}``:
  ``default`` is ``MultiServerMCPClient(...).get_tools()`` (a new session per call);
  ``persistent`` is ``async with client.session(name)`` + ``load_mcp_tools(session)``.
  Peer ``P.traced`` calls the same tools with ``callbacks=[RecordingHandler()]``.
- ``{"op": "calls", "peer": P, "n": k}``: ``k`` timed ``echo`` calls through a ``ToolNode``.
- ``{"op": "batch", "peer": P, "n": k, "size": s}``: ``k`` timed ``ToolNode`` calls of ``s``
  parallel ``echo`` calls each.
- ``{"op": "versions"}``, ``{"op": "exit"}``.

Answers are ``{"ok": true, ...}`` (``"ms"``: durations in milliseconds) or
``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from contextlib import AsyncExitStack
from typing import Any

import anyio

from bench._driver import serve, timed
from bench._toolnode import RecordingHandler, ToolNodeCaller

SERVER = "bench"
SERVER_TOOL = "echo"
ARGS = {"text": "hi"}


class Driver:
    """The peers opened so far, each a `ToolNodeCaller` over the adapters' tools."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self.stack = stack
        self.peers: dict[str, ToolNodeCaller] = {}
        self.client_module: Any = importlib.import_module("langchain_mcp_adapters.client")
        self.tools_module: Any = importlib.import_module("langchain_mcp_adapters.tools")

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """Carry out one command; its answer without ``ok``."""
        op = command["op"]
        if op == "open":
            return await self.open(command["peer"], command["mode"], command["connection"])
        if op == "calls":
            peer = self.peers[command["peer"]]
            return {"ms": [await timed(peer.call(SERVER_TOOL, ARGS)) for _ in range(command["n"])]}
        if op == "batch":
            peer, size = self.peers[command["peer"]], command["size"]
            return {
                "ms": [await timed(peer.call_many(SERVER_TOOL, [ARGS] * size)) for _ in range(command["n"])]
            }
        if op == "versions":
            names = ("langchain-mcp-adapters", "mcp", "langgraph", "langchain-core")
            return {"versions": {name: importlib.metadata.version(name) for name in names}}
        raise ValueError(f"unknown op {op!r}")

    async def open(self, name: str, mode: str, connection: dict[str, Any]) -> dict[str, Any]:
        """Load the adapters' tools for peer ``name`` and put a ``ToolNode`` over them."""
        client = self.client_module.MultiServerMCPClient({SERVER: connection})
        if mode == "default":
            tools = await client.get_tools()
        else:
            session = await self.stack.enter_async_context(client.session(SERVER))
            tools = await self.tools_module.load_mcp_tools(session)
        self.peers[name] = ToolNodeCaller(tools)
        self.peers[f"{name}.traced"] = ToolNodeCaller(tools, RecordingHandler())
        return {"tools": sorted(t.name for t in tools)}


async def main() -> None:
    """Answer commands until ``exit`` or the end of stdin."""
    await serve(Driver)


if __name__ == "__main__":
    anyio.run(main)
