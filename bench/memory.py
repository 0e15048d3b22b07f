"""Memory per concurrently running run, each with two HTTP MCP servers connected.

Measured in a fresh process each time (``python -m bench.memory --url A --url B``,
which prints JSON), so that neither the suite's other sections nor the
allocator's history count: warm up with two runs, read ``VmRSS``, then hold
``--runs`` runs open at once (each has entered ``agent_factory``'s run context,
connected both servers and called a tool on each) and read ``VmRSS`` again.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from langchain_core.messages import ToolMessage
from langgraph.store.memory import InMemoryStore
from langgraph_sdk.runtime import ServerRuntime

from bench._env import Env
from bench._processes import ROOT
from bench._stats import Summary
from bench.results import Metric
from mcpbridge import HttpServer, agent_factory
from mcpbridge._compat import RUN_ACCESS, server_runtime
from mcpbridge.testing import OfflineChatModel

MESSAGE = 'call one_echo {"text": "hi"} and two_echo {"text": "hi"}'


def rss_kib() -> int:
    """This process's resident set size, in KiB (``VmRSS`` of ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def measure(urls: list[str], runs: int) -> dict[str, Any]:
    """RSS before and while ``runs`` runs are open at once (and at a first step of ``runs // 5``)."""
    servers = [HttpServer(name=name, url=url) for name, url in zip(("one", "two"), urls, strict=True)]
    factory = agent_factory(servers, OfflineChatModel())
    store = InMemoryStore()
    release = anyio.Event()
    ready = 0
    reached: dict[int, anyio.Event] = {}

    async def run(i: int, *, hold: bool) -> None:
        nonlocal ready
        runtime: ServerRuntime[Any] = server_runtime(RUN_ACCESS, user=None, store=store)
        async with factory(runtime) as graph:
            state: dict[str, Any] = await graph.ainvoke(  # pyright: ignore[reportUnknownMemberType]
                {"messages": [("user", MESSAGE)]}, {"configurable": {"thread_id": f"t{i}"}}
            )
            tool_messages: list[ToolMessage] = [m for m in state["messages"] if isinstance(m, ToolMessage)]
            if len(tool_messages) != 2 or any(m.status != "success" for m in tool_messages):
                raise RuntimeError(f"run {i} did not call both servers: {state['messages']}")
            ready += 1
            if ready in reached:
                reached[ready].set()
            if hold:
                await release.wait()

    for i in range(2):  # warm up: imports, caches, first connections
        await run(-1 - i, hold=False)
    ready = 0
    gc.collect()
    baseline = rss_kib()
    first_step = max(1, runs // 5)
    reached = {first_step: anyio.Event(), runs: anyio.Event()}
    at_first_step = at_runs = 0
    async with anyio.create_task_group() as group:
        for i in range(first_step):
            group.start_soon(partial(run, i, hold=True))
        await reached[first_step].wait()
        gc.collect()
        at_first_step = rss_kib()
        for i in range(first_step, runs):
            group.start_soon(partial(run, i, hold=True))
        await reached[runs].wait()
        gc.collect()
        at_runs = rss_kib()
        release.set()
    return {
        "runs": runs,
        "first_step": first_step,
        "baseline_kib": baseline,
        "first_step_kib": at_first_step,
        "runs_kib": at_runs,
    }


def _mb(kib: float) -> float:
    return kib * 1024 / 1e6


async def memory_per_run(env: Env) -> list[Metric]:
    """Run `measure` in fresh processes and report the RSS growth per open run."""
    runs = env.sizes.memory_runs
    per_run: list[float] = []
    slopes: list[float] = []
    for _ in range(env.sizes.memory_processes):
        command = [
            sys.executable,
            "-m",
            "bench.memory",
            "--url",
            env.http.url,
            "--url",
            env.http2.url,
            "--runs",
            str(runs),
        ]
        with anyio.fail_after(600):
            done = await anyio.run_process(command, cwd=ROOT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"bench.memory exited with {done.returncode}:\n{done.stderr.decode()[-3000:]}")
        data: dict[str, Any] = json.loads(done.stdout)
        per_run.append(_mb((data["runs_kib"] - data["baseline_kib"]) / runs))
        slopes.append(_mb((data["runs_kib"] - data["first_step_kib"]) / max(1, runs - data["first_step"])))
    s = Summary.of(per_run)
    slope = Summary.of(slopes)
    return [
        Metric(
            id="memory.http2.per_run",
            title=f"RSS growth per concurrently running run (two HTTP servers), at {runs} runs",
            peer="mcpbridge agent_factory",
            unit="MB/run",
            transport="http",
            median=s.median,
            p95=s.p95,
            n=s.n,
            notes=f"(VmRSS with {runs} runs open - VmRSS after warm-up) / {runs}, "
            "in fresh processes (n = processes); "
            f"marginal cost between {max(1, runs // 5)} and {runs} open runs: {slope.median:.3f} MB/run",
        )
    ]


def main() -> None:
    """Measure and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", action="append", required=True, help="an HTTP server (give two)")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    result = anyio.run(measure, list(args.url), args.runs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
