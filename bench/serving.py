"""An agent served over MCP (HTTP): ``mcpbridge serve`` against its floor and the Agent Server's ``/mcp``.

``mcpbridge serve`` and ``langgraph dev`` serve the same trivial one-node graph
(`bench.graphs`); each call starts a new thread. ``mcpbridge serve`` is judged
against its floor, measured in the same interleaved rounds: a raw MCP tool round
trip to the thinnest MCP server of the graph, whose tool runs ``graph.ainvoke``
of the same graph with the checkpointer ``mcpbridge serve`` uses by default (a
new ``InMemorySaver`` thread each call) and answers a constant
(`bench.constant_server`, served the same way and in the same HTTP mode). The
target is round trip / floor <= 1.25, as a ratio of medians, with its spread
over the rounds.

The floor's two parts, a round trip to a server that answers a constant
(``serve.raw.*``) and ``graph.ainvoke`` in process (``serve.direct``), are also
measured apart, and the sum of their medians is reported beside it. That sum is
below what the two cost together: run in a block of its own, call after call,
``graph.ainvoke`` finds the caches warm from the call before, which a served
graph never does (measured: 0.97-1.06 ms a call in its own block, 1.15-1.26 ms
right after an MCP round trip in the same process).

The Agent Server is a reported peer, measured after those rounds with nothing
else running: its calls take about a second each, and its blocks between the
others' made their times swing (per-round ratios to the floor of the time, the sum
measured apart: 0.90-1.95 with it interleaved, 1.13-1.17 without).
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
from bench._stats import Block, Summary, interleave, round_ratios, timed
from bench.calls import spread_checks, spread_note
from bench.constant_server import GRAPH as GRAPH_TOOL
from bench.constant_server import NAME as CONSTANT_TOOL
from bench.graphs import trivial
from bench.results import Check, Metric, ratio_of, skipped
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
TARGET = 1.25
"""Round trip through ``mcpbridge serve`` / (raw MCP round trip + ``graph.ainvoke``), ratio of medians."""
ROUNDS = 10
_SERVE_READY = re.compile(r"mcpbridge: serving .* at (http://\S+)")
_CONSTANT_READY = re.compile(r"constant: serving at (http://\S+)")
MESSAGE = "hi"
TITLE = "Agent over MCP (HTTP), trivial one-node graph, new thread per call"
MODES = (("auto", "2026-07-28 era"), ("legacy", "2025-11-25 handshake"))
"""The client's protocol modes, each measured against the floor in the same mode."""


def _start_printing_url(
    stack: ExitStack, command: list[str], log: Path, ready: re.Pattern[str], what: str
) -> str:
    """Start ``command`` from the repository root; return the URL it prints (as ``ready`` finds it)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    stack.callback(stop_process, process)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        found = ready.search(tail(log))
        if found:
            return found.group(1)
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {tail(log, 600).strip()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} printed no URL within {START_TIMEOUT:g}s")
        time.sleep(0.05)  # polling interval, bounded by the deadline


def start_mcpbridge_serve(stack: ExitStack, directory: Path) -> str:
    """Start ``mcpbridge serve bench.graphs:trivial`` over HTTP; return the URL it prints."""
    command = [*serve_command(), "serve", "trivial=bench.graphs:trivial", "--transport", "http"]
    command += ["--host", "127.0.0.1", "--port", "0"]
    return _start_printing_url(
        stack, command, directory / "mcpbridge-serve.log", _SERVE_READY, "`mcpbridge serve`"
    )


def served_mode() -> dict[str, bool]:
    """The HTTP mode ``mcpbridge serve`` serves the bench graph in (its defaults), for the floor to match."""
    from mcpbridge.serving.server import AgentMCPServer  # needs the serve extra, as `mcpbridge serve` does

    server = AgentMCPServer.from_graphs({"trivial": trivial})
    return {"stateless": server.stateless, "json_response": False}  # `--json-response` is off by default


def start_constant_server(stack: ExitStack, directory: Path, *, stateless: bool, json_response: bool) -> str:
    """Start `bench.constant_server` in the given HTTP mode; return its URL."""
    command = [sys.executable, "-m", "bench.constant_server"]
    command += ["--stateless"] if stateless else []
    command += ["--json-response"] if json_response else []
    return _start_printing_url(
        stack, command, directory / "constant-server.log", _CONSTANT_READY, "the constant MCP server"
    )


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
    """Round trips through ``mcpbridge serve`` and its floor (both eras), and the Agent Server's ``/mcp``."""
    blocks: dict[str, Block] = {"direct": _direct()}
    notes: dict[str, str] = {}
    problems: dict[str, str] = {}
    mode = served_mode()
    with ExitStack() as processes:
        async with AsyncExitStack() as clients:
            try:
                url = start_constant_server(processes, env.workdir, **mode)
                for protocol, _ in MODES:
                    client = await clients.enter_async_context(mcp_client(url, protocol))
                    notes[f"raw_{protocol}"] = f"protocol {client.protocol_version}"
                    blocks[f"raw_{protocol}"] = _calls(client, CONSTANT_TOOL, {"message": MESSAGE})
                    blocks[f"floor_{protocol}"] = _calls(client, GRAPH_TOOL, {"message": MESSAGE})
            except Exception as exc:  # reported as a skipped row, as the suite promises
                problems["raw"] = f"constant MCP server not available: {_first_line(exc)}"
            try:
                url = start_mcpbridge_serve(processes, env.workdir)
                for protocol, _ in MODES:
                    client = await clients.enter_async_context(mcp_client(url, protocol))
                    notes[f"mcpbridge_{protocol}"] = f"protocol {client.protocol_version}"
                    blocks[f"mcpbridge_{protocol}"] = _calls(client, "trivial", {"message": MESSAGE})
            except Exception as exc:  # reported as a skipped row, as the suite promises
                problems["mcpbridge"] = f"`mcpbridge serve` not available: {_first_line(exc)}"
            calls = env.sizes.serve_calls
            rounds = min(ROUNDS, calls)
            samples = await interleave(blocks, n=calls, rounds=rounds, warmup=3)
    if not agent_server:
        problems["agent_server"] = agent_server_skipped or "Agent Server row not run"
    else:
        try:
            samples["agent_server"], notes["agent_server"] = await _agent_server_calls(
                env, min(env.sizes.serve_calls, AGENT_SERVER_CALLS)
            )
        except Exception as exc:  # reported as a skipped row
            problems["agent_server"] = f"Agent Server /mcp not available: {_first_line(exc)}"
    http_mode = ", ".join(
        [
            "stateless" if mode["stateless"] else "sessions",
            "JSON" if mode["json_response"] else "event streams",
        ]
    )
    return _serving_metrics(samples, notes, problems, rounds, http_mode)


