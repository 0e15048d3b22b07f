"""Agent Server factories in read contexts: ``agent_factory`` against a factory written the naive way.

The Agent Server calls a graph factory for state reads, updates and schema
requests too. ``agent_factory`` serves those from a cached graph without
touching a server; the naive factory (open a `Bridge`, build ``create_agent``,
whatever the context) connects every time. Connections are counted on the
server side: the bench servers record every process start and handshake.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from langchain.agents import create_agent  # pyright: ignore[reportUnknownVariableType]
from langgraph.pregel import Pregel
from langgraph.store.memory import InMemoryStore
from langgraph_sdk.runtime import ServerRuntime

from bench._env import Env, http_server, stdio_server
from bench._processes import count_events, offsets
from bench._stats import Block, Summary, interleave
from bench.results import Check, Metric, ratio_of
from mcpbridge import Bridge, ServerConfig, agent_factory
from mcpbridge._compat import server_runtime
from mcpbridge.factory import GraphFactory
from mcpbridge.testing import OfflineChatModel

ACCESS_CONTEXT = "assistants.read"


def naive_factory(servers: list[ServerConfig]) -> GraphFactory:
    """What many users write: connect and build the agent for every access, whatever its context."""
    model = OfflineChatModel()

    @asynccontextmanager
    async def factory(runtime: ServerRuntime[Any]) -> AsyncGenerator[Pregel[Any, Any, Any, Any], None]:
        async with Bridge(servers) as bridge:
            yield create_agent(model, tools=bridge.tools)

    return factory


async def factory_reads(env: Env) -> list[Metric]:
    """Time a read-context access of each factory, and count the connections it makes."""
    sizes = env.sizes
    stdio_events = env.workdir / "factory-stdio-events.jsonl"
    servers: list[ServerConfig] = [
        stdio_server("local", events=stdio_events),
        http_server(env.http, "remote"),
    ]
    watched = [stdio_events, env.http.events]
    runtime: ServerRuntime[Any] = server_runtime(ACCESS_CONTEXT, user=None, store=InMemoryStore())
    counted: dict[str, dict[str, int]] = {
        "bridge": {"start": 0, "handshake": 0},
        "naive": {"start": 0, "handshake": 0},
    }
    accesses = {"bridge": 0, "naive": 0}

    def block_of(name: str, factory: GraphFactory) -> Block:
        async def block(k: int) -> list[float]:
            before = offsets(watched)
            durations: list[float] = []
            for _ in range(k):
                start = time.perf_counter_ns()
                async with factory(runtime):
                    pass
                durations.append((time.perf_counter_ns() - start) / 1e6)
            for key, value in count_events(watched, since=before).items():
                counted[name][key] = counted[name].get(key, 0) + value
            accesses[name] += k
            return durations

        return block

    bridge_factory = agent_factory(servers, OfflineChatModel())
    first = time.perf_counter_ns()
    async with bridge_factory(runtime):  # the first access builds the cached graph
        pass
    first_ms = (time.perf_counter_ns() - first) / 1e6
    samples = await interleave(
        {"bridge": block_of("bridge", bridge_factory), "naive": block_of("naive", naive_factory(servers))},
        n={"bridge": sizes.reads, "naive": sizes.naive_reads},
        rounds=min(10, sizes.naive_reads),
        warmup={"bridge": 20, "naive": 1},
    )
    bridge_s, naive_s = Summary.of(samples["bridge"]), Summary.of(samples["naive"])
    title = f"Graph factory, read context ({ACCESS_CONTEXT}), stdio + HTTP server"
    bridge = Metric(
        id="factory.read.bridge",
        title=title,
        peer="mcpbridge agent_factory",
        unit="ms",
        median=bridge_s.median,
        p95=bridge_s.p95,
        n=bridge_s.n,
    )
    naive = Metric(
        id="factory.read.naive",
        title=title,
        peer="naive factory (Bridge + create_agent per access)",
        unit="ms",
        median=naive_s.median,
        p95=naive_s.p95,
        n=naive_s.n,
    )
    b, nv = counted["bridge"], counted["naive"]
    bridge.ratio = ratio_of(naive, bridge)
    bridge.checks += [
        Check("median", bridge.median, "ms", "<=", 1.0),
        Check("connections", b["handshake"] + b["start"], "", "<=", 0),
        Check("naive / bridge", None if bridge.ratio is None else bridge.ratio.value, "x", ">=", 100),
    ]
    bridge.notes = (
        f"{accesses['bridge']} accesses (warm-up included): {b['start']} server processes started, "
        f"{b['handshake']} handshakes; the first access (builds the cached graph) took {first_ms:.1f} ms"
    )
    naive.notes = (
        f"{accesses['naive']} accesses (warm-up included): {nv['start']} server processes started, "
        f"{nv['handshake']} handshakes"
    )
    return [bridge, naive]
