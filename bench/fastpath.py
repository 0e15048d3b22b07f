"""Whether `MCPTool`'s fast tool-call path pays: mcpbridge with and without it, against the floor.

``python -m bench.fastpath [--calls N] [--repeats R]`` calls ``echo`` over stdio through
one LangGraph ``ToolNode``, interleaved: the thinnest MCP tool (`bench.calls.ThinTool`,
the raw client's call and nothing else), mcpbridge as shipped (no callback handler
listens, so the fast path answers), and mcpbridge with the fast path switched off (its
listener check answering "someone listens", so every call takes the path of a listened
call: LangChain's callback manager configured, told of the call's start and end). Each
repetition is a fresh interleaved run; the medians and the ratios of each repetition are
printed as JSON, then their spread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Generator, Sequence
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import anyio
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

import mcpbridge.tools
from bench._env import ARGS, stdio_server
from bench._processes import ROOT
from bench._stats import Block, Summary, interleave, timed
from bench._toolnode import ToolNodeCaller
from bench.calls import ThinTool
from mcpbridge import Bridge


@contextmanager
def fast_path_off() -> Generator[None]:
    """Make `MCPTool.ainvoke` take the path of a listened call, as when a callback handler listens."""
    check = mcpbridge.tools.no_listeners

    def listened(tool: BaseTool, config: RunnableConfig | None) -> bool:
        return False

    mcpbridge.tools.no_listeners = listened
    try:
        yield
    finally:
        mcpbridge.tools.no_listeners = check


async def measure(calls: int, repeats: int) -> list[dict[str, Any]]:
    """The median call time (ms) of each peer, and the ratios, in each of ``repeats`` runs."""
    runs: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        server = stdio_server()
        params = StdioServerParameters(command=server.command, args=list(server.args), cwd=ROOT)
        raw = await stack.enter_async_context(Client(stdio_client(params)))
        bridge = await stack.enter_async_context(Bridge([server]))
        bridged = ToolNodeCaller(bridge.tools)
        thin = ToolNodeCaller([ThinTool(client=raw)])

        async def without_fast_path() -> None:
            with fast_path_off():
                await bridged.call("echo", ARGS)

        blocks: dict[str, Block] = {
            "thin": timed(lambda: thin.call("echo", ARGS)),
            "fast": timed(lambda: bridged.call("echo", ARGS)),
            "slow": timed(without_fast_path),
        }
        for _ in range(repeats):
            samples = await interleave(blocks, n=calls, rounds=max(2, calls // 20), warmup=20)
            medians = {name: Summary.of(values).median for name, values in samples.items()}
            runs.append(
                {
                    "median_ms": {name: round(value, 4) for name, value in medians.items()},
                    "fast/thin": round(medians["fast"] / medians["thin"], 3),
                    "slow/thin": round(medians["slow"] / medians["thin"], 3),
                    "slow/fast": round(medians["slow"] / medians["fast"], 3),
                    "slow-fast_ms": round(medians["slow"] - medians["fast"], 4),
                }
            )
    return runs


def spread(runs: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Median and range over the repetitions, of each ratio and difference."""
    keys = [key for key in runs[0] if key != "median_ms"]
    out: dict[str, str] = {}
    for key in keys:
        values = [run[key] for run in runs]
        out[key] = f"{statistics.median(values):g} ({min(values):g}-{max(values):g})"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m bench.fastpath", description=__doc__)
    parser.add_argument("--calls", type=int, default=300, help="timed calls per peer and repetition")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions (default: 5)")
    args = parser.parse_args(argv)
    runs = anyio.run(measure, args.calls, args.repeats)
    for run in runs:
        print(json.dumps(run))
    print(json.dumps({"over": f"{args.repeats} repetitions of {args.calls} calls", **spread(runs)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
