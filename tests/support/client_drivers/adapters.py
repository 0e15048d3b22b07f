"""Drives langchain-mcp-adapters, inside its venv (``.clients/adapters``, on the mcp SDK 1.x).

Its tools (``MultiServerMCPClient.get_tools()``) open a session per call and hand the
model text only: no elicitation, no structured content. An interrupted run is answered
through the documented ``resume`` argument, with the ``thread_id`` read from the text.
Cancelling the task that awaits a call closes its session (over HTTP: its stream).
"""

from __future__ import annotations

from typing import Any

import anyio
from langchain_core.tools import BaseTool, ToolException
from langchain_mcp_adapters.client import MultiServerMCPClient

from tests.support.client_drivers._base import ClientDriver
from tests.support.peers import serve_commands


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in content:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            texts.append(str(block["text"]))
    return texts


class AdaptersDriver(ClientDriver):
    packages = ("langchain-mcp-adapters", "mcp")

    tools: dict[str, BaseTool]

    async def open(self, connection: dict[str, Any], mode: str) -> None:
        if connection["transport"] == "http":
            spec: dict[str, Any] = {"transport": "streamable_http", "url": connection["url"]}
        else:
            spec = {key: connection[key] for key in ("command", "args", "env", "cwd") if key in connection}
            spec["transport"] = "stdio"
        client = MultiServerMCPClient({"served": spec})  # type: ignore[dict-item]
        self.tools = {tool.name: tool for tool in await client.get_tools()}

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            content = await self.tools[tool].ainvoke(arguments)
        except ToolException as exc:
            return {"texts": [str(exc)], "structured": None, "is_error": True}
        return {"texts": _texts(content), "structured": None, "is_error": False}


if __name__ == "__main__":
    anyio.run(serve_commands, AdaptersDriver)
