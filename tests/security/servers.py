"""The MCP server of the hostile-tenant deployment: it records what each call reached.

Run over stdio (``python -m tests.security.servers``) or streamable HTTP
(``--http --port N``). Every call appends a line to ``MCPBRIDGE_RECORD``
holding what an attacker would try to change: the root directory the process
was given (``FILES_ROOT``), the headers of the request (``X-User``, ``Host``,
a fingerprint of ``Authorization``), the user-settable ``FILES_TOKEN``, and the
identity token the call carried (so a test can replay it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from examples.servers._common import fingerprint, record, serve
from mcpbridge.server import IDENTITY_HEADER

TOKEN_META = "dev.mcpbridge/identity_token"

server = MCPServer("tenant", instructions="Reports what reached it: its root, its headers, its caller.")


def _reached(ctx: Context, tool: str, **extra: Any) -> dict[str, Any]:
    headers: Mapping[str, str] = ctx.headers or {}
    meta: Mapping[str, Any] = ctx.request_context.meta or {}
    token = os.environ.get("FILES_TOKEN")
    return record(
        "tenant",
        tool,
        ctx,
        root=os.environ.get("FILES_ROOT"),
        files_token=None if token is None else fingerprint(token),
        x_user=headers.get("x-user"),
        host=headers.get("host"),
        token=meta.get(TOKEN_META) or headers.get(IDENTITY_HEADER.lower()),
        **extra,
    )


@server.tool()
async def root(ctx: Context) -> str:
    """The directory this server serves files from."""
    entry = _reached(ctx, "root")
    return f"root={entry['root']}"


@server.tool()
async def whoami(ctx: Context) -> dict[str, Any]:
    """Who the request said it came from (headers and the verified identity)."""
    entry = _reached(ctx, "whoami")
    return {"x_user": entry["x_user"], "verified": entry["verified"], "authorization": entry["authorization"]}


@server.tool()
async def lookup(text: str, ctx: Context) -> str:
    """Look ``text`` up."""
    _reached(ctx, "lookup", text=text)
    return f"found nothing for {text!r}"


if __name__ == "__main__":
    serve(server, __doc__ or "")
