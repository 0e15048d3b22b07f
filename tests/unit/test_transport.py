"""`mcpbridge._transport`: a client for each kind of server, and a stdio server's stderr."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import mcp_types as types
import pytest
from mcp.server.mcpserver import MCPServer

from mcpbridge import MemoryServer
from mcpbridge._transport import StderrLog, open_client

pytestmark = pytest.mark.anyio


async def _ignore(params: types.LoggingMessageNotificationParams) -> None:
    pass


async def test_the_stderr_tail_outlives_its_file() -> None:
    log = StderrLog()
    assert await log.tail() == ""
    file = await log.open()
    file.write("line\n" * 1000 + "Traceback: the end\n")
    tail = await log.tail()
    assert tail.endswith("Traceback: the end") and len(tail) <= 2000
    await log.aclose()
    assert file.closed
    assert await log.tail() == tail  # kept for messages after the session's end
    await log.aclose()  # closing twice is harmless


async def test_the_stack_owns_the_client() -> None:
    server = MCPServer("demo")

    @server.tool()
    async def ping() -> str:
        """Answer pong."""
        return "pong"

    with anyio.fail_after(10):
        async with AsyncExitStack() as stack:
            client = await open_client(
                MemoryServer(name="demo", server=server),
                stack,
                stderr=StderrLog(),
                client_info=types.Implementation(name="test", version="0"),
                logging_callback=_ignore,
                log_level=None,
            )
            assert [t.name for t in (await client.list_tools()).tools] == ["ping"]
