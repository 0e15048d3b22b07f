"""An agent served over MCP (streamable HTTP): ``mcpbridge serve`` against the Agent Server's ``/mcp``.

Both serve the same trivial one-node graph (`bench.graphs`); each call starts a
new thread. The overhead of a round trip is its median minus the median of
``graph.ainvoke`` in process (a new thread each time, in-memory checkpointer).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench._env import Env
from bench._processes import ROOT, START_TIMEOUT, stop_process, tail
from bench._stats import Block, Summary, interleave, timed
from bench.graphs import trivial
from bench.results import Check, Metric, Ratio, skipped
from tests.support.processes import free_port, http_ok, serve_command

AGENT_SERVER_START_TIMEOUT = 180.0
AGENT_SERVER_CALLS = 30
"""Fewer calls for the Agent Server: each takes about a second."""
AGENT_SERVER_ENV = {
    # Nothing but 127.0.0.1: no analytics, no version check, no tracing (as tests/support/processes.py).
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}
_READY = re.compile(r"mcpbridge: serving .* at (http://\S+)")
MESSAGE = "hi"
TITLE = "Agent over MCP (HTTP), trivial one-node graph, new thread per call"


def start_mcpbridge_serve(stack: ExitStack, directory: Path) -> str:
    """Start ``mcpbridge serve bench.graphs:trivial`` over HTTP; return the URL it prints."""
    log = directory / "mcpbridge-serve.log"
    command = [*serve_command(), "serve", "trivial=bench.graphs:trivial", "--transport", "http"]
    command += ["--host", "127.0.0.1", "--port", "0"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    stack.callback(stop_process, process)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        found = _READY.search(tail(log))
        if found:
            return found.group(1)
        if process.poll() is not None:
            raise RuntimeError(
                f"`mcpbridge serve` exited with {process.returncode}: {tail(log, 600).strip()}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"`mcpbridge serve` printed no URL within {START_TIMEOUT:g}s")
        time.sleep(0.05)  # polling interval, bounded by the deadline


def start_agent_server(stack: ExitStack, directory: Path) -> str:
    """Start ``langgraph dev`` serving the trivial graph; return its ``/mcp`` URL."""
    config = directory / "langgraph.json"
    graph = f"{ROOT / 'bench' / 'graphs.py'}:trivial"
    config.write_text(
        json.dumps({"graphs": {"trivial": graph}, "dependencies": [str(ROOT)]}), encoding="utf-8"
    )
    port = free_port()
    command = [sys.executable, "-m", "langgraph_cli", "dev", "--no-browser", "--no-reload"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--config", str(config)]
    log = directory / "agent-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=directory,
            env={**AGENT_SERVER_ENV, **os.environ},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack.callback(stop_process, process)
    deadline = time.monotonic() + AGENT_SERVER_START_TIMEOUT
    while not http_ok(f"http://127.0.0.1:{port}/ok"):
        if process.poll() is not None:
            raise RuntimeError(f"`langgraph dev` exited with {process.returncode}: {tail(log, 600).strip()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"`langgraph dev` was not ready within {AGENT_SERVER_START_TIMEOUT:g}s")
        time.sleep(0.1)  # polling interval, bounded by the deadline
    return f"http://127.0.0.1:{port}/mcp"


@asynccontextmanager
async def mcp_client(url: str, mode: str) -> AsyncGenerator[Client, None]:
    """An ``mcp`` v2 client of ``url`` in protocol ``mode``."""
    async with (
        httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=120)) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


def _calls(client: Client, name: str, arguments: dict[str, Any]) -> Block:
    async def call() -> None:
        result = await client.call_tool(name, arguments)
        if result.is_error:
            raise RuntimeError(f"{name} failed: {result.content}")

    return timed(call)


def _direct() -> Block:
    graph = trivial.copy(update={"checkpointer": InMemorySaver()})

    async def call() -> None:
        config: RunnableConfig = {"configurable": {"thread_id": str(uuid.uuid4())}}
        message = {"messages": [{"role": "user", "content": MESSAGE}]}
        await graph.ainvoke(message, config)  # pyright: ignore[reportUnknownMemberType]

    return timed(call)


async def agent_over_mcp(env: Env, *, agent_server: bool, agent_server_skipped: str = "") -> list[Metric]:
    """Round trips through ``mcpbridge serve`` (both eras) and the Agent Server's ``/mcp``."""
    blocks: dict[str, Block] = {"direct": _direct()}
    notes: dict[str, str] = {}
    problems: dict[str, str] = {}
    with ExitStack() as processes:
        async with AsyncExitStack() as clients:
            try:
                url = start_mcpbridge_serve(processes, env.workdir)
                for mode in ("auto", "legacy"):
                    client = await clients.enter_async_context(mcp_client(url, mode))
                    notes[f"mcpbridge_{mode}"] = f"protocol {client.protocol_version}"
                    blocks[f"mcpbridge_{mode}"] = _calls(client, "trivial", {"message": MESSAGE})
            except Exception as exc:  # reported as a skipped row, as the suite promises
                problems["mcpbridge"] = f"`mcpbridge serve` not available: {_first_line(exc)}"
            if not agent_server:
                problems["agent_server"] = agent_server_skipped or "Agent Server row not run"
            else:
                try:
                    url = start_agent_server(processes, env.workdir)
                    client = await clients.enter_async_context(mcp_client(url, "legacy"))
                    notes["agent_server"] = f"protocol {client.protocol_version}"
                    arguments = {"messages": [{"role": "user", "content": MESSAGE}]}
                    blocks["agent_server"] = _calls(client, "trivial", arguments)
                except Exception as exc:  # reported as a skipped row
                    problems["agent_server"] = f"Agent Server /mcp not available: {_first_line(exc)}"
            calls = env.sizes.serve_calls
            counts = {
                name: min(calls, AGENT_SERVER_CALLS) if name == "agent_server" else calls for name in blocks
            }
            samples = await interleave(blocks, n=counts, rounds=min(10, *counts.values()), warmup=3)
    return _serving_metrics(samples, notes, problems)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _serving_metrics(
    samples: dict[str, list[float]], notes: dict[str, str], problems: dict[str, str]
) -> list[Metric]:
    def metric(id: str, peer: str, key: str) -> Metric:
        s = Summary.of(samples[key])
        return Metric(
            id=id, title=TITLE, peer=peer, unit="ms", transport="http", median=s.median, p95=s.p95, n=s.n
        )

    direct = metric("serve.direct", "graph.ainvoke in process", "direct")
    direct.notes = "the floor: no transport, new thread each call (InMemorySaver)"
    metrics = [direct]
    server: Metric | None = None
    if "agent_server" in samples:
        server = metric("serve.agent_server", "Agent Server /mcp (langgraph dev)", "agent_server")
        server.checks.append(_overhead(server, direct))
        server.notes = (
            notes["agent_server"] + "; `langgraph dev` (in-memory runtime) answers each call in about 1 s"
        )
    for mode, era in (("auto", "2026-07-28 era"), ("legacy", "2025-11-25 handshake")):
        key = f"mcpbridge_{mode}"
        id = f"serve.mcpbridge.{mode}"
        if key not in samples:
            metrics.append(
                skipped(id, TITLE, f"mcpbridge serve ({era})", "ms", problems["mcpbridge"], transport="http")
            )
            continue
        served = metric(id, f"mcpbridge serve ({era})", key)
        served.checks.append(_overhead(served, direct))
        if server is not None and served.median is not None and server.median:
            served.ratio = Ratio(served.median / server.median, served.id, server.id)
        served.checks.append(
            Check("round trip / Agent Server /mcp", None if served.ratio is None else served.ratio.value, "x")
        )
        served.notes = notes[key]
        metrics.append(served)
    if server is not None:
        metrics.append(server)
    else:
        metrics.append(
            skipped(
                "serve.agent_server",
                TITLE,
                "Agent Server /mcp (langgraph dev)",
                "ms",
                problems["agent_server"],
            )
        )
    return metrics


def _overhead(metric: Metric, direct: Metric) -> Check:
    value = None if metric.median is None or direct.median is None else metric.median - direct.median
    return Check("overhead over graph.ainvoke", value, "ms")
