"""A 2026-era server whose tool list carries cache hints, and which records every HTTP request it gets.

Run it with ``python -m tests.support.servers.cached --http --port 8767``. Its
``tools/list`` (and ``server/discover``) results carry ``ttlMs`` from
``MCPBRIDGE_CACHED_TTL_MS`` (default 60000) and ``cacheScope`` from
``MCPBRIDGE_CACHED_SCOPE`` (default ``private``). Each caller's list holds, beside the
shared tools, one tool named after a fingerprint of its ``Authorization`` header
(``private_<fingerprint>``, ``private_anonymous`` without one), so a list served to
the wrong caller shows. `grow` adds a tool and says the list changed (a
``notifications/tools/list_changed`` on 2025 sessions, a ``subscriptions/listen``
event on 2026 ones).

Every HTTP request is appended to ``MCPBRIDGE_RECORD_EVENTS`` as one line with
``event: "http"``, its HTTP method, its JSON-RPC ``rpc`` method (``None`` when the
body is not one) and the fingerprint of its ``Authorization`` header: the count of
requests a client cost is read there, discovery and stream requests included.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import uvicorn
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.support.servers.common import fingerprint, record, record_event

TTL_ENV = "MCPBRIDGE_CACHED_TTL_MS"
SCOPE_ENV = "MCPBRIDGE_CACHED_SCOPE"

server = MCPServer("cached", instructions="Lists its tools with cache hints; records every request.")
_grown: list[str] = []


@server.tool()
async def whoami(ctx: Context) -> dict[str, Any]:
    """Return the fingerprint of the Authorization header this call carried."""
    entry = record("cached", "whoami", ctx)
    return {"authorization": entry["authorization"], "protocol": entry["protocol"]}


@server.tool()
async def grow(ctx: Context) -> str:
    """Add a tool, and tell the clients the tool list changed."""
    name = f"grown_{len(_grown) + 1}"
    _grown.append(name)

    def grown() -> str:
        return name

    server.add_tool(grown, name=name, description=f"Added by grow ({name}).")
    await ctx.notify_tools_changed()  # 2026-07-28: the subscriptions/listen streams
    session = getattr(ctx.request_context, "session", None)
    send = getattr(session, "send_tool_list_changed", None)
    if send is not None:  # 2025-11-25: a notification on the session
        await send()
    return name


def _principal(ctx: ServerRequestContext[Any, Any]) -> str:
    headers: Any = getattr(ctx.request, "headers", None) or {}
    authorization = headers.get("authorization")
    return "anonymous" if authorization is None else fingerprint(authorization)


async def _hinted(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Put the cache hints on ``tools/list`` and ``server/discover``, and the caller's tool on the list."""
    result = await call_next(ctx)
    if ctx.method not in ("tools/list", "server/discover") or result is None:
        return result
    data: dict[str, Any] = (
        result if isinstance(result, dict) else result.model_dump(by_alias=True, exclude_none=True)
    )
    hints = {
        "ttlMs": int(os.environ.get(TTL_ENV, "60000")),
        "cacheScope": os.environ.get(SCOPE_ENV, "private"),
    }
    if ctx.method == "tools/list":
        own = {"name": f"private_{_principal(ctx)}", "inputSchema": {"type": "object"}}
        data = {**data, "tools": [*data.get("tools", []), own]}
    return {**data, **hints}


server.middleware.append(_hinted)


class RequestLog:
    """ASGI middleware: one event line per HTTP request, with its JSON-RPC method."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        rpc: str | None = None
        try:
            parsed = json.loads(body) if body else None
            if isinstance(parsed, dict):
                rpc = parsed.get("method")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        except ValueError:
            pass
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        authorization = headers.get("authorization")
        record_event(
            "cached",
            "http",
            method=scope["method"],
            rpc=rpc,
            authorization=None if authorization is None else fingerprint(authorization),
        )
        replay = iter(messages)

        async def replayed() -> Message:
            for message in replay:
                return message
            return await receive()

        await self.app(scope, replayed, send)


def main() -> None:
    """Serve over streamable HTTP (the only transport this server offers)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--http", action="store_true", help="accepted for symmetry; HTTP is the only transport"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()
    record_event("cached", "start", transport="http")
    app = RequestLog(server.streamable_http_app(host=args.host))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
