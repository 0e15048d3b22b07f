"""`SessionPool` with real server processes: warm runs reuse, users never share, broken sessions go.

The factories' default (a pool of their own) is seen through the echo server's own records:
process starts and handshakes, per user and event loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from langgraph.store.memory import InMemoryStore
from langgraph_sdk.runtime import ServerRuntime
from pydantic import SecretStr

from mcpbridge import Bridge, GraphFactory, HttpServer, SessionPool, StdioServer, agent_factory
from mcpbridge._compat import RUN_ACCESS, server_runtime
from mcpbridge.testing import OfflineChatModel
from tests.support.servers.common import EVENTS_ENV

from .graphs import call, run_config, run_tool_calls, text_of, tool_graph
from .support import ROOT, ChildProcesses, HttpServerProcess, RecordFile, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CONNECT_METHODS = frozenset({"initialize", "server/discover"})
"""The first request of every MCP connection (2025-11-25 handshake, 2026-07-28 discovery)."""


def echo_stdio(**options: Any) -> StdioServer:
    return StdioServer(
        name="echo", command=sys.executable, args=("-m", "tests.support.servers.echo"), cwd=ROOT, **options
    )


async def whoami(bridge: Bridge, user: str | None = None) -> dict[str, Any]:
    """Call ``whoami`` through a real ToolNode; the answer holds the server's pid."""
    graph = tool_graph(bridge.tools)
    [message] = (await run_tool_calls(graph, [call("whoami")], run_config(user=user))).values()
    assert message.status == "success", message
    return json.loads(text_of(message))


async def test_a_warm_run_reuses_the_session_and_its_process(children: ChildProcesses) -> None:
    async with SessionPool() as pool:
        with anyio.fail_after(30):
            async with Bridge([echo_stdio()], pool=pool, user="alice") as bridge:
                first = await whoami(bridge, "alice")
            started = children.new()
            assert len(started) == 1
            assert pool.idle == 1
            async with Bridge([echo_stdio()], pool=pool, user="alice") as bridge:
                second = await whoami(bridge, "alice")
            assert second["pid"] == first["pid"]
            assert children.new() == started, "a warm run must not start a process"
    await poll_until(lambda: not children.new(), within=10)


async def test_users_never_share_a_session(children: ChildProcesses) -> None:
    async with SessionPool() as pool:
        with anyio.fail_after(30):
            async with Bridge([echo_stdio()], pool=pool, user="alice") as bridge:
                alice = await whoami(bridge, "alice")
            async with Bridge([echo_stdio()], pool=pool, user="bob") as bridge:
                bob = await whoami(bridge, "bob")
            assert alice["pid"] != bob["pid"]
            assert pool.size == 2
            async with Bridge([echo_stdio()], pool=pool, user="bob") as bridge:
                assert (await whoami(bridge, "bob"))["pid"] == bob["pid"]
    await poll_until(lambda: not children.new(), within=10)


async def test_concurrent_runs_of_one_user_get_a_session_each(children: ChildProcesses) -> None:
    pids: list[int] = []
    async with SessionPool() as pool:

        async def run() -> None:
            async with Bridge([echo_stdio()], pool=pool, user="alice") as bridge:
                pids.append((await whoami(bridge, "alice"))["pid"])
                await ready.wait()

        ready = anyio.Event()
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(run)
                group.start_soon(run)
                await poll_until(lambda: len(pids) == 2, within=25)
                ready.set()
        assert len(set(pids)) == 2, "a session is lent to one run at a time"
        assert pool.idle == 2
    await poll_until(lambda: not children.new(), within=10)


async def test_other_credentials_get_another_session(echo_http: HttpServerProcess) -> None:
    records = echo_http.records.view()
    async with SessionPool() as pool:
        with anyio.fail_after(30):
            for token in ("token-one", "token-two", "token-one"):
                server = HttpServer(name="echo", url=echo_http.url, bearer_token=SecretStr(token))
                async with Bridge([server], pool=pool, user="alice") as bridge:
                    await whoami(bridge, "alice")
            assert pool.size == 2
    prints = [entry["authorization"] for entry in records.entries(tool="whoami")]
    assert len(prints) == 3 and prints[0] == prints[2] != prints[1]


async def test_a_broken_session_is_not_lent_again(record_file: RecordFile, children: ChildProcesses) -> None:
    server = echo_stdio(env={"MCPBRIDGE_RECORD": str(record_file.path)})
    async with SessionPool() as pool:
        with anyio.fail_after(30):
            async with Bridge([server], pool=pool, user="alice") as bridge:
                before = await whoami(bridge, "alice")
                calls = await run_tool_calls(tool_graph(bridge.tools), [call("crash")], run_config())
                [crashed] = calls.values()
                assert crashed.status == "error"
            assert pool.size == 0, "the dead session went back to the pool"
            async with Bridge([server], pool=pool, user="alice") as bridge:
                after = await whoami(bridge, "alice")
            assert after["pid"] != before["pid"]
    await poll_until(lambda: not children.new(), within=10)


