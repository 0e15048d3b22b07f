from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from pydantic import SecretStr

from mcpbridge import (
    Bridge,
    ConfigError,
    ConnectError,
    HttpServer,
    MemoryServer,
    ServerFailure,
    SseServer,
    StdioServer,
    ToolNameConflictError,
    parse_servers,
)

from ._helpers import LowLevel, Protocol, call, entry_error, tool, tools_by_name

PROVIDER_SAFE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def server_with(*names: str, lifespan: Lifespan | None = None) -> MCPServer:
    server = MCPServer("test", lifespan=lifespan)
    for name in names:
        server.add_tool(echo_as(name), name=name, description=f"The {name} tool.")
    return server


def echo_as(name: str) -> Callable[..., str]:
    def fn(text: str = "") -> str:
        return f"{name}:{text}"

    return fn


def exploding(message: str) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncGenerator[None, None]:
        raise RuntimeError(message)
        yield

    return lifespan


def hanging() -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncGenerator[None, None]:
        await anyio.sleep_forever()
        yield

    return lifespan


# --- connecting -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_tools_of_all_servers(protocol: Protocol) -> None:
    servers = [
        MemoryServer(name="one", server=server_with("read", "write"), protocol=protocol),
        MemoryServer(name="two", server=server_with("search"), protocol=protocol),
    ]
    async with Bridge(servers) as bridge:
        assert sorted(t.name for t in bridge.tools) == ["read", "search", "write"]
        assert bridge.failures == {}
        assert list(bridge.connected) == ["one", "two"]
        expected = "2026-07-28" if protocol == "auto" else "2025-11-25"
        assert bridge.protocol_version("one") == bridge.protocol_version("two") == expected
        message = await call(tools_by_name(bridge)["search"], {"text": "q"})
    assert message.content == [{"type": "text", "text": "search:q"}]


@pytest.mark.anyio
async def test_servers_connect_concurrently(protocol: Protocol) -> None:
    # Each server's startup waits for the other's to have begun: a sequential Bridge would time out.
    started = {"a": anyio.Event(), "b": anyio.Event()}

    def rendezvous(mine: str, other: str) -> Lifespan:
        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncGenerator[None, None]:
            started[mine].set()
            with anyio.fail_after(5):
                await started[other].wait()
            yield

        return lifespan

    servers = [
        MemoryServer(name="a", server=server_with("ta", lifespan=rendezvous("a", "b")), protocol=protocol),
        MemoryServer(name="b", server=server_with("tb", lifespan=rendezvous("b", "a")), protocol=protocol),
    ]
    async with Bridge(servers) as bridge:
        assert bridge.failures == {}
        assert sorted(t.name for t in bridge.tools) == ["ta", "tb"]


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


# --- names ----------------------------------------------------------------------------------------


HOSTILE = ["search", "read file", "café ☕", "日本語", "x" * 200, "x" * 199 + "y", "a/b:c", "a_b_c"]


@pytest.mark.anyio
async def test_hostile_names_from_two_servers_become_valid_unique_callable_tools(protocol: Protocol) -> None:
    one, two = LowLevel([tool(n) for n in HOSTILE]), LowLevel([tool(n) for n in HOSTILE])
    servers = [
        MemoryServer(name="one", server=one.server(), protocol=protocol),
        MemoryServer(name="two", server=two.server(), protocol=protocol),
    ]
    async with Bridge(servers) as bridge:
        tools = bridge.tools
        names = [t.name for t in tools]
        assert len(tools) == 2 * len(HOSTILE)
        assert len(set(names)) == len(names)
        assert all(PROVIDER_SAFE.match(n) for n in names), names
        for t in tools:
            assert (await call(t, {})).status == "success"
    received = [("one", c.name) for c in one.calls] + [("two", c.name) for c in two.calls]
    assert sorted(received) == sorted((s, n) for s in ("one", "two") for n in HOSTILE)


@pytest.mark.anyio
async def test_name_conflict_policy_error() -> None:
    servers = [
        MemoryServer(name="one", server=server_with("search")),
        MemoryServer(name="two", server=server_with("search")),
    ]
    err = await entry_error(Bridge(servers, on_name_conflict="error"))
    assert isinstance(err, ToolNameConflictError)
    assert "'one'" in str(err)
    assert "'two'" in str(err)


