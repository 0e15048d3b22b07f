"""`SessionPool` in process: lending, keys, the detached runner, factories."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from pydantic import SecretStr

from mcpbridge import Bridge, ConfigError, HttpServer, MemoryServer, SessionPool, agent_factory
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
