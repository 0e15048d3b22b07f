"""Shared plumbing of the example servers: command line, transports, call records."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer

RECORD_ENV = "MCPBRIDGE_RECORD"
"""Path of a JSON-lines file where example servers append one record per tool call."""

EVENTS_ENV = "MCPBRIDGE_RECORD_EVENTS"
"""Path of a JSON-lines file where example servers append one line when their process starts
(``"event": "start"``) and one per inbound MCP request (``"event": "request"``, with its ``method``),
so a test can count processes and connections (``initialize``/``tools/list``) as well as calls."""


def record(server: str, tool: str, ctx: Context, **extra: Any) -> dict[str, Any]:
    """Append what this call carried (its ``_meta`` and arguments) to the record file, and return it."""
    meta: Mapping[str, Any] = ctx.request_context.meta or {}
    entry: dict[str, Any] = {
        "server": server,
        "tool": tool,
        "pid": os.getpid(),
        "time": time.time(),
        "protocol": ctx.protocol_version,
        "meta": {k: v for k, v in meta.items() if not k.startswith("io.modelcontextprotocol/")},
        **extra,
    }
    path = os.environ.get(RECORD_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry, default=str) + "\n")
    return entry


def record_event(server: str, event: str, **extra: Any) -> None:
    """Append one event line (process start, inbound request) to the ``MCPBRIDGE_RECORD_EVENTS`` file."""
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    entry = {"server": server, "event": event, "pid": os.getpid(), "time": time.time(), **extra}
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(entry, default=str) + "\n")


def _request_recorder(name: str) -> ServerMiddleware[Any]:
    async def recorder(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is not None:  # requests only, not notifications
            record_event(name, "request", method=ctx.method, protocol=ctx.protocol_version)
        return await call_next(ctx)

    return recorder


def serve(server: MCPServer, description: str) -> None:
    """Run ``server`` over stdio (the default) or streamable HTTP (``--http --port N``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    name = server.name or "server"
    record_event(name, "start", transport="http" if args.http else "stdio")
    if os.environ.get(EVENTS_ENV):
        server.middleware.append(_request_recorder(name))
    if args.http:
        server.run("streamable-http", host=args.host, port=args.port)
    else:
        server.run()