@pytest.mark.anyio
async def test_name_conflict_policy_prefix() -> None:
    servers = [
        MemoryServer(name="one", server=server_with("search")),
        MemoryServer(name="two", server=server_with("search")),
    ]
    async with Bridge(servers) as bridge:
        tools = tools_by_name(bridge)
        assert sorted(tools) == ["one_search", "two_search"]
        assert (await call(tools["two_search"], {"text": "q"})).content == [
            {"type": "text", "text": "search:q"}
        ]


async def names_when(servers: list[MemoryServer], **options: Any) -> dict[str, tuple[str, str]]:
    async with Bridge(servers, **options) as bridge:
        return {t.name: (t.server, t.mcp_name) for t in bridge.tools}


def maybe_down(name: str, *tools: str, up: bool, **options: Any) -> MemoryServer:
    lifespan = None if up else exploding("down")
    return MemoryServer(name=name, server=server_with(*tools, lifespan=lifespan), required=False, **options)


@pytest.mark.anyio
async def test_names_do_not_depend_on_which_optional_servers_connect() -> None:
    for up in (True, False):
        fa = MemoryServer(name="fa", server=server_with("dup", "a"))
        names = await names_when([fa, maybe_down("fb", "dup", "b", up=up)])
        assert names["dup"] == ("fa", "dup")
        assert names["a"] == ("fa", "a")
        if up:
            assert names["fb_dup"] == ("fb", "dup")
            assert names["fb_b"] == ("fb", "b")
        assert len(names) == (4 if up else 2)


@pytest.mark.anyio
async def test_two_optional_servers_keep_their_prefixes_when_one_is_down() -> None:
    for fa_up, fb_up in ((True, True), (True, False), (False, True)):
        names = await names_when([maybe_down("fa", "dup", up=fa_up), maybe_down("fb", "dup", up=fb_up)])
        expected = {"fa_dup": ("fa", "dup")} if fa_up else {}
        expected |= {"fb_dup": ("fb", "dup")} if fb_up else {}
        assert names == expected


@pytest.mark.anyio
async def test_an_optional_server_alone_or_with_its_own_prefix_keeps_its_names() -> None:
    assert await names_when([maybe_down("fa", "dup", up=True)]) == {"dup": ("fa", "dup")}
    fa = MemoryServer(name="fa", server=server_with("dup"))
    names = await names_when([fa, maybe_down("fb", "dup", up=True, prefix="tix")])
    assert names == {"dup": ("fa", "dup"), "tix_dup": ("fb", "dup")}


@pytest.mark.anyio
async def test_an_optional_servers_tools_yield_to_the_required_ones(caplog: pytest.LogCaptureFixture) -> None:
    # A required server's 'fb_dup' keeps its name whether fb is up or not; fb's 'dup' is renamed once more.
    for up in (True, False):
        fa = MemoryServer(name="fa", server=server_with("fb_dup", "fb_fb_dup"))
        with caplog.at_level(logging.WARNING, logger="mcpbridge"):
            names = await names_when([fa, maybe_down("fb", "dup", up=up)], on_name_conflict="error")
        assert names == {"fb_dup": ("fa", "fb_dup"), "fb_fb_dup": ("fa", "fb_fb_dup")}
    assert "dropping tool 'dup' of optional MCP server 'fb'" in caplog.text


@pytest.mark.anyio
async def test_guests_yield_and_are_named_among_themselves_whatever_connects() -> None:
    for up in (True, False):
        deployment = MemoryServer(name="local", server=server_with("dup", "x"))
        # One guest keeps its names, but those the deployment's servers hold.
        alone = [deployment, maybe_down("opt", "dup", up=up), maybe_down("mine", "dup", "y", up=True)]
        names = await names_when(alone, guests=["mine"])
        assert names["dup"] == ("local", "dup")
        assert names["mine_dup"] == ("mine", "dup")
        assert names["y"] == ("mine", "y")
        assert ("opt_dup" in names) is up
        # Several guests carry their prefixes, whether the other guest is up or not.
        several = [deployment, maybe_down("mine", "dup", "y", up=True), maybe_down("theirs", "y", up=up)]
        names = await names_when(several, guests=["mine", "theirs"])
        assert names["dup"] == ("local", "dup")
        assert names["x"] == ("local", "x")
        assert names["mine_dup"] == ("mine", "dup")
        assert names["mine_y"] == ("mine", "y")
        assert ("theirs_y" in names) is up
        assert len(names) == (5 if up else 4)


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


