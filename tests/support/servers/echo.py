"""Recording echo server for tests: echoes the identity it receives, reports progress, fails on demand.

Run it over stdio with ``python -m tests.support.servers.echo``, or over streamable HTTP
with ``python -m tests.support.servers.echo --http --port 8765``. Set ``MCPBRIDGE_RECORD``
to a file path to have every call recorded there as a JSON line, and
``MCPBRIDGE_IDENTITY_SECRET`` to accept only calls with a verified signed identity.
``ECHO_FREEZE=1`` adds a ``freeze`` tool that blocks the whole process (kept out of the
default tool list, which many tests compare).
"""

from __future__ import annotations

import os
import time
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from tests.support.servers.common import record, serve

server = MCPServer("echo", instructions="Echoes identity, counts with progress, fails on demand.")


@server.tool()
async def whoami(ctx: Context) -> dict[str, Any]:
    """Return the identity (thread, run, user) this call carried, and what its signature proved."""
    entry = record("echo", "whoami", ctx)
    return {
        "meta": entry["meta"],
        "verified": entry["verified"],
        "authorization": entry["authorization"],
        "protocol": entry["protocol"],
        "pid": entry["pid"],
    }


@server.tool()
async def add(a: float, b: float, ctx: Context) -> float:
    """Add two numbers."""
    record("echo", "add", ctx, arguments={"a": a, "b": b})
    return a + b


@server.tool()
async def count(to: int, ctx: Context) -> str:
    """Count from 1 to `to`, reporting progress at every step."""
    record("echo", "count", ctx, arguments={"to": to})
    for step in range(1, to + 1):
        await ctx.report_progress(step, to, f"step {step} of {to}")
    return f"counted to {to}"


@server.tool()
async def slow(seconds: float, ctx: Context) -> str:
    """Sleep for `seconds`, then answer; records when it starts and whether it was cancelled."""
    record("echo", "slow", ctx, arguments={"seconds": seconds}, phase="start")
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        record("echo", "slow", ctx, phase="cancelled")
        raise
    return f"slept {seconds}s"


async def freeze(seconds: float, ctx: Context) -> str:
    """Block this whole process for `seconds`: it reads nothing, not even its stdin, meanwhile."""
    record("echo", "freeze", ctx, phase="start")
    time.sleep(seconds)  # noqa: ASYNC251  (on purpose: the event loop, and so the stdin reader, stop too)
    return f"froze {seconds}s"


@server.tool()
async def fail(message: str, ctx: Context) -> str:
    """Fail with `message` (an isError result)."""
    record("echo", "fail", ctx)
    raise ToolError(message)


@server.tool()
async def crash(ctx: Context) -> str:
    """Kill this server process in the middle of the call."""
    record("echo", "crash", ctx)
    os._exit(3)


if os.environ.get("ECHO_FREEZE") == "1":
    server.tool()(freeze)


if __name__ == "__main__":
    serve(server, __doc__ or "")
