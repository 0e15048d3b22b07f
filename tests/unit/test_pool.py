"""`SessionPool` in process: lending, keys, the detached runner, factories."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import pytest
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from pydantic import SecretStr

from mcpbridge import Bridge, ConfigError, HttpServer, MemoryServer, SessionPool, UsageError, agent_factory
from mcpbridge._connection import ServerConnection, State
from mcpbridge.pool import pool_key
from mcpbridge.testing import OfflineChatModel

from .test_factory import User, read_runtime, run_runtime

pytestmark = pytest.mark.anyio


class CountingServer:
    """An in-process MCP server that counts the sessions opened on it."""

    def __init__(self) -> None:
        self.initialized = 0
        self.server = MCPServer("counting", middleware=[self._count])

        @self.server.tool()
        async def ping() -> str:
            """Answer pong."""
            return "pong"

    async def _count(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method in ("initialize", "server/discover"):
            self.initialized += 1
        return await call_next(ctx)

    def config(self, **options: Any) -> MemoryServer:
        return MemoryServer(name="counting", server=self.server, **options)


async def test_a_detached_pool_lends_one_session_to_successive_runs() -> None:
    counting = CountingServer()
    pool = SessionPool()  # not entered: its runner starts on the running loop
    try:
        for _ in range(3):
            async with Bridge([counting.config()], pool=pool, user="alice") as bridge:
                assert [t.name for t in bridge.tools] == ["ping"]
        assert counting.initialized == 1
        assert (pool.size, pool.idle) == (1, 1)
    finally:
        await pool.aclose()
    assert pool.size == 0


async def test_sessions_are_keyed_by_user_and_settings() -> None:
    counting = CountingServer()
    async with SessionPool() as pool:
        for user in ("alice", "bob", "alice", None):
            async with Bridge([counting.config()], pool=pool, user=user):
                pass
        async with Bridge([counting.config(call_timeout=5)], pool=pool, user="alice"):
            pass
        assert counting.initialized == 4  # alice, bob, anonymous, alice with other settings


def test_the_key_holds_secrets_without_showing_them() -> None:
    one = HttpServer(name="s", url="https://mcp.example.com/mcp", bearer_token=SecretStr("secret-one"))
    two = HttpServer(name="s", url="https://mcp.example.com/mcp", bearer_token=SecretStr("secret-two"))
    assert pool_key(one, "alice") != pool_key(two, "alice")
    assert pool_key(one, "alice") == pool_key(one, "alice")
    assert pool_key(one, "alice") != pool_key(one, "bob")
    assert "secret" not in repr(pool_key(one, "alice"))


async def test_a_factory_with_a_pool_connects_once_per_user_and_never_for_reads() -> None:
    counting = CountingServer()
    with anyio.fail_after(20):
        async with SessionPool() as pool:
            factory = agent_factory([counting.config()], OfflineChatModel(), pool=pool)
            for context in ("threads.read", "threads.update", "assistants.read"):
                async with factory(read_runtime(context)):
                    pass
            assert pool.size == 0 and counting.initialized == 0
            for user in ("alice", "alice", "bob", "alice"):
                async with factory(run_runtime(User(user))) as graph:
                    assert "ping" in graph.nodes["tools"].bound.tools_by_name  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
            assert counting.initialized == 2
            assert pool.idle == 2


def test_bad_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="idle_timeout"):
        SessionPool(idle_timeout=0)
    with pytest.raises(ConfigError, match="max_size"):
        SessionPool(max_size=0)


# --- one owner: entered once, or one task per event loop ---------------------------------------------


def _connection_of(bridge: Bridge) -> ServerConnection:
    return bridge._connections["counting"]  # pyright: ignore[reportPrivateUsage]


async def test_a_pool_is_entered_once() -> None:
    counting = CountingServer()
    pool = SessionPool()
    with anyio.fail_after(10):
        async with pool:
            with pytest.raises(UsageError, match="entered already"):
                async with pool:
                    pass
            async with Bridge([counting.config()], pool=pool):  # the first entry still serves
                pass
            assert pool.size == 1
        assert pool.size == 0
        with pytest.raises(UsageError, match="closed"):
            async with pool:
                pass


async def test_entering_concurrently_is_refused() -> None:
    pool = SessionPool()
    outcomes: list[str] = []
    done = anyio.Event()

    async def enter() -> None:
        try:
            async with pool:
                outcomes.append("entered")
                await done.wait()
        except UsageError as exc:
            outcomes.append(str(exc))
            done.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(enter)
            group.start_soon(enter)
    assert sorted(outcomes)[0] == "entered"
    assert sorted(outcomes)[1].startswith("the SessionPool is entered already")


async def test_a_pool_used_before_entering_refuses_to_be_entered() -> None:
    counting = CountingServer()
    pool = SessionPool()
    with anyio.fail_after(10):
        async with Bridge([counting.config()], pool=pool):
            pass
        with pytest.raises(UsageError, match="before its first use"):
            async with pool:
                pass
        assert pool.size == 1  # still served by its own task
        await pool.aclose()
    assert pool.size == 0


async def test_no_task_is_left_after_exit_or_aclose() -> None:
    counting = CountingServer()
    before = asyncio.all_tasks()
    with anyio.fail_after(10):
        async with SessionPool() as pool:
            async with Bridge([counting.config()], pool=pool):
                pass
            assert asyncio.all_tasks() - before  # the session's task
        assert asyncio.all_tasks() - before == set()

        detached = SessionPool()
        async with Bridge([counting.config()], pool=detached):
            pass
        assert {t.get_name() for t in asyncio.all_tasks() - before} >= {"mcpbridge SessionPool"}
        await detached.aclose()
        assert asyncio.all_tasks() - before == set()


def test_a_loops_shutdown_closes_its_sessions_and_loops_never_share_them() -> None:
    counting = CountingServer()
    pool = SessionPool()  # not entered, never closed: each loop's shutdown closes its sessions
    barrier = threading.Barrier(2, timeout=10)
    seen: list[ServerConnection] = []

    async def run_on_this_loop() -> None:
        with anyio.fail_after(10):
            async with Bridge([counting.config()], pool=pool, user="alice") as bridge:
                mine = _connection_of(bridge)
                seen.append(mine)
                await anyio.to_thread.run_sync(barrier.wait)  # both loops hold a session at once
            async with Bridge([counting.config()], pool=pool, user="alice") as bridge:
                assert _connection_of(bridge) is mine  # lent again on its own loop only

    threads = [threading.Thread(target=asyncio.run, args=(run_on_this_loop(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    first, second = seen
    assert first is not second and counting.initialized == 2  # one session per loop, the same user
    assert pool.size == 0 and not pool.closed
    assert first.state is State.CLOSED and second.state is State.CLOSED

    asyncio.run(run_on_this_loop_alone(pool, counting))  # a later loop gets sessions of its own
    assert counting.initialized == 3 and pool.size == 0


async def run_on_this_loop_alone(pool: SessionPool, counting: CountingServer) -> None:
    with anyio.fail_after(10):
        async with Bridge([counting.config()], pool=pool, user="alice"):
            pass
        assert pool.size == 1
