"""`ToolCache` against a real 2026-era HTTP server that records every request it gets.

The server (`tests.support.servers.cached`) hints ``ttlMs``/``cacheScope`` on
``tools/list`` and ``server/discover``, lists one tool named after each caller's
token, and appends a line per HTTP request; the counts below are read there.
Time is driven by the cache's clock, never by sleeping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.tools import BaseTool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.memory import InMemoryStore

from mcpbridge import Bridge, Credentials, EnvCredentials, HttpServer, SessionPool, ToolCache, graph_factory
from mcpbridge._compat import RUN_ACCESS, server_runtime
from mcpbridge.credentials import apply_credentials
from mcpbridge.scoping import UserServers
from tests.support.servers.cached import SCOPE_ENV, TTL_ENV
from tests.support.servers.common import EVENTS_ENV, fingerprint

from .support import HttpServerProcess, poll_until, start_http_server

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TOKENS = {"alice": "Bearer alice-token-1", "bob": "Bearer bob-token-1"}


class Clock:
    """The cache's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorded:
    """A cached server process and the HTTP requests it recorded."""

    process: HttpServerProcess
    events: Path

    @property
    def url(self) -> str:
        return self.process.url

    def requests(self) -> list[dict[str, Any]]:
        if not self.events.exists():
            return []
        lines = self.events.read_text(encoding="utf-8").splitlines()
        return [e for e in map(json.loads, lines) if e["event"] == "http"]

    def mark(self) -> int:
        return len(self.requests())

    def since(self, mark: int) -> list[str]:
        """The JSON-RPC methods of the requests since ``mark`` (``GET``/``DELETE`` for the others)."""
        return [e["rpc"] or e["method"] for e in self.requests()[mark:]]


def start(directory: Path, **env: str) -> Recorded:
    events = directory / "events.jsonl"
    process = start_http_server("cached", directory, env={EVENTS_ENV: str(events), **env})
    return Recorded(process, events)


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """The server with ``ttlMs: 60000, cacheScope: "private"``."""
    server = start(tmp_path_factory.mktemp("cached-private"))
    yield server
    server.process.stop()


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """The server with ``ttlMs: 60000, cacheScope: "public"``."""
    server = start(tmp_path_factory.mktemp("cached-public"), **{SCOPE_ENV: "public"})
    yield server
    server.process.stop()


def config(
    server: Recorded, user: str, *, token: str | None = None, principal: str | None = None
) -> HttpServer:
    """The server with ``user``'s credentials applied, as `UserServers` would."""
    base = HttpServer(name="cached", url=server.url)
    credentials = Credentials(headers={"Authorization": token or TOKENS[user]}, principal=principal)
    applied = apply_credentials(base, credentials)
    assert isinstance(applied, HttpServer)
    return applied


@dataclass
class Run:
    tools: list[str]
    before_call: list[str]
    answer: dict[str, Any]


async def run(
    server: Recorded, cache: ToolCache | None, user: str, *, guest: bool = False, **options: Any
) -> Run:
    """One run: enter a Bridge, note the requests so far, call ``whoami``."""
    mark = server.mark()
    with anyio.fail_after(30):
        async with Bridge(
            [config(server, user, **options)], tool_cache=cache, user=user, guests=["cached"] if guest else ()
        ) as bridge:
            before = server.since(mark)
            [whoami] = [t for t in bridge.tools if t.name == "whoami"]
            answer = json.loads(text(await whoami.ainvoke({})))
            return Run(sorted(t.name for t in bridge.tools), before, answer)


def text(result: Any) -> str:
    """The text of a tool's answer (a string, or content blocks)."""
    if isinstance(result, str):
        return result
    return "".join(block["text"] for block in result if block.get("type") == "text")


def own_tool(user: str, token: str | None = None) -> str:
    return f"private_{fingerprint(token or TOKENS[user])}"


async def test_a_second_run_costs_no_request_before_its_first_tool_call(private: Recorded) -> None:
    cache = ToolCache()
    first = await run(private, cache, "alice")
    assert first.before_call == ["server/discover", "tools/list"]
    second = await run(private, cache, "alice")
    assert second.before_call == [], "discovery and the tool list come from the cache"
    assert second.tools == first.tools
    assert second.answer["protocol"] == "2026-07-28"


