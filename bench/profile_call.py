"""What one tool call costs the client, counted rather than timed: Python calls and CPU per call.

``python -m bench.profile_call [--transport memory|stdio|http|all] [--calls N] [--top K]``
calls ``echo`` through one LangGraph ``ToolNode`` for mcpbridge and for the thinnest MCP
tool (`bench.calls.ThinTool`), on the same server: in this process (``memory``, the
default), over stdio, or over streamable HTTP. For each it prints the Python function
calls per call (``cProfile``: the same on a busy machine) and this process's CPU time per
call (``time.process_time`` over alternating rounds, the lowest and the median: steadier
than wall time when other processes compete for the cores). With ``--top K``, the K
functions whose calls per call differ most between the two, bridge minus thinnest.

With ``--instructions`` (needs valgrind), each peer's calls run again under callgrind,
which counts the machine instructions this process executes for them: the same count
however busy the machine is (the server's, over stdio and HTTP, are not counted).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from bench._env import ARGS, stdio_server
from bench._hosting import side_by_side
from bench._processes import ROOT, start_http_servers
from bench._toolnode import ToolNodeCaller, text_of
from bench.calls import ThinTool
from bench.servers import build_server
from mcpbridge import Bridge, HttpServer, MemoryServer, ServerConfig

TRANSPORTS = ("memory", "stdio", "http")
ROUNDS = 31

Call = Callable[[], Awaitable[Any]]
FunctionKey = tuple[str, int, str]


@asynccontextmanager
async def peers(transport: str, stack: ExitStack) -> AsyncGenerator[tuple[Call, Call], None]:
    """The bridge's and the thinnest tool's ``echo`` call through a ``ToolNode``, on one server."""
    config: ServerConfig
    if transport == "memory":
        server = build_server()
        config = MemoryServer(name="bench", server=server)
        raw_client = Client(server)
    elif transport == "stdio":
        config = stdio_server()
        params = StdioServerParameters(command=config.command, args=list(config.args), cwd=ROOT)
        raw_client = Client(stdio_client(params))
    else:
        directory = Path(stack.enter_context(TemporaryDirectory()))
        [process] = start_http_servers(stack, directory, 1)
        config = HttpServer(name="bench", url=process.url)
        raw_client = _http_client(process.url)
    async with side_by_side(raw_client, Bridge([config])) as (raw, bridge):
        bridged, thin = ToolNodeCaller(bridge.tools), ToolNodeCaller([ThinTool(client=raw)])
        meta = json.loads(text_of(await bridged.call("meta", {})))
        if not meta.get("dev.mcpbridge/thread_id"):
            raise RuntimeError(f"the run's identity did not reach the server: {meta}")
        yield (lambda: bridged.call("echo", ARGS)), (lambda: thin.call("echo", ARGS))


@asynccontextmanager
async def _http_client(url: str) -> AsyncGenerator[Client, None]:
    async with (
        httpx2.AsyncClient() as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def _repeat(call: Call, n: int) -> None:
    for _ in range(n):
        await call()


async def cpu_per_call(call: Call, n: int) -> float:
    """This process's CPU microseconds per call, over ``n`` calls."""
    start = time.process_time()
    await _repeat(call, n)
    return (time.process_time() - start) / n * 1e6


async def profiled(call: Call, n: int) -> pstats.Stats:
    """The profile of ``n`` calls."""
    profile = cProfile.Profile()
    profile.enable()
    await _repeat(call, n)
    profile.disable()
    return pstats.Stats(profile)


def _calls_by_function(stats: pstats.Stats, n: int) -> dict[FunctionKey, float]:
    table: dict[FunctionKey, tuple[Any, ...]] = stats.stats  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
    return {key: value[1] / n for key, value in table.items()}


def _name(key: FunctionKey) -> str:
    file, line, function = key
    if file == "~":
        return function
    parts = Path(file).parts
    short = (
        "/".join(parts[-2:])
        if "site-packages" not in parts
        else "/".join(parts[parts.index("site-packages") + 1 :])
    )
    return f"{short}:{line}({function})"


