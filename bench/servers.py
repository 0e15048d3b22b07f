"""The bench MCP server: one trivial ``echo(text)`` tool, over stdio or streamable HTTP.

Run from the repository root::

    python -m bench.servers                                     # stdio
    python -m bench.servers --http                              # HTTP on a free port, printed as "PORT <n>"
    python -m bench.servers --http --handshake-delay 0.1        # answers its handshake 100 ms late
    python -m bench.servers --events calls.jsonl                # one line per start and per handshake

``--events`` lets the suite count connections from the server side: a line with
``"event": "start"`` when the process starts and one with ``"event": "handshake"``
for every ``initialize`` or ``server/discover`` request.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer

HANDSHAKES = frozenset({"initialize", "server/discover"})
"""The requests that open a session: the 2025-era handshake and the 2026-era discovery."""


def _append(path: str | None, event: str, **extra: Any) -> None:
    if not path:
        return
    line = json.dumps({"event": event, "pid": os.getpid(), "time": time.time(), **extra})
    with open(path, "a", encoding="utf-8") as file:  # one short append per line: atomic enough here
        file.write(line + "\n")


def _handshake_middleware(delay: float, events: str | None) -> ServerMiddleware[Any]:
    async def middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method in HANDSHAKES:
            _append(events, "handshake", method=ctx.method)
            if delay > 0:
                await anyio.sleep(delay)
        return await call_next(ctx)

    return middleware


def build_server(*, handshake_delay: float = 0.0, events: str | None = None) -> MCPServer:
    """The bench server: ``echo`` answers its text; ``meta`` answers the ``_meta`` keys it received."""
    server = MCPServer("bench", instructions="A trivial server for benchmarks.")
    server.middleware.append(_handshake_middleware(handshake_delay, events))

    @server.tool()
    async def echo(text: str) -> str:  # pyright: ignore[reportUnusedFunction]
        """Answer ``text``."""
        return text

    @server.tool()
    async def meta(ctx: Context) -> dict[str, Any]:  # pyright: ignore[reportUnusedFunction]
        """Answer the ``_meta`` this call carried (to check the run's identity arrives)."""
        return dict(ctx.request_context.meta or {})

    return server


def listening_socket() -> socket.socket:
    """A TCP socket listening on a free port of 127.0.0.1, with Nagle's algorithm off.

    The protocol must be given: asyncio sets ``TCP_NODELAY`` on accepted
    connections only when the listener's ``proto`` is ``IPPROTO_TCP``, and
    ``socket.create_server`` leaves it 0; without it, a response written in two
    parts waits ~40 ms for the client's delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    return sock


async def serve_http(server: MCPServer) -> None:
    """Serve streamable HTTP at ``/mcp`` on a free port, after printing ``PORT <n>`` on stdout."""
    import uvicorn  # only here: a stdio server should not pay for importing it

    sock = listening_socket()
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    # Idle connections are kept longer than any client keeps them (httpx: 5 s): a peer idle while
    # the others are timed must not send its next call on a connection the server is closing.
    config = uvicorn.Config(
        server.streamable_http_app(), log_level="warning", lifespan="on", timeout_keep_alive=60
    )
    await uvicorn.Server(config).serve(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    """Run the bench server."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--handshake-delay", type=float, default=0.0, help="seconds to delay the handshake")
    parser.add_argument("--events", help="append start and handshake events to this JSON-lines file")
    args = parser.parse_args(argv)
    _append(args.events, "start", transport="http" if args.http else "stdio")
    server = build_server(handshake_delay=args.handshake_delay, events=args.events)
    if args.http:
        anyio.run(serve_http, server)
    else:
        server.run()


if __name__ == "__main__":
    main()
