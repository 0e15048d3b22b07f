"""Connecting: fan-out to slow HTTP servers, a factory's warm and cold run starts, ``langchain.mcp``.

In the fan-out rows only entering the `Bridge` is timed (connect, handshake,
tools listed); leaving it is not. The pool rows time a default `agent_factory`
from entry to graph yielded. The ``langchain.mcp`` comparison times both peers'
whole connect, list and close.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
from langgraph.store.memory import InMemoryStore

from bench._env import Env, http_server, stdio_server
from bench._stats import Block, Summary, interleave, round_ratios
from bench.calls import LANGCHAIN_MCP, spread_checks, spread_note
from bench.results import Check, Metric, ratio_of, skipped
from mcpbridge import Bridge, GraphFactory, ServerConfig, agent_factory
from mcpbridge._compat import RUN_ACCESS, server_runtime
from mcpbridge.testing import OfflineChatModel

HANDSHAKE_DELAY = 0.1
WARM_RUN_START_MS = 100.0
"""The Agent Server warns of a slow graph load above this."""
READ_ACCESS = "threads.read"


async def time_entry(bridge: Bridge) -> float:
    """Milliseconds to enter ``bridge``; it is left again, untimed."""
    async with AsyncExitStack() as stack:
        start = time.perf_counter_ns()
        await stack.enter_async_context(bridge)
        return (time.perf_counter_ns() - start) / 1e6


def _connects(make: Callable[[], Bridge]) -> Block:
    async def block(k: int) -> list[float]:
        return [await time_entry(make()) for _ in range(k)]

    return block


def _summary_metric(
    id: str, title: str, peer: str, unit: str, values: Sequence[float], *, transport: str
) -> Metric:
    s = Summary.of(values)
    return Metric(
        id=id, title=title, peer=peer, unit=unit, transport=transport, median=s.median, p95=s.p95, n=s.n
    )


async def fan_out(env: Env) -> list[Metric]:
    """Connecting to 8 servers that each answer their handshake 100 ms late, against connecting to one."""
    one: list[ServerConfig] = [http_server(env.delayed[0], "slow0")]
    eight: list[ServerConfig] = [http_server(p, f"slow{i}") for i, p in enumerate(env.delayed)]
    samples = await interleave(
        {"one": _connects(lambda: Bridge(one)), "eight": _connects(lambda: Bridge(eight))},
        n=env.sizes.connects,
        rounds=min(10, env.sizes.connects),
        warmup=2,
    )
    title = f"Connect to HTTP servers with a {HANDSHAKE_DELAY * 1000:g} ms handshake"
    single = _summary_metric(
        "connect.http.one", f"{title}: one", "mcpbridge", "ms", samples["one"], transport="http"
    )
    many = _summary_metric(
        "connect.http.eight", f"{title}: eight", "mcpbridge", "ms", samples["eight"], transport="http"
    )
    many.ratio = ratio_of(many, single)
    many.checks.append(
        Check("8 servers / 1 server", None if many.ratio is None else many.ratio.value, "x", "<=", 1.5)
    )
    if single.median is not None and single.median < HANDSHAKE_DELAY * 1000:
        raise RuntimeError(f"the handshake delay did not apply: one connect took {single.median:.1f} ms")
    return [single, many, *await connect_list_close(env)]


async def connect_list_close(env: Env) -> list[Metric]:
    """Connect to the bench HTTP server, list its tools and close: the bridge against ``langchain.mcp``."""
    title = "Connect, list tools and close, HTTP"
    driver = env.langchain_mcp
    if driver is None:
        reason = env.langchain_mcp_skipped or "langchain.mcp peer not run"
        return [skipped("connect.http.langchain_mcp", title, LANGCHAIN_MCP, "ms", reason)]
    servers: list[ServerConfig] = [http_server(env.http)]

    async def bridge_block(k: int) -> list[float]:
        durations: list[float] = []
        for _ in range(k):
            start = time.perf_counter_ns()
            async with Bridge(servers) as bridge:
                if "echo" not in {t.name for t in bridge.tools}:
                    raise RuntimeError("the bench server offers no echo tool")
            durations.append((time.perf_counter_ns() - start) / 1e6)
        return durations

    rounds = min(10, env.sizes.connects)
    samples = await interleave(
        {"bridge": bridge_block, "langchain_mcp": driver.connects_block(env.http.url)},
        n=env.sizes.connects,
        rounds=rounds,
        warmup=2,
    )
    bridged = _summary_metric(
        "connect.http.bridge", title, "mcpbridge", "ms", samples["bridge"], transport="http"
    )
    lc = _summary_metric(
        "connect.http.langchain_mcp", title, LANGCHAIN_MCP, "ms", samples["langchain_mcp"], transport="http"
    )
    lc.ratio = ratio_of(bridged, lc)
    spread = round_ratios(samples["bridge"], samples["langchain_mcp"], rounds)
    lc.checks += [
        Check("bridge / langchain.mcp", None if lc.ratio is None else lc.ratio.value, "x"),
        *spread_checks("bridge / langchain.mcp", spread),
    ]
    bridged.notes = "async with Bridge([server]): connect, handshake, tools listed, close"
    lc.notes = "async with MCPAdapter(url) as a: await a.list_tools(); " + spread_note(spread)
    return [bridged, lc]


def _factory_round(warm_runs: int) -> tuple[float, list[float], dict[str, int]]:
    """On a new event loop: a new default factory, one cold run start, then ``warm_runs`` warm ones.

    Returns the milliseconds from factory entry to graph yielded (cold, then each warm one) and the
    bench server's process starts and handshakes, from its own records. The loop's end closes the
    factory's pool, as a server's shutdown does.
    """

    async def main() -> tuple[float, list[float], dict[str, int]]:
        with tempfile.TemporaryDirectory() as directory:
            events = Path(directory) / "events.jsonl"
            factory = agent_factory([stdio_server(events=events)], OfflineChatModel())
            async with factory(server_runtime(READ_ACCESS, user=None, store=InMemoryStore())):
                pass  # the Agent Server builds the read graph when it loads the graph, before any run
            cold = await _time_run_start(factory)
            warm = [await _time_run_start(factory) for _ in range(warm_runs)]
            text = events.read_text(encoding="utf-8") if events.exists() else ""
            opened = Counter(json.loads(line)["event"] for line in text.splitlines())
            return cold, warm, dict(opened)

    return asyncio.run(main())


async def _time_run_start(factory: GraphFactory) -> float:
    """Milliseconds from entering ``factory`` for alice's run to the graph yielded; leaving is untimed."""
    runtime = server_runtime(RUN_ACCESS, user=_Alice(), store=InMemoryStore())
    async with AsyncExitStack() as stack:
        start = time.perf_counter_ns()
        await stack.enter_async_context(factory(runtime))
        return (time.perf_counter_ns() - start) / 1e6