async def measure(transport: str, calls: int, top: int) -> dict[str, Any]:
    """Calls and CPU per call of both peers on ``transport``; with ``top``, the largest differences."""
    with ExitStack() as stack:
        async with peers(transport, stack) as (bridged, thin):
            for call in (bridged, thin):
                await _repeat(call, 50)
            # What was made so far (imports, sessions) is never collected: a full collection's cost
            # would otherwise land on whichever peer's calls it interrupts.
            gc.collect()
            gc.freeze()
            stats = {
                name: await profiled(call, calls) for name, call in (("bridge", bridged), ("thin", thin))
            }
            cpu: dict[str, list[float]] = {"bridge": [], "thin": []}
            for i in range(ROUNDS):  # alternating, each first in turn: a busy spell hits both alike
                order = (
                    (("bridge", bridged), ("thin", thin)) if i % 2 else (("thin", thin), ("bridge", bridged))
                )
                for name, call in order:
                    cpu[name].append(await cpu_per_call(call, calls))
    per_call = {name: s.total_calls / calls for name, s in stats.items()}  # pyright: ignore[reportAttributeAccessIssue]
    low = {name: min(values) for name, values in cpu.items()}
    median = {name: statistics.median(values) for name, values in cpu.items()}
    differences = [b - t for b, t in zip(cpu["bridge"], cpu["thin"], strict=True)]
    report: dict[str, Any] = {
        "transport": transport,
        "python_calls_per_call": {k: round(v, 1) for k, v in per_call.items()},
        "cpu_us_per_call_min": {k: round(v, 1) for k, v in low.items()},
        "cpu_us_per_call_median": {k: round(v, 1) for k, v in median.items()},
        "bridge_minus_thin": {
            "python_calls": round(per_call["bridge"] - per_call["thin"], 1),
            "cpu_us_min": round(low["bridge"] - low["thin"], 1),
            "cpu_us_median_of_pairs": round(statistics.median(differences), 1),
        },
        "cpu_ratio_min": round(low["bridge"] / low["thin"], 3),
    }
    if top:
        bridge = _calls_by_function(stats["bridge"], calls)
        thin_calls = _calls_by_function(stats["thin"], calls)
        diff = {k: bridge.get(k, 0.0) - thin_calls.get(k, 0.0) for k in bridge.keys() | thin_calls.keys()}
        ranked = sorted(diff.items(), key=lambda item: -abs(item[1]))[:top]
        report["top_differences"] = [f"{d:+.1f} {_name(k)}" for k, d in ranked if d]
    return report


def _callgrind(*command: str) -> None:
    subprocess.run(["callgrind_control", *command, str(os.getpid())], check=True, capture_output=True)


async def count_under_callgrind(transport: str, peer: str, calls: int) -> None:
    """Run ``calls`` calls of ``peer`` with callgrind's counting on (this process runs under callgrind)."""
    with ExitStack() as stack:
        async with peers(transport, stack) as (bridged, thin):
            call = bridged if peer == "bridge" else thin
            await _repeat(call, 20)
            gc.collect()
            gc.freeze()
            _callgrind("-z")
            _callgrind("-i", "on")
            await _repeat(call, calls)
            _callgrind("-i", "off")
            _callgrind("-d")


def instructions(transport: str, calls: int) -> dict[str, Any]:
    """Instructions per call of each peer on ``transport``, counted by callgrind in a process of its own."""
    counts: dict[str, float] = {}
    with TemporaryDirectory() as directory:
        for peer in ("bridge", "thin"):
            out = Path(directory) / peer
            command = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}.%p",
                sys.executable,
                "-m",
                "bench.profile_call",
                "--transport",
                transport,
                "--calls",
                str(calls),
                "--count",
                peer,
            ]
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
            [dump] = Path(directory).glob(f"{peer}.*.1")
            totals = [line for line in dump.read_text().splitlines() if line.startswith("totals:")]
            counts[peer] = int(totals[0].split()[1]) / calls
    return {
        "transport": transport,
        "instructions_per_call": {k: round(v) for k, v in counts.items()},
        "bridge_minus_thin": round(counts["bridge"] - counts["thin"]),
        "ratio": round(counts["bridge"] / counts["thin"], 3),
    }


def main(argv: list[str] | None = None) -> None:
    """Print one JSON report per transport."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile_call", description=__doc__)
    parser.add_argument("--transport", choices=(*TRANSPORTS, "all"), default="memory")
    parser.add_argument("--calls", type=int, default=100, help="calls per profile and per CPU round")
    parser.add_argument("--top", type=int, default=0, help="list the K functions that differ most")
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    parser.add_argument("--count", choices=("bridge", "thin"), help=argparse.SUPPRESS)  # under callgrind
    args = parser.parse_args(argv)
    if args.count:
        anyio.run(count_under_callgrind, args.transport, args.count, args.calls)
        return
    transports = TRANSPORTS if args.transport == "all" else (args.transport,)
    for transport in transports:
        if args.instructions:
            report = instructions(transport, args.calls)
        else:
            report = anyio.run(measure, transport, args.calls, args.top)
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
