"""No request body past the MCP SDK's limit is read: the client gets its 413 and the connection closes.

The served app's own middlewares read a POST's whole body before the SDK does; this one, outside
them, bounds it as the SDK would (a declared ``Content-Length`` over the limit is refused unread, a
body that streams past it stops being read there), and closes the connection so the client stops
sending the rest.
"""

from __future__ import annotations

from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BoundedBody"]

_TOO_LARGE = 413


class BoundedBody:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 and its connection closed.

    Args:
        app: The app whose requests are bounded.
        limit: The most bytes of one request body; the SDK's default (4 MiB) unless given.
    """

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_MAX_REQUEST_BODY_SIZE) -> None:
        self.app = RequestBodyLimitMiddleware(app, limit)
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection, its body read up to the limit at most."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            # Unread, the rest of the body would keep coming on a kept-alive connection.
            if message["type"] == "http.response.start" and message["status"] == _TOO_LARGE:
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_closing)