async def _agent_server_calls(env: Env, n: int) -> tuple[list[float], str]:
    """``n`` timed calls of the Agent Server's ``/mcp`` (after 3 untimed), and its protocol."""
    with ExitStack() as processes:
        url = start_agent_server(processes, env.workdir)
        async with mcp_client(url, "legacy") as client:
            block = _calls(client, "trivial", {"messages": [{"role": "user", "content": MESSAGE}]})
            await block(3)
            return await block(n), f"protocol {client.protocol_version}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _serving_metrics(
    samples: dict[str, list[float]],
    notes: dict[str, str],
    problems: dict[str, str],
    rounds: int,
    http_mode: str,
) -> list[Metric]:
    def metric(id: str, peer: str, key: str) -> Metric:
        s = Summary.of(samples[key])
        return Metric(
            id=id, title=TITLE, peer=peer, unit="ms", transport="http", median=s.median, p95=s.p95, n=s.n
        )

    direct = metric("serve.direct", "graph.ainvoke in process", "direct")
    direct.notes = "no transport, new thread each call (InMemorySaver, as `mcpbridge serve` by default)"
    metrics = [direct]
    server: Metric | None = None
    if "agent_server" in samples:
        server = metric("serve.agent_server", "Agent Server /mcp (langgraph dev)", "agent_server")
        server.checks.append(_overhead(server, direct))
        server.notes = (
            notes["agent_server"] + "; `langgraph dev` (in-memory runtime) answers each call in about 1 s"
        )
    for protocol, era in MODES:
        raw_key, floor_key, key = f"raw_{protocol}", f"floor_{protocol}", f"mcpbridge_{protocol}"
        raw_id, floor_id, id = (
            f"serve.raw.{protocol}",
            f"serve.floor.{protocol}",
            f"serve.mcpbridge.{protocol}",
        )
        raw_peer, floor_peer = (
            f"raw MCP tool round trip ({era})",
            f"raw MCP round trip + graph.ainvoke ({era})",
        )
        floor: Metric | None = None
        apart: float | None = None
        if raw_key in samples:
            raw = metric(raw_id, raw_peer, raw_key)
            raw.notes = (
                f"{notes[raw_key]}; mcp Client -> low-level MCP server answering a constant, "
                f"served as `mcpbridge serve` is ({http_mode})"
            )
            floor = metric(floor_id, floor_peer, floor_key)
            floor.notes = (
                f"the floor of `mcpbridge serve`: {notes[raw_key]}; mcp Client -> low-level MCP server whose "
                "tool runs graph.ainvoke of the same graph (a new InMemorySaver thread each call) and "
                f"answers a constant, served as `mcpbridge serve` is ({http_mode})"
            )
            assert raw.median is not None and direct.median is not None
            apart = raw.median + direct.median
            floor.checks.append(Check(f"median of {raw_id} + median of serve.direct", apart, "ms"))
            metrics += [raw, floor]
        else:
            metrics += [
                skipped(raw_id, TITLE, raw_peer, "ms", problems["raw"], transport="http"),
                skipped(floor_id, TITLE, floor_peer, "ms", problems["raw"], transport="http"),
            ]
        if key not in samples:
            metrics.append(
                skipped(id, TITLE, f"mcpbridge serve ({era})", "ms", problems["mcpbridge"], transport="http")
            )
            continue
        served = metric(id, f"mcpbridge serve ({era})", key)
        served.checks.append(_overhead(served, direct))
        name = "round trip / (raw MCP round trip + graph.ainvoke)"
        spread: list[float] = []
        if floor is not None:
            served.ratio = ratio_of(served, floor)
            spread = round_ratios(samples[key], samples[floor_key], rounds)
        served.checks += [
            Check(name, None if served.ratio is None else served.ratio.value, "x", "<=", TARGET),
            *spread_checks(name, spread),
        ]
        if apart is not None and served.median is not None:
            served.checks.append(
                Check(
                    "round trip / (median raw round trip + median graph.ainvoke, measured apart)",
                    served.median / apart,
                    "x",
                )
            )
        vs_server = None if server is None else ratio_of(served, server)
        served.checks.append(
            Check("round trip / Agent Server /mcp", None if vs_server is None else vs_server.value, "x")
        )
        served.notes = notes[key] + (
            "; " + spread_note(spread) if floor is not None else "; no floor measured"
        )
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
