"""The agent MCP server: exposure warnings and in-memory clients (``mcpbridge.serving.server``)."""

from __future__ import annotations

import logging

import pytest
from mcp import Client

from mcpbridge.serving import AgentMCPServer

from ._serving import echo_graph, text

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("host", "warned"),
    [("0.0.0.0", True), ("10.1.2.3", True), ("example.com", True), ("::", True)]
    + [("127.0.0.1", False), ("127.0.0.2", False), ("::1", False), ("[::1]", False), ("localhost", False)],
)
def test_serving_without_auth_beyond_loopback_warns(
    host: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from mcpbridge.serving.server import _warn_when_exposed

    with caplog.at_level(logging.WARNING, logger="mcpbridge"):
        _warn_when_exposed(host, authenticated=False)
        _warn_when_exposed(host, authenticated=True)
    assert [r.getMessage() for r in caplog.records if "without auth" in r.getMessage()] == (
        [caplog.records[0].getMessage()] if warned else []
    )


async def test_an_in_memory_client_sees_tools_and_results() -> None:
    server = AgentMCPServer.from_graphs({"echo": echo_graph()})
    async with Client(server.lowlevel) as client:
        [tool] = (await client.list_tools()).tools
        result = await client.call_tool("echo", {"message": "hello"})
    assert tool.name == "echo" and "required" not in tool.input_schema  # not when resuming
    assert text(result) == "1 messages"
    assert (result.structured_content or {})["status"] == "success"


def test_local_graphs_give_the_sdk_their_header_schemas_and_remote_assistants_do_not() -> None:
    local = AgentMCPServer.from_graphs({"echo": echo_graph()})
    remote = AgentMCPServer.from_remote("http://127.0.0.1:1")
    # A remote caller may see other tools than another: the SDK lists them per call instead.
    assert local.lowlevel.get_tool_input_schema is not None
    assert remote.lowlevel.get_tool_input_schema is None
