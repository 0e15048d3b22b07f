"""Round-trip time of a trivial call through ``mcpbridge serve`` over HTTP, against ``graph.ainvoke``.

Run from the repository root: ``python -m tests.serve.bench [calls]``. It serves
``tests/serve/graphs.py:memo`` (one node, no model, no MCP server) on 127.0.0.1,
calls it through the MCP client in both protocol eras, and prints the median and
90th percentile in milliseconds, beside the same graph invoked in-process with
an in-memory checkpointer.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from mcp import Client

from tests.integration.support import RecordFile
from tests.serve.conftest import http_client, serve_env, start_serve
from tests.serve.graphs import memo


async def timed(calls: int, call: Callable[[int], Awaitable[Any]]) -> str:
    await call(-1)  # warm up
    times: list[float] = []
    for i in range(calls):
        start = time.perf_counter()
        await call(i)
        times.append((time.perf_counter() - start) * 1000)
    p90 = statistics.quantiles(times, n=10)[-1]
    return f"median {statistics.median(times):6.2f} ms   p90 {p90:6.2f} ms"


async def through_mcp(client: Client, calls: int) -> dict[str, str]:
    """Calls that start a new thread, and calls that continue one."""
    first = await client.call_tool("memo", {"message": "hi"})
    thread_id = (first.structured_content or {})["thread_id"]

    async def new_thread(i: int) -> Any:
        return await client.call_tool("memo", {"message": "hi"})

    async def same_thread(i: int) -> Any:
        return await client.call_tool("memo", {"message": "hi", "thread_id": thread_id})

    return {"new thread": await timed(calls, new_thread), "same thread": await timed(calls, same_thread)}


async def main(calls: int) -> None:
    graph = memo.copy(update={"checkpointer": InMemorySaver()})

    async def direct(i: int) -> Any:
        config: RunnableConfig = {"configurable": {"thread_id": str(uuid.uuid4())}}
        return await graph.ainvoke({"messages": [{"role": "user", "content": "hi"}]}, config)

    print(f"graph.ainvoke (in process)            {await timed(calls, direct)}")
    with tempfile.TemporaryDirectory() as scratch:
        records = RecordFile(Path(scratch) / "calls.jsonl")
        served = start_serve(["tests.serve.graphs:memo"], Path(scratch), serve_env(records), records)
        try:
            for mode in ("auto", "legacy"):
                era = "2026-07-28" if mode == "auto" else "2025-11-25"
                async with http_client(served.url, mode=mode) as client:
                    for kind, line in (await through_mcp(client, calls)).items():
                        print(f"mcpbridge serve, HTTP, {era}, {kind:<11} {line}")
        finally:
            served.stop()


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 100)
