"""Drives the mcp SDK's 1.x client (``ClientSession``), inside its venv (``.clients/mcp1``).

It speaks the 2025-11-25 handshake era; its elicitation callback answers ``elicitation/create``.
It has no API to cancel a request: the caller sends ``notifications/cancelled`` itself, with
the request's id, which the session numbers from ``_request_id``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.context import RequestContext

from tests.support.client_drivers._base import ClientDriver, texts_of
from tests.support.peers import serve_commands

TIMEOUT = timedelta(seconds=120)


class Mcp1Driver(ClientDriver):
    packages = ("mcp",)

    session: ClientSession
    _request_id: int | None = None

    async def open(self, connection: dict[str, Any], mode: str) -> None:
        if connection["transport"] == "http":
            read, write, _ = await self.stack.enter_async_context(streamablehttp_client(connection["url"]))
        else:
            params = StdioServerParameters(
                command=connection["command"],
                args=connection["args"],
                env=connection.get("env"),
                cwd=connection.get("cwd"),
            )
            read, write = await self.stack.enter_async_context(stdio_client(params))
        callback = self.elicit if self.answers is not None else None
        self.session = await self.stack.enter_async_context(
            ClientSession(read, write, read_timeout_seconds=TIMEOUT, elicitation_callback=callback)
        )
        await self.session.initialize()

    async def elicit(
        self, context: RequestContext[ClientSession, Any], params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        assert isinstance(params, types.ElicitRequestFormParams)
        return types.ElicitResult(
            action="accept", content=self.answer(params.message, params.requestedSchema)
        )

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self._request_id = self.session._request_id  # the id this request gets
        result = await self.session.call_tool(tool, arguments)
        return {
            "texts": texts_of(result.content),
            "structured": result.structuredContent,
            "is_error": result.isError,
        }

    async def signal_cancel(self, scope: anyio.CancelScope) -> None:
        assert self._request_id is not None
        params = types.CancelledNotificationParams(requestId=self._request_id, reason="cancelled by the user")
        await self.session.send_notification(
            types.ClientNotification(types.CancelledNotification(params=params))
        )
        scope.cancel()


if __name__ == "__main__":
    anyio.run(serve_commands, Mcp1Driver)
