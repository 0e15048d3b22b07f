"""`mcpbridge._transport`: a client for each kind of server, a stdio server's stderr, HTTP writes."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.client import streamable_http
from mcp.client.streamable_http import StreamableHTTPTransport
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage

from mcpbridge import MemoryServer
from mcpbridge._transport import StderrLog, _QuietWriteStream, open_client  # pyright: ignore[reportPrivateUsage]

pytestmark = pytest.mark.anyio

HTTP_CLIENT_LOGGER = "mcp.client.streamable_http"


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


# --- the streamable HTTP client's write stream -------------------------------------------------

SENT: list[Callable[[], types.JSONRPCMessage]] = [
    lambda: types.JSONRPCRequest(
        jsonrpc="2.0",
        id=7,
        method="tools/call",
        params={"name": "echo", "arguments": {"text": "hi"}, "_meta": {"dev.mcpbridge/thread_id": "t-1"}},
    ),
    lambda: types.JSONRPCNotification(jsonrpc="2.0", method="notifications/initialized"),
    lambda: types.JSONRPCResponse(jsonrpc="2.0", id=3, result={"action": "decline"}),
    lambda: types.JSONRPCError(jsonrpc="2.0", id=4, error=types.ErrorData(code=-32601, message="unknown")),
]
"""Each kind of message a client sends, made afresh for each test (sending changes its class)."""


def _wire(message: types.JSONRPCMessage) -> dict[str, Any]:
    """What the SDK's HTTP client sends of ``message``."""
    return message.model_dump(by_alias=True, mode="json", exclude_unset=True)


async def _through_quiet_stream(message: types.JSONRPCMessage) -> types.JSONRPCMessage:
    send, receive = anyio.create_memory_object_stream[SessionMessage](1)
    async with _QuietWriteStream(send) as stream, receive:
        await stream.send(SessionMessage(message))
        return receive.receive_nowait().message


@pytest.mark.parametrize("make", SENT, ids=["request", "notification", "response", "error"])
async def test_a_sent_message_prints_for_the_sdks_debug_log_only(
    make: Callable[[], types.JSONRPCMessage], caplog: pytest.LogCaptureFixture
) -> None:
    message = make()
    printed, shown, wire = str(message), repr(message), _wire(message)
    cls = type(message)
    caplog.set_level(logging.INFO, logger=HTTP_CLIENT_LOGGER)
    sent = await _through_quiet_stream(message)
    assert isinstance(sent, cls) and type(sent).__name__ == cls.__name__
    assert _wire(sent) == wire and repr(sent) == shown  # the same message on the wire and in reprs
    assert str(sent) == cls.__name__  # what the SDK's eager debug line makes, unwritten
    caplog.set_level(logging.DEBUG, logger=HTTP_CLIENT_LOGGER)
    assert str(sent) == printed  # written: in full, as without mcpbridge


async def test_the_stream_closes_the_transports_stream() -> None:
    send, receive = anyio.create_memory_object_stream[SessionMessage](1)
    async with receive:
        async with _QuietWriteStream(send):
            pass
        with pytest.raises(anyio.EndOfStream):
            receive.receive_nowait()


def test_the_sdks_http_client_formats_each_message_it_sends() -> None:
    """``_QuietWriteStream`` pays only while the SDK formats every message sent, DEBUG on or not.

    When this fails, the SDK formats lazily (or not at all): drop ``_QuietWriteStream``.
    """
    source = inspect.getsource(StreamableHTTPTransport.post_writer)
    assert 'logger.debug(f"Sending client message: {message}")' in source
    assert logging.getLogger(streamable_http.__name__).name == HTTP_CLIENT_LOGGER