async def test_without_a_cache_every_run_discovers_and_lists(private: Recorded) -> None:
    for _ in range(2):
        assert (await run(private, None, "alice")).before_call == ["server/discover", "tools/list"]


async def test_a_second_user_fetches_their_own_private_list(private: Recorded) -> None:
    cache = ToolCache(share_public=True)  # sharing public entries does not share private ones
    alice = await run(private, cache, "alice")
    bob = await run(private, cache, "bob")
    assert bob.before_call == ["server/discover", "tools/list"]
    assert own_tool("bob") in bob.tools and own_tool("alice") not in bob.tools
    assert own_tool("alice") in alice.tools
    again = await run(private, cache, "alice")
    assert again.before_call == [] and own_tool("bob") not in again.tools


async def test_a_refreshed_token_of_the_same_principal_keeps_the_cache(private: Recorded) -> None:
    cache = ToolCache()
    old, new = "Bearer carol-token-1", "Bearer carol-token-2"
    first = await run(private, cache, "alice", token=old, principal="carol@idp")
    second = await run(private, cache, "alice", token=new, principal="carol@idp")
    assert first.before_call == ["server/discover", "tools/list"]
    assert second.before_call == []
    assert second.answer["authorization"] == fingerprint(new), "calls carry the new token"
    other = await run(private, cache, "alice", token=new, principal="dave@idp")
    assert other.before_call == ["server/discover", "tools/list"], "another principal has its own entries"


async def test_public_lists_are_shared_only_when_the_server_says_public(public: Recorded) -> None:
    shared = ToolCache(share_public=True)
    await run(public, shared, "alice")
    bob = await run(public, shared, "bob")
    assert bob.before_call == ["server/discover"], "the public list is served; discovery stays per principal"
    unshared = ToolCache()
    await run(public, unshared, "alice")
    assert (await run(public, unshared, "bob")).before_call == ["server/discover", "tools/list"]


async def test_a_users_registered_server_cannot_fill_another_users_cache(public: Recorded) -> None:
    cache = ToolCache(share_public=True)
    # Mallory registers the very server (same name and URL); its "public" answer stays hers.
    mallory = await run(public, cache, "mallory", guest=True, token="Bearer mallory")
    assert own_tool("mallory", "Bearer mallory") in mallory.tools
    alice = await run(public, cache, "alice")
    assert alice.before_call == ["server/discover", "tools/list"]
    assert own_tool("mallory", "Bearer mallory") not in alice.tools


async def test_an_expired_entry_is_fetched_again(private: Recorded) -> None:
    clock = Clock()
    cache = ToolCache(clock=clock)
    await run(private, cache, "alice")
    clock.now += 59
    assert (await run(private, cache, "alice")).before_call == []
    clock.now += 2  # past the server's 60 s
    assert (await run(private, cache, "alice")).before_call == ["server/discover", "tools/list"]
    assert (await run(private, cache, "alice")).before_call == []


async def test_a_huge_ttl_is_capped(tmp_path: Path) -> None:
    server = start(tmp_path, **{TTL_ENV: str(10**12)})
    try:
        clock = Clock()
        cache = ToolCache(max_ttl=600, clock=clock)
        await run(server, cache, "alice")
        clock.now += 599
        assert (await run(server, cache, "alice")).before_call == []
        clock.now += 2
        assert (await run(server, cache, "alice")).before_call == ["server/discover", "tools/list"]
    finally:
        server.process.stop()


