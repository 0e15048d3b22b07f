"""`ServerConnection` on in-memory servers: connect, reconnect, close, and the states between."""

from __future__ import annotations

import logging
import math
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.client._memory import InMemoryTransport
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types.jsonrpc import HEADER_MISMATCH

from mcpbridge import MemoryServer, ToolCallError
from mcpbridge._connection import ServerConnection
from mcpbridge._failures import ConnectFailed
from mcpbridge._lifecycle import State

pytestmark = pytest.mark.anyio

_CLIENT = types.Implementation(name="test", version="0")


def echo_server() -> MCPServer:
    server = MCPServer("echo")

    @server.tool()
    async def echo(text: str) -> str:
        """Say it back."""
        return text

    return server


class Cuttable:
    """An in-memory transport the test can cut, as a server process dying, and hold or refuse at connect.

    Each entry opens a new in-memory session to the same server (so a reconnect is a new session).
    """

    def __init__(self, server: MCPServer) -> None:
        self.server = server
        self.opened = 0
        self.closed = 0
        self.refuse = False
        self.gate: anyio.Event | None = None  # set: connects wait for it
        self.connecting = anyio.Event()  # set when a connect starts
        self._stacks: list[AsyncExitStack] = []
        self._cut: anyio.CancelScope | None = None

    async def __aenter__(self) -> tuple[Any, Any]:
        self.connecting.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.refuse:
            raise ConnectionRefusedError("refused by the test")
        stack = AsyncExitStack()
        read, write = await stack.enter_async_context(InMemoryTransport(self.server))
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](math.inf)
        scope = anyio.CancelScope()

        async def forward() -> None:
            with scope:
                async with send:
                    async for item in read:
                        await send.send(item)

        group = await stack.enter_async_context(anyio.create_task_group())
        group.start_soon(forward)
        stack.callback(scope.cancel)  # runs before the task group waits for `forward`
        self._stacks.append(stack)
        self._cut = scope
        self.opened += 1
        return receive, write

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._stacks.pop().aclose()
        finally:
            self.closed += 1

    def cut(self) -> None:
        """End the session's stream: the client reads end-of-stream, as from a dead server."""
        assert self._cut is not None
        self._cut.cancel()


def connection(transport: Cuttable, **options: Any) -> ServerConnection:
    config = MemoryServer(name="echo", server=transport, **options)
    return ServerConnection(config, client_info=_CLIENT, log_level=None)


async def echo(conn: ServerConnection, text: str = "hi") -> str:
    result = await conn.call_tool("echo", {"text": text})
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def broken(conn: ServerConnection, transport: Cuttable) -> None:
    """Cut the session; the call that finds it dead says so and leaves the connection broken."""
    transport.cut()
    with pytest.raises(ToolCallError, match="closed the connection|failed during tool"):
        await echo(conn)
    assert conn.state in (State.BROKEN, State.FAILED)
    assert conn.failure is not None and not conn.alive


async def test_connect_lists_the_tools_and_close_ends_the_task() -> None:
    transport = Cuttable(echo_server())
    conn = connection(transport)
    assert conn.state is State.IDLE
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            await group.start(conn.run)
            assert conn.state is State.READY and conn.alive
            assert [t.tool.name for t in conn.tools] == ["echo"]
            assert await echo(conn, "hello") == "hello"
            conn.close()
            assert conn.state is State.CLOSED and not conn.alive
    assert transport.opened == 1
    with pytest.raises(ToolCallError, match="'echo' is not connected$"):
        await echo(conn)


async def test_the_owners_cancellation_ends_a_ready_session() -> None:
    # A ready session's scope is shielded; the owner's cancellation reaches it all the same.
    transport = Cuttable(echo_server())
    conn = connection(transport)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            await group.start(conn.run)
            assert await echo(conn) == "hi"
            group.cancel_scope.cancel()
            await anyio.sleep_forever()
    assert group.cancel_scope.cancelled_caught
    assert conn.state is State.CLOSED
    assert (transport.opened, transport.closed) == (1, 1)


async def test_a_dead_session_reconnects_on_the_next_call() -> None:
    transport = Cuttable(echo_server())
    conn = connection(transport, reconnect=1)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            await group.start(conn.run)
            await broken(conn, transport)
            assert conn.state is State.BROKEN
            assert await echo(conn, "again") == "again"  # a new session answered
            assert transport.opened == 2 and conn.state is State.READY and conn.failure is None

            # The one reconnect is spent: the next death is final, and calls say why.
            await broken(conn, transport)
            assert conn.state is State.FAILED
            with pytest.raises(ToolCallError, match="not connected: MCP server 'echo' closed the connection"):
                await echo(conn)
            assert transport.opened == 2

            conn.renew()  # a pooled session's new run gets the budget back, but a failed one stays failed
            assert conn.state is State.FAILED
            conn.close()
    assert conn.state is State.CLOSED