# --- failures -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_required_failure_raises_connect_error_naming_the_server(protocol: Protocol) -> None:
    servers = [
        MemoryServer(name="good", server=server_with("t"), protocol=protocol),
        MemoryServer(
            name="broken", server=server_with("u", lifespan=exploding("disk on fire")), protocol=protocol
        ),
    ]
    err = await entry_error(Bridge(servers))
    assert isinstance(err, ConnectError)
    assert err.server == "broken"
    assert set(err.failures) == {"broken"}
    assert err.failures["broken"].required
    assert "broken" in str(err)
    assert "disk on fire" in str(err)
    assert "required=False" in str(err)


@pytest.mark.anyio
async def test_connect_error_lists_every_required_failure_and_keeps_optional_ones() -> None:
    servers = [
        MemoryServer(name="r1", server=server_with("t", lifespan=exploding("first"))),
        MemoryServer(name="opt", server=server_with("t", lifespan=exploding("optional")), required=False),
        MemoryServer(name="r2", server=server_with("t", lifespan=exploding("second"))),
    ]
    err = await entry_error(Bridge(servers))
    assert isinstance(err, ConnectError)
    assert list(err.failures) == ["r1", "opt", "r2"]
    assert "2 required MCP servers" in str(err)
    assert "r1" in str(err)
    assert "r2" in str(err)
    assert "optional" not in str(err)


@pytest.mark.anyio
async def test_optional_failure_is_recorded_and_the_rest_works(
    caplog: pytest.LogCaptureFixture, protocol: Protocol
) -> None:
    servers = [
        MemoryServer(name="flaky", server=server_with("x", lifespan=exploding("nope")), required=False),
        MemoryServer(name="good", server=server_with("t"), protocol=protocol),
    ]
    with caplog.at_level(logging.WARNING, logger="mcpbridge"):
        async with Bridge(servers) as bridge:
            assert [t.name for t in bridge.tools] == ["t"]
            assert list(bridge.connected) == ["good"]
            assert bridge.failures == {
                "flaky": ServerFailure(server="flaky", reason=bridge.failures["flaky"].reason, required=False)
            }
            assert "nope" in bridge.failures["flaky"].reason
            assert (await call(bridge.tools[0], {"text": "hi"})).content == [{"type": "text", "text": "t:hi"}]
    assert "skipping optional MCP server 'flaky'" in caplog.text


@pytest.mark.anyio
async def test_connect_timeout(protocol: Protocol) -> None:
    servers = [
        MemoryServer(
            name="stuck", server=server_with("t", lifespan=hanging()), connect_timeout=0.2, required=False
        ),
        MemoryServer(name="good", server=server_with("u"), protocol=protocol),
    ]
    with anyio.fail_after(10):
        async with Bridge(servers) as bridge:
            assert "connect_timeout=0.2s" in bridge.failures["stuck"].reason
            assert [t.name for t in bridge.tools] == ["u"]


@pytest.mark.anyio
async def test_unreachable_servers_are_described_without_secrets() -> None:
    secrets = ("PWSECRET", "QSECRET", "BSECRET", "HSECRET", "ESECRET")
    servers = [
        HttpServer(
            name="web",
            url="http://user:PWSECRET@127.0.0.1:1/mcp?token=QSECRET",
            bearer_token=SecretStr("BSECRET"),
            headers={"X-Key": "HSECRET"},
            required=False,
        ),
        SseServer(name="sse", url="http://127.0.0.1:1/sse?token=QSECRET", headers={"X-Key": "HSECRET"}),
        StdioServer(
            name="cli", command="/nonexistent/mcpbridge-test-cmd", env={"K": "ESECRET"}, required=False
        ),
    ]
    with anyio.fail_after(20):
        err = await entry_error(Bridge(servers))
    assert isinstance(err, ConnectError)
    assert list(err.failures) == ["web", "sse", "cli"]
    assert "cannot reach http://127.0.0.1:1/mcp" in err.failures["web"].reason
    assert "cannot reach http://127.0.0.1:1/sse" in err.failures["sse"].reason
    assert "was not found" in err.failures["cli"].reason
    for text in [str(err), repr(err), *(f.reason for f in err.failures.values())]:
        for secret in secrets:
            assert secret not in text


