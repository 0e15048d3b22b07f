"""Listing a server's tools: every page, the cap, the filters, the schemas and descriptions."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.server.lowlevel import Server

import mcpbridge._connection as connection_module
from mcpbridge import Bridge, ConnectError, MemoryServer, parse_servers

from ._helpers import LowLevel, Protocol, call, entry_error, server_with, tool, tools_by_name


@pytest.mark.anyio
async def test_all_tool_pages_are_listed(protocol: Protocol) -> None:
    pages = {None: ("p1", ["t1", "t2"]), "p1": ("p2", ["t3"]), "p2": (None, ["t4"])}

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        cursor = params.cursor if params else None
        next_cursor, names = pages[cursor]
        return types.ListToolsResult(tools=[tool(n) for n in names], next_cursor=next_cursor)

    server = Server("paged", on_list_tools=list_tools)
    async with Bridge([MemoryServer(name="paged", server=server, protocol=protocol)]) as bridge:
        assert [t.name for t in bridge.tools] == ["t1", "t2", "t3", "t4"]


@pytest.mark.anyio
async def test_a_repeated_cursor_stops_listing(caplog: pytest.LogCaptureFixture) -> None:
    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        n = 0 if params is None or params.cursor is None else int(params.cursor)
        return types.ListToolsResult(tools=[tool(f"t{n}")], next_cursor=str(min(n + 1, 2)))

    server = Server("loop", on_list_tools=list_tools)
    with caplog.at_level(logging.WARNING, logger="mcpbridge"):
        with anyio.fail_after(10):
            async with Bridge([MemoryServer(name="loop", server=server)]) as bridge:
                assert [t.name for t in bridge.tools] == ["t0", "t1", "t2"]
    assert "repeated a tools/list cursor" in caplog.text


@pytest.mark.anyio
async def test_include_exclude_and_prefix() -> None:
    server = server_with("read_file", "read_secret", "write_file", "delete")
    config = MemoryServer(
        name="fs",
        server=server,
        include_tools=("read_*", "write_*"),
        exclude_tools=("*secret*",),
        prefix="fs",
    )
    async with Bridge([config]) as bridge:
        tools = tools_by_name(bridge)
        assert sorted(tools) == ["fs_read_file", "fs_write_file"]
        assert tools["fs_read_file"].metadata == {"mcp_server": "fs", "mcp_tool": "read_file"}
        message = await call(tools["fs_write_file"], {"text": "x"})
    assert message.content == [{"type": "text", "text": "write_file:x"}]


@pytest.mark.anyio
async def test_invalid_schema_tool_is_skipped_while_others_load(
    caplog: pytest.LogCaptureFixture, protocol: Protocol
) -> None:
    lowlevel = LowLevel(
        [
            tool("broken", {"type": "object", "properties": {"x": {"type": "nonsense"}}}),
            tool("negative_length", {"type": "object", "properties": {"x": {"minLength": -1}}}),
            tool("fine", {"type": "object", "properties": {"x": {"type": "string"}}}),
        ]
    )
    with caplog.at_level(logging.WARNING, logger="mcpbridge"):
        async with Bridge([MemoryServer(name="low", server=lowlevel.server(), protocol=protocol)]) as bridge:
            assert [t.name for t in bridge.tools] == ["fine"]
            assert (await call(bridge.tools[0], {"x": "1"})).status == "success"
    assert "skipping tool 'broken' of MCP server 'low'" in caplog.text
    assert "skipping tool 'negative_length' of MCP server 'low'" in caplog.text


@pytest.mark.anyio
async def test_long_descriptions_are_cut_with_a_note(caplog: pytest.LogCaptureFixture) -> None:
    long = "Find things. " + "x" * 100_000
    lowlevel = LowLevel([tool("wordy", description=long), tool("terse", description="Short.")])
    server = MemoryServer(name="low", server=lowlevel.server(), max_description_chars=2_000)
    with caplog.at_level(logging.WARNING, logger="mcpbridge"):
        async with Bridge([server]) as bridge:
            tools = tools_by_name(bridge)
            assert (await call(tools["wordy"], {})).status == "success"
    wordy = tools["wordy"].description
    assert wordy.startswith("Find things. xxx")
    assert wordy.endswith("[Description cut: 2,000 of 100,013 characters shown.]")
    assert len(wordy) < 2_100
    assert tools["terse"].description == "Short."
    assert "cutting the description of tool 'wordy' of MCP server 'low' from 100013 to 2000" in caplog.text


def test_the_description_limit_has_a_default_and_a_config_key() -> None:
    assert MemoryServer(name="m", server=server_with("a")).max_description_chars == 10_000
    [server] = parse_servers(
        {"mcpServers": {"s": {"url": "https://example.com/mcp", "maxDescriptionChars": 500}}}
    )
    assert server.max_description_chars == 500


def paged_server(count: int, page: int, listed: list[str | None]) -> Server:
    """A server offering ``count`` tools, ``page`` at a time; ``listed`` records the cursors asked for."""

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        start = int(params.cursor) if params is not None and params.cursor else 0
        listed.append(params.cursor if params is not None else None)
        end = min(start + page, count)
        return types.ListToolsResult(
            tools=[tool(f"t{i}") for i in range(start, end)], next_cursor=str(end) if end < count else None
        )

    return Server("many", on_list_tools=list_tools)


@pytest.mark.anyio
async def test_a_server_offering_more_than_max_tools_is_not_connected(protocol: Protocol) -> None:
    listed: list[str | None] = []
    server = MemoryServer(
        name="many", server=paged_server(10_000, 30, listed), protocol=protocol, max_tools=50
    )
    with anyio.fail_after(10):
        error = await entry_error(Bridge([server]))
    assert isinstance(error, ConnectError)
    assert "offers more than max_tools=50 tools" in str(error)
    assert listed == [None, "30"]  # listing stopped at the page that passed the cap

    optional = server.model_copy(update={"required": False})
    async with Bridge([optional]) as bridge:
        assert bridge.tools == []
        assert "max_tools=50" in bridge.failures["many"].reason

    # Control: with room for them, every tool is listed.
    async with Bridge([MemoryServer(name="few", server=paged_server(100, 30, []), max_tools=100)]) as bridge:
        assert len(bridge.tools) == 100


@pytest.mark.anyio
async def test_connect_timeout_covers_preparing_the_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    hold = anyio.Event()

    async def slow_prepare(config: Any, tools: list[types.Tool]) -> list[Any]:
        await hold.wait()  # a catalogue that takes forever to prepare
        return []

    monkeypatch.setattr(connection_module, "prepare_tools", slow_prepare)
    server = MemoryServer(name="few", server=paged_server(3, 3, []), connect_timeout=0.2)
    with anyio.fail_after(10):
        error = await entry_error(Bridge([server]))
    assert isinstance(error, ConnectError)
    assert "connect_timeout=0.2s" in str(error)