async def test_idle_sessions_close_with_their_process(children: ChildProcesses) -> None:
    async with SessionPool(idle_timeout=0.2) as pool:
        with anyio.fail_after(30):
            async with Bridge([echo_stdio()], pool=pool, user="alice"):
                pass
            assert children.new()
            await poll_until(lambda: pool.size == 0, within=10)
            await poll_until(lambda: not children.new(), within=10)


async def test_closing_the_pool_stops_every_process(children: ChildProcesses) -> None:
    pool = SessionPool()
    with anyio.fail_after(30):
        for user in ("alice", "bob"):
            async with Bridge([echo_stdio()], pool=pool, user=user):
                pass
        assert len(children.new()) == 2
        await pool.aclose()
    assert pool.size == 0
    await poll_until(lambda: not children.new(), within=10)
    with pytest.raises(RuntimeError, match="closed"):
        async with Bridge([echo_stdio()], pool=pool, user="alice"):
            pass


async def test_the_size_bound_closes_sessions_beyond_it(children: ChildProcesses) -> None:
    async with SessionPool(max_size=1) as pool:
        with anyio.fail_after(30):
            async with Bridge([echo_stdio()], pool=pool, user="alice"):
                async with Bridge([echo_stdio()], pool=pool, user="bob"):
                    assert len(children.new()) == 2
            assert pool.size == 1
            await poll_until(lambda: len(children.new()) == 1, within=10)
    await poll_until(lambda: not children.new(), within=10)


# --- the factories' default: a pool of their own ------------------------------------------------------


@dataclass(frozen=True)
class RunUser:
    identity: str
    permissions: tuple[str, ...] = ()
    is_authenticated: bool = True
    display_name: str = ""


def run_runtime(user: str) -> ServerRuntime[Any]:
    return server_runtime(RUN_ACCESS, user=RunUser(user), store=InMemoryStore())


def events_of(path: Path) -> list[dict[str, Any]]:
    """The echo server's own records: one line per process start and per inbound MCP request."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def starts(events: list[dict[str, Any]]) -> list[int]:
    return [e["pid"] for e in events if e["event"] == "start"]


def handshakes(events: list[dict[str, Any]]) -> list[int]:
    return [e["pid"] for e in events if e["event"] == "request" and e["method"] in CONNECT_METHODS]


def runs_on_their_own_loop(
    factory: GraphFactory, users: list[str], after_each: list[list[dict[str, Any]]], path: Path
) -> None:
    """Run ``factory`` for ``users`` in turn on a new loop, which ``asyncio.run`` ends as a server does."""

    async def main() -> None:
        with anyio.fail_after(60):
            for user in users:
                async with factory(run_runtime(user)):
                    pass
                after_each.append(events_of(path))

    asyncio.run(main())


async def test_a_default_factory_starts_no_process_and_no_handshake_on_a_warm_run(
    tmp_path: Path, children: ChildProcesses
) -> None:
    path = tmp_path / "events.jsonl"
    factory = agent_factory([echo_stdio(env={EVENTS_ENV: str(path)})], OfflineChatModel())
    seen: list[list[dict[str, Any]]] = []
    users = ["alice", "alice", "bob", "alice", "bob"]
    with anyio.fail_after(90):
        await anyio.to_thread.run_sync(runs_on_their_own_loop, factory, users, seen, path)
        # The loop has ended: its pool closed every session, and stopped every process.
        await poll_until(lambda: not children.new(), within=10)
    alice, bob = starts(seen[-1])
    assert alice != bob, "two users shared a server process"
    assert [len(starts(e)) for e in seen] == [1, 1, 2, 2, 2]  # only each user's first run started one
    assert [len(handshakes(e)) for e in seen] == [1, 1, 2, 2, 2]
    assert handshakes(seen[-1]) == [alice, bob]


async def test_a_factory_with_pool_false_connects_for_each_run(
    tmp_path: Path, children: ChildProcesses
) -> None:
    path = tmp_path / "events.jsonl"
    factory = agent_factory([echo_stdio(env={EVENTS_ENV: str(path)})], OfflineChatModel(), pool=False)
    seen: list[list[dict[str, Any]]] = []
    with anyio.fail_after(90):
        await anyio.to_thread.run_sync(runs_on_their_own_loop, factory, ["alice", "alice"], seen, path)
    assert [len(starts(e)) for e in seen] == [1, 2]
    assert [len(handshakes(e)) for e in seen] == [1, 2]
    assert not children.new()  # each run stopped its process as it ended


async def test_a_session_with_a_call_given_up_is_not_lent_again(
    record_file: RecordFile, children: ChildProcesses
) -> None:
    server = echo_stdio(env={"MCPBRIDGE_RECORD": str(record_file.path)})
    async with SessionPool() as pool:
        with anyio.fail_after(30):
            async with Bridge([server], pool=pool, user="alice") as bridge:
                [slow] = [t for t in bridge.tools if t.name == "slow"]
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as group:
                        group.start_soon(slow.ainvoke, {"seconds": 60})
                        await record_file.wait_for(tool="slow", phase="start")
                        scope.cancel()  # the run gives up the call; the server may still be running it
            assert pool.size == 0, "a session with a call in flight went back to the pool"
            # Closing the session stopped the call on the server.
            await record_file.wait_for(tool="slow", phase="cancelled", within=10)
    await poll_until(lambda: not children.new(), within=10)
