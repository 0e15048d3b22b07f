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
    # a session that offers sampling (at its handshake) is kept apart from one that does not
    assert pool_key(one, "alice", samples=True) != pool_key(one, "alice")


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


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"idle_timeout": float("nan")}, "idle_timeout"),
        ({"idle_timeout": "300"}, "idle_timeout"),
        ({"max_size": 0}, "max_size"),
        ({"max_size": 2.5}, "max_size"),
        ({"max_size": True}, "max_size"),
        ({"max_per_user": 0}, "max_per_user"),
        ({"max_per_user": -1}, "max_per_user"),
        ({"ping_after": -1}, "ping_after"),
    ],
)
def test_bad_options_are_refused_naming_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field) as caught:
        SessionPool(**options)
    assert caught.value.field == field


def test_the_default_bounds() -> None:
    pool = SessionPool()
    assert (pool.idle_timeout, pool.max_size, pool.max_per_user) == (300.0, 16, 4)
    assert SessionPool(max_size=4, max_per_user=None).max_per_user == 4  # no cap below the pool's
    assert SessionPool(max_size=4, max_per_user=10).max_per_user == 4


# --- bounds: a per-user cap, least-recently-used eviction -----------------------------------------


def _servers(counting: CountingServer, count: int) -> list[MemoryServer]:
    """``count`` servers on one in-process server, each with its own settings (so its own session)."""
    return [
        MemoryServer(name=f"s{i}", server=counting.server, prefix=f"s{i}", call_timeout=30 + i)
        for i in range(count)
    ]


async def test_a_user_holds_at_most_max_per_user_sessions() -> None:
    counting = CountingServer()
    servers = _servers(counting, 3)
    with anyio.fail_after(20):
        async with SessionPool(max_size=10, max_per_user=2) as pool:
            async with Bridge(servers, pool=pool, user="mallory"):
                pass
            assert (pool.size, pool.idle) == (2, 2)  # the third session closed as the run ended
            async with Bridge(servers[:1], pool=pool, user="alice"):
                pass
            assert pool.idle == 3 and counting.initialized == 4  # alice keeps hers beside mallory's two
            async with Bridge(servers, pool=pool, user="mallory"):
                pass
            assert counting.initialized == 5  # two warm, one reconnected
            assert pool.idle == 3


async def test_a_full_pool_evicts_the_least_recently_used_idle_session() -> None:
    counting = CountingServer()
    with anyio.fail_after(20):
        async with SessionPool(max_size=2, max_per_user=None) as pool:
            for user in ("alice", "bob"):
                async with Bridge([counting.config()], pool=pool, user=user):
                    pass
            async with Bridge([counting.config()], pool=pool, user="alice"):  # alice's is now the newest
                pass
            assert counting.initialized == 2
            async with Bridge([counting.config()], pool=pool, user="carol"):
                pass
            assert (pool.size, counting.initialized) == (2, 3)  # carol's is pooled, bob's made room
            for user in ("alice", "carol"):
                async with Bridge([counting.config()], pool=pool, user=user):
                    pass
            assert counting.initialized == 3  # both warm
            async with Bridge([counting.config()], pool=pool, user="bob"):
                pass
            assert counting.initialized == 4  # bob's was closed


async def test_a_full_pool_of_lent_sessions_closes_the_one_given_back() -> None:
    counting = CountingServer()
    with anyio.fail_after(20):
        async with SessionPool(max_size=1) as pool:
            async with Bridge([counting.config()], pool=pool, user="alice") as alice:
                async with Bridge([counting.config()], pool=pool, user="bob") as bob:
                    bobs = _connection_of(bob)
                assert bobs.state is State.CLOSED and pool.size == 1  # nothing idle to give way
                alices = _connection_of(alice)
            assert pool.idle == 1 and alices.alive


# --- factories: warm by default, per run on request ------------------------------------------------


async def test_a_default_factory_keeps_each_users_sessions_warm() -> None:
    counting = CountingServer()
    factory = agent_factory([counting.config()], OfflineChatModel())
    with anyio.fail_after(20):
        for user in ("alice", "alice", "bob", "alice", "bob"):
            async with factory(run_runtime(User(user))) as graph:
                assert "ping" in graph.nodes["tools"].bound.tools_by_name  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
        assert counting.initialized == 2  # one session per user, on this loop


async def test_users_never_share_a_session_of_a_default_factory() -> None:
    counting = CountingServer()
    factory = agent_factory([counting.config()], OfflineChatModel())
    sessions: dict[str, set[int]] = {}
    with anyio.fail_after(20):
        for user in ("alice", "bob", "alice", "bob", "carol"):
            async with factory(run_runtime(User(user))) as graph:
                [ping] = graph.nodes["tools"].bound.tools_by_name.values()  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownVariableType]
                sessions.setdefault(user, set()).add(id(ping._wiring.caller))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType, reportPrivateUsage]
    assert all(len(ids) == 1 for ids in sessions.values())
    assert len(set().union(*sessions.values())) == 3


async def test_pool_false_connects_for_each_run() -> None:
    counting = CountingServer()
    factory = agent_factory([counting.config()], OfflineChatModel(), pool=False)
    with anyio.fail_after(20):
        for _ in range(3):
            async with factory(run_runtime(User("alice"))):
                pass
    assert counting.initialized == 3


def test_a_factory_refuses_a_pool_setting_of_another_type() -> None:
    with pytest.raises(ConfigError, match="pool") as caught:
        agent_factory([], OfflineChatModel(), pool="yes")  # pyright: ignore[reportArgumentType]
    assert caught.value.field == "pool"


def test_the_factorys_own_pool_is_closed_at_the_loops_shutdown() -> None:
    counting = CountingServer()
    factory = agent_factory([counting.config()], OfflineChatModel())
    opened: list[ServerConnection] = []

    async def runs() -> None:
        with anyio.fail_after(10):
            for _ in range(2):
                async with factory(run_runtime(User("alice"))) as graph:
                    [ping] = graph.nodes["tools"].bound.tools_by_name.values()  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownVariableType]
                    opened.append(ping._wiring.caller)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType, reportPrivateUsage]

    asyncio.run(runs())
    first, second = opened
    assert first is second and first.state is State.CLOSED
    asyncio.run(runs())  # a later loop connects anew
    assert counting.initialized == 2 and opened[2].state is State.CLOSED


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


def test_the_bounds_count_the_sessions_of_every_loop() -> None:
    counting = CountingServer()
    pool = SessionPool(max_size=4, max_per_user=1)
    first_kept, second_done = threading.Event(), threading.Event()
    sizes: list[int] = []

    async def first() -> None:
        with anyio.fail_after(10):
            async with Bridge([counting.config()], pool=pool, user="alice"):
                pass
            first_kept.set()
            await anyio.to_thread.run_sync(second_done.wait, 10)  # keep this loop (and its session) alive

    async def second() -> None:
        try:
            with anyio.fail_after(10):
                await anyio.to_thread.run_sync(first_kept.wait, 10)
                async with Bridge([counting.config()], pool=pool, user="alice") as bridge:
                    mine = _connection_of(bridge)
                sizes.append(pool.size)
                assert mine.state is State.CLOSED  # alice's share is held on the other loop
                async with Bridge([counting.config()], pool=pool, user="bob"):
                    pass
                sizes.append(pool.size)  # bob has a share of his own
        finally:
            second_done.set()

    threads = [threading.Thread(target=asyncio.run, args=(run(),)) for run in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert sizes == [1, 2] and counting.initialized == 3