async def test_a_pooled_session_gets_the_changed_list(tmp_path: Path) -> None:
    server = start(tmp_path)
    try:
        cache = ToolCache()
        async with SessionPool() as pool:

            async def tools() -> list[str]:
                async with Bridge(
                    [config(server, "alice")], tool_cache=cache, user="alice", pool=pool
                ) as bridge:
                    return [t.name for t in bridge.tools]

            async def grow() -> str:
                async with Bridge(
                    [config(server, "alice")], tool_cache=cache, user="alice", pool=pool
                ) as bridge:
                    [tool] = [t for t in bridge.tools if t.name == "grow"]
                    return text(await tool.ainvoke({}))

            with anyio.fail_after(30):
                assert "grown_1" not in await tools()
                # Back in the pool, the session listens for changes (a 2026-07-28 subscription).
                await poll_until(lambda: "subscriptions/listen" in server.since(0), within=10)
                assert await grow() == "grown_1"
                for _ in range(500):  # the event reaches the session, then a run lists again
                    if "grown_1" in await tools():
                        break
                    await anyio.sleep(0.02)
                mark = server.mark()
                assert "grown_1" in await tools()
                assert server.since(mark) == [], "listed once, then served from the cache"
    finally:
        server.process.stop()


async def test_a_pooled_2025_session_lists_again_after_list_changed(tmp_path: Path) -> None:
    server = start(tmp_path)
    legacy = config(server, "alice").model_copy(update={"protocol": "legacy"})
    try:
        cache = ToolCache()
        async with SessionPool() as pool:

            async def tools(*, call: str | None = None) -> list[str]:
                async with Bridge([legacy], tool_cache=cache, user="alice", pool=pool) as bridge:
                    if call is not None:
                        [tool] = [t for t in bridge.tools if t.name == call]
                        await tool.ainvoke({})
                    return [t.name for t in bridge.tools]

            with anyio.fail_after(30):
                assert "grown_1" not in await tools(call="grow")  # a run keeps the tools it started with
                for _ in range(500):  # the notification reaches the session, then a run lists again
                    if "grown_1" in await tools():
                        break
                    await anyio.sleep(0.02)
                mark = server.mark()
                assert "grown_1" in await tools()
                assert "tools/list" not in server.since(mark), "no change, no listing"
    finally:
        server.process.stop()


@pytest.mark.parametrize("pool", [False, True], ids=["connection-per-run", "default-pool"])
async def test_a_factory_caches_per_user_by_default(private: Recorded, pool: bool) -> None:
    """`graph_factory` with `UserServers` and `EnvCredentials`, as a deployment has it.

    With the default pool a session waiting in it keeps one `subscriptions/listen` stream
    open (opened once it went idle, not by a run): a run's own requests are the rest.
    """
    environ = {"TOKEN_ALICE": "alice-1", "TOKEN_BOB": "bob-1"}
    servers = UserServers(
        [HttpServer(name="cached", url=private.url)],
        credentials=EnvCredentials({"cached": "TOKEN_{user.identity}"}, environ=environ),
    )
    seen: list[list[BaseTool]] = []

    def build(tools: list[BaseTool]) -> Any:
        if tools:  # the run's graph (the read graph has none)
            seen.append(tools)
        graph = StateGraph(MessagesState)
        graph.add_node("noop", lambda state: state)  # pyright: ignore[reportUnknownArgumentType, reportUnknownLambdaType]
        graph.add_edge(START, "noop")
        return graph

    make_graph = graph_factory(servers, build, pool=pool)

    async def one_run(user: str) -> tuple[list[str], dict[str, Any]]:
        mark = private.mark()
        runtime = server_runtime(RUN_ACCESS, user=FactoryUser(user), store=InMemoryStore())
        with anyio.fail_after(30):
            async with make_graph(runtime):
                before = [r for r in private.since(mark) if r != "subscriptions/listen"]
                [whoami] = [t for t in seen[-1] if t.name == "whoami"]
                return before, json.loads(text(await whoami.ainvoke({})))

    assert (await one_run("alice"))[0] == ["server/discover", "tools/list"]
    assert (await one_run("alice"))[0] == []
    assert (await one_run("bob"))[0] == ["server/discover", "tools/list"]
    environ["TOKEN_ALICE"] = "alice-2"  # the deployment rotates alice's secret
    before, answer = await one_run("alice")
    assert before == []
    assert answer["authorization"] == fingerprint("Bearer alice-2")


@dataclass
class FactoryUser:
    identity: str
    permissions: tuple[str, ...] = ()
    is_authenticated: bool = True
    display_name: str = ""
