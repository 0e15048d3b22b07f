"""A client that closes a call's HTTP response before its answer cancels the call.

mcp 1.x clients, FastMCP 3 and langchain-mcp-adapters cancel a call this way (their
task is cancelled, the POST's response stream closes) without sending
``notifications/cancelled``. In a 2025-era session the MCP SDK would go on serving
such a request to its end, so the run would hold its thread. This middleware sends
the session the ``notifications/cancelled`` the client did not, when the SDK's event-stream
response hears the client go (in JSON mode, a task of its own watches). The served app keeps no
event store, so no client can resume a closed stream: its answer could reach no one.
A 2026-era request and a stateless one need nothing: their handler stops with the exchange.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CancelOnClose", "read_body", "replay"]

logger = logging.getLogger("mcpbridge")

_SESSION_HEADER = b"mcp-session-id"
_CANCEL_TIMEOUT = 10.0
_REASON = "the client closed the response stream"


class CancelOnClose:
    """ASGI middleware: a session's request whose response the client closes unanswered is cancelled.

    With event-stream answers (the default), the SDK's response listens for the client going away
    itself: the cancel is sent when it hears it, and a call costs no task of its own. With JSON
    answers nothing listens, so a task watches the connection while the call runs.

    Args:
        app: The streamable HTTP app.
        path: Where MCP is served.
        events: The app answers requests with event streams (else JSON).
    """

    def __init__(self, app: ASGIApp, path: str, *, events: bool = True) -> None:
        self.app = app
        self.path = path
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection; watch a session's request for its client going away."""
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != self.path
            or not any(key == _SESSION_HEADER for key, _ in scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:  # gone before its request was read
            return
        request_id = _request_id(body)
        if request_id is None:  # a notification, a response, or no message: nothing to cancel
            await self.app(scope, replay(body, receive), send)
            return
        answered = False

        async def send_answer(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            await send(message)

        async def cancel_unanswered() -> None:
            if not answered:
                with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_TIMEOUT):
                    await self._cancel(scope, request_id)

        if self.events:

            async def receive_rest() -> Message:
                message = await receive()
                if message["type"] == "http.disconnect":
                    await cancel_unanswered()
                return message

            await self.app(scope, replay(body, receive_rest), send_answer)
            return
        gone = anyio.Event()

        async def watch() -> None:
            # This task alone reads the connection now: the next message is the disconnect.
            await receive()
            gone.set()
            await cancel_unanswered()

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            await self.app(scope, replay(body, _disconnect(gone)), send_answer)
            if not gone.is_set():
                group.cancel_scope.cancel()

    async def _cancel(self, scope: Scope, request_id: int | str) -> None:
        """Send the session ``notifications/cancelled`` for ``request_id``, as the client's own POST."""
        notification = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": request_id, "reason": _REASON},
        }
        body = json.dumps(notification).encode()
        headers = [(key, value) for key, value in scope["headers"] if key != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        status: list[int] = []

        async def sink(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))

        await self.app({**scope, "headers": headers}, replay(body, _disconnect(None)), sink)
        if status and status[0] >= 300:
            logger.info("could not cancel request %r of a closed response (HTTP %d)", request_id, status[0])


async def read_body(receive: Receive) -> bytes | None:
    """The request body, read to its end; ``None`` if the client went away first."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def replay(body: bytes, then: Receive) -> Receive:
    """A ``receive`` that gives ``body`` (a request body already read) once, then what ``then`` gives."""
    replayed = False

    async def receive() -> Message:
        nonlocal replayed
        if replayed:
            return await then()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _disconnect(gone: anyio.Event | None) -> Receive:
    """A ``receive`` that gives the disconnect once ``gone`` is set (at once without one)."""

    async def receive() -> Message:
        if gone is not None:
            await gone.wait()
        return {"type": "http.disconnect"}

    return receive


def _request_id(body: bytes) -> int | str | None:
    """The id of the JSON-RPC request in ``body`` (not ``initialize``), else ``None``."""
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    message = cast(dict[str, Any], parsed)
    request_id = message.get("id")
    if not isinstance(message.get("method"), str) or message.get("method") == "initialize":
        return None
    return request_id if isinstance(request_id, int | str) and not isinstance(request_id, bool) else None
