"""A server cannot exhaust the bridge's memory with one huge answer: responses are capped before parsing.

The hostile example server answers ``huge(megabytes=20)`` with about 40 MB of JSON
(text and structured content), as one JSON body (``--json``) or as one server-sent
event. With ``max_response_bytes`` at 1 MiB the model gets a tool error naming the
server and the cap, the answer is dropped unread, and the next call on the same
session works. Control: with the default cap (64 MiB) the same answer arrives.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.messages import ToolMessage

from mcpbridge import Bridge, HttpServer
from mcpbridge.tools import MCPTool
from tests.integration.support import HttpServerProcess, start_http_server

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CAP = 1024 * 1024
CALL_TIMEOUT = 60.0


@pytest.fixture(params=["json", "events"])
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HttpServerProcess]:
    """The hostile example server over streamable HTTP, answering with JSON bodies or event streams."""
    server = start_http_server("hostile", tmp_path, args=["--json"] if request.param == "json" else [])
    yield server
    server.stop()


async def call(tool: MCPTool, arguments: dict[str, Any]) -> ToolMessage:
    config: dict[str, Any] = {"configurable": {"thread_id": str(uuid.uuid4())}}
    message_call = {"name": tool.name, "args": arguments, "id": str(uuid.uuid4()), "type": "tool_call"}
    with anyio.fail_after(CALL_TIMEOUT):
        message = await tool.ainvoke(message_call, config)  # pyright: ignore[reportArgumentType]
    assert isinstance(message, ToolMessage)
    return message


async def test_an_answer_past_the_cap_fails_its_call_and_the_session_goes_on(
    hostile: HttpServerProcess,
) -> None:
    records = hostile.records.view()
    server = HttpServer(name="hostile", url=hostile.url, max_response_bytes=CAP, call_timeout=CALL_TIMEOUT)
    async with Bridge([server]) as bridge:
        tools = {tool.mcp_name: tool for tool in bridge.tools}
        huge = await call(tools["huge"], {"megabytes": 20})
        assert huge.status == "error"
        assert (
            f"MCP server 'hostile' answered tool 'huge' with more than max_response_bytes={CAP:,} bytes"
            in str(huge.content)
        )
        assert len(str(huge.content)) < 1000  # none of the answer
        assert records.entries(tool="huge")  # the server did answer: the bridge dropped it
        after = await call(tools["add"], {"a": "still ", "b": "here"})
        assert after.status == "success", after.content
        assert "still here" in str(after.content)
        assert bridge.connected == ["hostile"]


async def test_control_the_same_answer_arrives_under_the_default_cap(hostile: HttpServerProcess) -> None:
    server = HttpServer(name="hostile", url=hostile.url, call_timeout=CALL_TIMEOUT, max_result_chars=100)
    async with Bridge([server]) as bridge:
        tools = {tool.mcp_name: tool for tool in bridge.tools}
        huge = await call(tools["huge"], {"megabytes": 20})
        assert huge.status == "success", str(huge.content)[:500]