@pytest.mark.anyio
@pytest.mark.parametrize("case", ["connect", "conflict"])
async def test_entry_errors_are_not_wrapped_in_exception_groups(case: str) -> None:
    if case == "connect":
        servers = [MemoryServer(name="broken", server=server_with("t", lifespan=exploding("x")))]
        expected: type[Exception] = ConnectError
    else:
        servers = [MemoryServer(name=n, server=server_with("search")) for n in ("one", "two")]
        expected = ToolNameConflictError
    with pytest.raises(expected):
        async with Bridge(servers, on_name_conflict="error"):
            pass


# --- lifecycle ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_exit_closes_every_server(protocol: Protocol) -> None:
    events: list[str] = []

    def tracked(name: str) -> Lifespan:
        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncGenerator[None, None]:
            events.append(f"open {name}")
            try:
                yield
            finally:
                events.append(f"close {name}")

        return lifespan

    servers = [
        MemoryServer(name=n, server=server_with(f"t{n}", lifespan=tracked(n)), protocol=protocol)
        for n in "ab"
    ]
    with anyio.fail_after(10):
        async with Bridge(servers):
            assert sorted(events) == ["open a", "open b"]
    assert sorted(events) == ["close a", "close b", "open a", "open b"]


@pytest.mark.anyio
async def test_failed_entry_closes_the_servers_that_connected() -> None:
    closed = anyio.Event()

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            closed.set()

    servers = [
        MemoryServer(name="good", server=server_with("t", lifespan=lifespan)),
        MemoryServer(name="broken", server=server_with("u", lifespan=exploding("x"))),
    ]
    with anyio.fail_after(10):
        assert isinstance(await entry_error(Bridge(servers)), ConnectError)
    assert closed.is_set()


@pytest.mark.anyio
async def test_an_error_in_the_body_propagates_unchanged(protocol: Protocol) -> None:
    with pytest.raises(KeyError):
        async with Bridge([MemoryServer(name="m", server=server_with("t"), protocol=protocol)]):
            raise KeyError("from the body")


@pytest.mark.anyio
async def test_cancelling_the_body_closes_the_bridge(protocol: Protocol) -> None:
    closed = anyio.Event()

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            closed.set()

    with anyio.fail_after(10):
        with anyio.CancelScope() as scope:
            async with Bridge(
                [MemoryServer(name="m", server=server_with("t", lifespan=lifespan), protocol=protocol)]
            ):
                scope.cancel()
                await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert closed.is_set()


@pytest.mark.anyio
async def test_a_bridge_is_entered_once() -> None:
    bridge = Bridge([MemoryServer(name="m", server=server_with("t"))])
    async with bridge:
        with pytest.raises(RuntimeError, match="entered only once"):
            await bridge.__aenter__()
    with pytest.raises(RuntimeError, match="entered only once"):
        async with bridge:
            pass


@pytest.mark.anyio
async def test_tools_only_while_open() -> None:
    bridge = Bridge([MemoryServer(name="m", server=server_with("t"))])
    with pytest.raises(RuntimeError, match="not open"):
        _ = bridge.tools
    async with bridge:
        assert len(bridge.tools) == 1
    with pytest.raises(RuntimeError, match="not open"):
        _ = bridge.tools


@pytest.mark.anyio
async def test_tools_returns_a_copy() -> None:
    async with Bridge([MemoryServer(name="m", server=server_with("t"))]) as bridge:
        bridge.tools.clear()
        assert len(bridge.tools) == 1


def test_duplicate_server_names_are_refused_before_connecting() -> None:
    with pytest.raises(ConfigError, match="'m' is used twice"):
        Bridge(
            [MemoryServer(name="m", server=server_with("t")), MemoryServer(name="m", server=server_with("u"))]
        )


