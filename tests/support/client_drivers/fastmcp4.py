"""Drives FastMCP 4's client (``fastmcp.Client``), inside its venv (``.clients/fastmcp4``).

Built on the mcp SDK 2.x, it speaks either era (``mode``): with its elicitation handler it
answers ``input_required`` rounds (2026-07-28) or ``elicitation/create`` (2025-11-25).
Cancelling the task that awaits a call is how it cancels the call.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastmcp import Client
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport

from tests.support.client_drivers._base import ClientDriver, texts_of
from tests.support.peers import serve_commands


class FastMCP4Driver(ClientDriver):
    packages = ("fastmcp-slim", "mcp")

    client: Client[Any]

    async def open(self, connection: dict[str, Any], mode: str) -> None:
        if connection["transport"] == "http":
            transport: Any = StreamableHttpTransport(connection["url"])
        else:
            transport = StdioTransport(
                command=connection["command"],
                args=connection["args"],
                env=connection.get("env"),
                cwd=connection.get("cwd"),
            )
        handler = self.elicit if self.answers is not None else None
        client: Client[Any] = Client(
            transport, elicitation_handler=handler, mode=mode, timeout=120, init_timeout=60
        )
        self.client = await self.stack.enter_async_context(client)

    async def elicit(self, message: str, response_type: Any, params: Any, context: Any) -> dict[str, Any]:
        return self.answer(message, params.requested_schema)

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments, raise_on_error=False)
        return {
            "texts": texts_of(result.content),
            "structured": result.structured_content,
            "is_error": result.is_error,
        }


if __name__ == "__main__":
    anyio.run(serve_commands, FastMCP4Driver)
