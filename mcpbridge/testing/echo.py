"""A tiny MCP server for quickstarts and examples: ``whoami``, ``add`` and ``count``.

Run it over stdio (the default) or over streamable HTTP at ``http://127.0.0.1:PORT/mcp``::

    python -m mcpbridge.testing.echo
    python -m mcpbridge.testing.echo --http --port 8765

``whoami`` returns the run identity the bridge sent in the call's ``_meta`` (the keys
under ``dev.mcpbridge/``), ``add`` adds two numbers and ``count`` counts to a number,
reporting progress at every step.

Example:
    ```python
    StdioServer(name="echo", command=sys.executable, args=["-m", "mcpbridge.testing.echo"])
    ```
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from mcpbridge.identity import DEFAULT_META_PREFIX

__all__ = ["main", "server"]

server = MCPServer("echo", instructions="Tells who called, adds numbers, counts with progress.")
"""The example server; serve it with `main` or connect to it in memory (`mcpbridge.MemoryServer`)."""


@server.tool()
async def whoami(ctx: Context) -> dict[str, Any]:
    """Return the identity (user, thread, run) this call carried in ``_meta``."""
    meta = ctx.request_context.meta or {}
    return {key: value for key, value in meta.items() if key.startswith(DEFAULT_META_PREFIX)}


@server.tool()
async def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@server.tool()
async def count(to: int, ctx: Context) -> str:
    """Count from 1 to `to`, reporting progress at every step."""
    for step in range(1, to + 1):
        await ctx.report_progress(step, to, f"step {step} of {to}")
    return f"counted to {to}"


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the example server over stdio, or over streamable HTTP with ``--http``."""
    parser = argparse.ArgumentParser(prog="python -m mcpbridge.testing.echo", description=__doc__)
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default: 8765)")
    args = parser.parse_args(argv)
    if args.http:
        server.run("streamable-http", host=args.host, port=args.port)
    else:
        server.run()


if __name__ == "__main__":
    main()
