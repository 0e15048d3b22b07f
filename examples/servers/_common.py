"""Shared plumbing of the example servers: command line, transports, call records."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

RECORD_ENV = "MCPBRIDGE_RECORD"
"""Path of a JSON-lines file where example servers append one record per tool call."""


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


def serve(server: MCPServer, description: str) -> None:
    """Run ``server`` over stdio (the default) or streamable HTTP (``--http --port N``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    if args.http:
        server.run("streamable-http", host=args.host, port=args.port)
    else:
        server.run()
