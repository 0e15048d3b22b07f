from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
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
)

from ._helpers import Lifespan, LowLevel, Protocol, call, entry_error, server_with, tool, tools_by_name

PROVIDER_SAFE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


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