async def test_callers_during_a_reconnect_share_it() -> None:
    transport = Cuttable(echo_server())
    conn = connection(transport, reconnect=1)
    answers: list[str] = []

    async def call(n: int) -> None:
        answers.append(await echo(conn, f"call {n}"))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            await group.start(conn.run)
            await broken(conn, transport)
            transport.gate, transport.connecting = anyio.Event(), anyio.Event()
            async with anyio.create_task_group() as callers:
                for n in range(5):
                    callers.start_soon(call, n)
                await transport.connecting.wait()
                assert conn.state is State.RECONNECTING
                transport.gate.set()
            conn.close()
    assert sorted(answers) == [f"call {n}" for n in range(5)]
    assert transport.opened == 2  # one reconnect for the five


async def test_a_failed_reconnect_is_a_clear_error() -> None:
    transport = Cuttable(echo_server())
    conn = connection(transport, reconnect=2)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            await group.start(conn.run)
            await broken(conn, transport)
            transport.refuse = True
            with pytest.raises(ToolCallError) as caught:
                await echo(conn)
            assert str(caught.value) == (
                "MCP server 'echo' is not connected: "
                "in-process server: ConnectionRefusedError: refused by the test"
            )
            assert conn.state is State.BROKEN  # one reconnect left: the next call tries again
            transport.refuse = False
            assert await echo(conn) == "hi"
            conn.close()
    assert transport.opened == 2


async def test_close_during_the_first_connect_cancels_it() -> None:
    transport = Cuttable(echo_server())
    transport.gate = anyio.Event()  # never set: the connect would wait forever
    conn = connection(transport, connect_timeout=60)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:

            async def start() -> None:
                with pytest.raises(ConnectFailed, match="closed while it connected"):
                    await group.start(conn.run)

            group.start_soon(start)
            await transport.connecting.wait()
            assert conn.state is State.CONNECTING
            conn.close()
    assert conn.state is State.CLOSED and transport.opened == 0


async def test_close_before_run_refuses_to_connect() -> None:
    conn = connection(Cuttable(echo_server()))
    conn.close()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            with pytest.raises(ConnectFailed, match="closed before it connected"):
                await group.start(conn.run)


async def test_close_during_a_reconnect_ends_it_and_its_waiting_callers() -> None:
    transport = Cuttable(echo_server())
    conn = connection(transport, reconnect=1, connect_timeout=60)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            await group.start(conn.run)
            await broken(conn, transport)
            transport.gate, transport.connecting = anyio.Event(), anyio.Event()
            async with anyio.create_task_group() as callers:

                async def call() -> None:
                    with pytest.raises(ToolCallError, match="is not connected"):
                        await echo(conn)

                callers.start_soon(call)
                await transport.connecting.wait()
                assert conn.state is State.RECONNECTING
                conn.close()  # the waiting call and the run end at once, not after connect_timeout
    assert conn.state is State.CLOSED and transport.opened == 1


async def test_every_state_change_is_logged_in_order(caplog: pytest.LogCaptureFixture) -> None:
    transport = Cuttable(echo_server())
    conn = connection(transport, reconnect=1)
    with caplog.at_level(logging.DEBUG, logger="mcpbridge"), anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            await group.start(conn.run)
            await broken(conn, transport)
            await echo(conn)
            conn.close()
    moves = [r.getMessage().split(": ", 1)[1] for r in caplog.records if " -> " in r.getMessage()]
    assert moves == [
        "IDLE -> CONNECTING",
        "CONNECTING -> READY",
        "READY -> BROKEN",
        "BROKEN -> RECONNECTING",
        "RECONNECTING -> READY",
        "READY -> CLOSED",
    ]


@pytest.mark.parametrize("code", [HEADER_MISMATCH, types.INVALID_PARAMS])
async def test_an_input_round_resends_once_after_a_header_mismatch(code: int) -> None:
    """A 2026-era ``HEADER_MISMATCH`` (a stale listed schema) is relisted and resent once, as the SDK does."""
    server = MCPServer("stale")
    calls: list[str] = []

    @server.tool()
    async def stale(text: str) -> str:
        """Fails its first call as the server's mismatch check would."""
        calls.append(text)
        if len(calls) == 1:
            raise MCPError(code=code, message="the listed schema is stale")
        return text

    conn = ServerConnection(MemoryServer(name="stale", server=server), client_info=_CLIENT, log_level=None)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            await group.start(conn.run)
            if code == HEADER_MISMATCH:
                result = await conn.call_tool("stale", {"text": "hi"}, input_round=(None, None))
                assert isinstance(result, types.CallToolResult) and calls == ["hi", "hi"]
            else:  # any other error is the call's answer: no resend
                with pytest.raises(ToolCallError):
                    await conn.call_tool("stale", {"text": "hi"}, input_round=(None, None))
                assert calls == ["hi"]
            conn.close()