@dataclass(frozen=True, slots=True)
class _Alice:
    identity: str = "alice"
    permissions: tuple[str, ...] = ()
    is_authenticated: bool = True
    display_name: str = "alice"


async def pool(env: Env) -> list[Metric]:
    """Run start of a default `agent_factory` (its own pool), stdio: a user's first run cold, later ones warm.

    Timed from factory entry to graph yielded: the servers chosen, sessions borrowed (or connected,
    tools listed), ``create_agent`` built and its topology checked. Each round runs on an event loop
    of its own, ended after it, so its cold run meets no session left by another round.
    """
    sizes = env.sizes
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(sizes.pool_rounds):
        first, later, opened = await anyio.to_thread.run_sync(_factory_round, sizes.pool_warm_per_round)
        if opened != {"start": 1, "handshake": 1}:
            raise RuntimeError(f"a round opened {opened}, expected one process and one handshake")
        cold.append(first)
        warm.extend(later)
    title = "Run start of agent_factory's default (factory entry to graph yielded), stdio"
    cold_m = _summary_metric(
        "pool.stdio.cold", f"{title}: cold (a user's first run)", "mcpbridge", "ms", cold, transport="stdio"
    )
    warm_m = _summary_metric(
        "pool.stdio.warm", f"{title}: warm (later runs)", "mcpbridge", "ms", warm, transport="stdio"
    )
    warm_m.ratio = ratio_of(warm_m, cold_m)
    warm_m.checks += [
        Check("warm / cold", None if warm_m.ratio is None else warm_m.ratio.value, "x", "<=", 0.05),
        Check("warm median", warm_m.median, "ms", "<=", WARM_RUN_START_MS),
    ]
    warm_m.notes = (
        f"a new factory and event loop per round: {sizes.pool_rounds} rounds of 1 cold + "
        f"{sizes.pool_warm_per_round} warm; one process and one handshake per round (the server's records)"
    )
    return [cold_m, warm_m]