# --- bounds -------------------------------------------------------------------------------------------


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
    import mcpbridge._connection as connection_module

    hold = anyio.Event()

    async def slow_prepare(self: Any, tools: list[types.Tool]) -> list[Any]:
        await hold.wait()  # a catalogue that takes forever to prepare
        return []

    monkeypatch.setattr(connection_module.ServerConnection, "_prepare", slow_prepare)
    server = MemoryServer(name="few", server=paged_server(3, 3, []), connect_timeout=0.2)
    with anyio.fail_after(10):
        error = await entry_error(Bridge([server]))
    assert isinstance(error, ConnectError)
    assert "connect_timeout=0.2s" in str(error)


def log_connection(**options: Any) -> Any:
    from mcpbridge._connection import ServerConnection

    config = MemoryServer(name="chatty", server=None, **options)
    return ServerConnection(config, client_info=types.Implementation(name="t", version="0"), log_level="info")


def log_params(
    level: types.LoggingLevel, data: Any, logger: str | None = None
) -> types.LoggingMessageNotificationParams:
    return types.LoggingMessageNotificationParams(level=level, data=data, logger=logger)


@pytest.mark.anyio
async def test_server_log_text_cannot_forge_lines_or_raise_alarms(caplog: pytest.LogCaptureFixture) -> None:
    connection = log_connection()
    forged = "done\n2026-01-01 CRITICAL mcpbridge: admin password reset\x1b[2J\u2028end"
    with caplog.at_level(logging.DEBUG, logger="mcpbridge.server.chatty"):
        await connection._on_log(log_params("emergency", forged, logger="evil\nlogger"))
        await connection._on_log(log_params("debug", "below the level asked for"))
        await connection._on_log(log_params("info", "x" * 10_000))
        await connection._on_log(log_params("error", {"nested": "a\nb"}))
    [forgery, long, nested] = caplog.records
    assert "\n" not in forgery.getMessage() and "\x1b" not in forgery.getMessage()
    assert forgery.getMessage() == (
        "[evil\\nlogger] done\\n2026-01-01 CRITICAL mcpbridge: admin password reset\\x1b[2J\\u2028end"
    )
    assert forgery.levelno == logging.WARNING  # capped at max_log_level
    assert long.getMessage() == "x" * 2000 + " [cut: 2,000 of 10,000 characters shown]"
    assert nested.levelno == logging.WARNING and nested.getMessage() == '{"nested": "a\\nb"}'

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="mcpbridge.server.chatty"):
        await connection._on_log(log_params("info", "fetched https://u:p@api.example.com/v1?token=s3cr3t#f"))
    [redacted] = caplog.records
    assert redacted.getMessage() == "fetched https://api.example.com/v1"  # like every logged URL

    permissive = log_connection(max_log_level="emergency")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="mcpbridge.server.chatty"):
        await permissive._on_log(log_params("emergency", "real emergency"))
    assert [r.levelno for r in caplog.records] == [logging.CRITICAL]


@pytest.mark.anyio
async def test_a_server_log_flood_is_bounded_and_the_drops_are_counted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types as pytypes

    import mcpbridge._connection as connection_module

    clock = pytypes.SimpleNamespace(now=1000.0)
    monkeypatch.setattr(connection_module, "time", pytypes.SimpleNamespace(monotonic=lambda: clock.now))
    connection = log_connection()
    with caplog.at_level(logging.DEBUG, logger="mcpbridge.server.chatty"):
        for n in range(10_000):  # all at once: the burst passes, the rest is dropped
            await connection._on_log(log_params("warning", f"message {n}"))
        clock.now += 1.0  # a second later, the steady rate admits 10 more
        for n in range(10_000, 10_020):
            await connection._on_log(log_params("warning", f"message {n}"))
        connection._report_dropped_logs()  # as the session's end does
    messages = [r.getMessage() for r in caplog.records]
    logged = [int(m.split()[1]) for m in messages if m.startswith("message ")]
    burst = connection_module.LOG_BURST
    assert logged == [*range(burst), *range(10_000, 10_000 + int(connection_module.LOG_PER_SECOND))]
    summaries = [m for m in messages if m.startswith("dropped ")]
    assert summaries == [
        f"dropped {10_000 - burst} log messages of MCP server 'chatty': it sent more than {burst} at once "
        "or 10 a second",
        "dropped 10 log messages of MCP server 'chatty': it sent more than 50 at once or 10 a second",
    ]
