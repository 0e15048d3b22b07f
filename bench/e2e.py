"""One tool-calling run end to end through ``langgraph dev``: mcpbridge's factory beside ``langchain.mcp``.

Two Agent Servers run at once, each from its own venv: one serves
``bench/e2e_graphs.py:bridge`` (`agent_factory` with its default settings), the
other ``bench/langchain_mcp_graph.py:make_graph`` (a factory opening
``MCPAdapter`` for each run). A run, timed as a user of ``langgraph-sdk`` sees it,
is: create a thread, run the graph on it with a message that makes the offline
model call the bench server's ``echo`` tool over stdio once, and wait for the
answer. The first run of each server is reported apart; later runs are
interleaved in rounds of alternating order.

From each Agent Server's own log, the "Slow graph load" lines of those runs are
counted (a warning past 100 ms of factory entry, an error past 250 ms), and from
the bench server's own records, the processes it started per run.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.to_thread
from langgraph_sdk import get_client

from bench import _langchain_mcp
from bench._agent_server import ROOT, SlowLoad, Spec, start_all
from bench._agent_server import slow_loads as read_slow_loads
from bench._env import Env
from bench._processes import count_events
from bench._stats import Block, Summary, interleave, round_ratios
from bench.calls import spread_checks, spread_note
from bench.e2e_graphs import BRIDGE_MESSAGE, EVENTS_ENV
from bench.langchain_mcp_graph import PYTHON_ENV
from bench.results import Check, Metric, ratio_of, skipped

TITLE = "Tool-calling run through langgraph dev (new thread, run, one stdio tool call, answer)"
SLOW_TITLE = "Slow graph load lines in the Agent Server's log, per run (100 ms warning, 250 ms error)"
BRIDGE = "mcpbridge agent_factory (default settings)"
LANGCHAIN_MCP = "langchain.mcp in a factory (MCPAdapter per run)"
CLIENT_TIMEOUT = (10.0, 120.0, 10.0, 10.0)
RUN_TIMEOUT = 120.0


@dataclass(slots=True)
class Peer:
    """One Agent Server's graph, its client and what its runs left behind."""

    key: str
    label: str
    graph: str
    message: str
    expect: str
    client: Any
    """A ``langgraph_sdk`` client (its call signatures are typed loosely)."""
    log: Path
    events: Path
    run_ids: list[str] = field(default_factory=list[str])

    async def run(self) -> float:
        """One run, timed from the thread's creation to the answer; in milliseconds."""
        with anyio.fail_after(RUN_TIMEOUT):
            started = anyio.current_time()
            thread = await self.client.threads.create()
            state: Any = await self.client.runs.wait(
                thread["thread_id"],
                self.graph,
                input={"messages": [{"role": "user", "content": self.message}]},
                raise_error=True,
            )
            elapsed = (anyio.current_time() - started) * 1000
            answer = _last_text(state)
            if self.expect not in answer:
                raise RuntimeError(f"{self.label}: unexpected answer {answer!r}")
            runs = await self.client.runs.list(thread["thread_id"])
        self.run_ids += [r["run_id"] for r in runs]
        return elapsed

    def block(self) -> Block:
        """Runs as a block of `bench._stats.interleave`."""

        async def block(k: int) -> list[float]:
            return [await self.run() for _ in range(k)]

        return block


def _last_text(state: Any) -> str:
    messages: Any = cast(Any, state).get("messages") if isinstance(state, dict) else None
    if not messages:
        return "(no messages)"
    content: Any = messages[-1].get("content", "")
    return content if isinstance(content, str) else json.dumps(content)


async def end_to_end(
    env: Env,
    *,
    agent_server: bool = True,
    agent_server_skipped: str = "",
    langchain_mcp: bool = True,
    fresh_venv: bool = False,
) -> list[Metric]:
    """Interleaved end-to-end runs of both peers, and the slow graph loads their servers logged."""
    if not agent_server:
        return skipped_rows(agent_server_skipped or "Agent Server not run")
    specs = [
        Spec(
            "bridge",
            Path(sys.executable),
            {"bridge": f"{ROOT / 'bench' / 'e2e_graphs.py'}:bridge"},
            env={EVENTS_ENV: str(env.workdir / "e2e-bridge-events.jsonl")},
        )
    ]
    skip: str | None = None if langchain_mcp else "skipped by --no-langchain-mcp"
    if skip is None:
        try:
            python = await anyio.to_thread.run_sync(lambda: _langchain_mcp.ensure(fresh=fresh_venv))
            specs.append(
                Spec(
                    "langchain_mcp",
                    python,
                    {"langchain_mcp": f"{ROOT / 'bench' / 'langchain_mcp_graph.py'}:make_graph"},
                    env={
                        EVENTS_ENV: str(env.workdir / "e2e-langchain-mcp-events.jsonl"),
                        PYTHON_ENV: sys.executable,
                    },
                )
            )
        except Exception as exc:  # the bridge still runs; the rows say why
            skip = f"langchain.mcp venv unavailable: {str(exc).strip().splitlines()[0][:300]}"
    sizes = env.sizes
    with ExitStack() as processes:
        servers = await anyio.to_thread.run_sync(lambda: start_all(processes, env.workdir, specs))
        peers: list[Peer] = []
        for server in servers:
            key = server.spec.name
            client = get_client(url=server.url, api_key=None, timeout=CLIENT_TIMEOUT)
            peers.append(
                Peer(
                    key,
                    BRIDGE if key == "bridge" else LANGCHAIN_MCP,
                    key,
                    BRIDGE_MESSAGE if key == "bridge" else "hi",
                    "echo returned: hi",
                    client,
                    server.log,
                    Path(server.spec.env[EVENTS_ENV]),
                )
            )
        try:
            first = {peer.key: await peer.run() for peer in peers}
            samples = await interleave(
                {peer.key: peer.block() for peer in peers},
                n=sizes.e2e_runs - 1,
                rounds=sizes.e2e_rounds,
                warmup=0,
            )
        finally:
            for peer in peers:
                await peer.client.aclose()
    return _metrics(peers, first, samples, sizes.e2e_rounds, skip)


def skipped_rows(reason: str) -> list[Metric]:
    """The section's rows, not measured, with the reason."""
    rows = [
        (f"e2e.{key}", TITLE, label, "ms")
        for key, label in (("bridge", BRIDGE), ("langchain_mcp", LANGCHAIN_MCP))
    ]
    rows += [
        (f"e2e.{key}.slow_loads", SLOW_TITLE, label, "")
        for key, label in (("bridge", BRIDGE), ("langchain_mcp", LANGCHAIN_MCP))
    ]
    return [skipped(id, title, peer, unit, reason, transport="stdio") for id, title, peer, unit in rows]


def _metrics(
    peers: Sequence[Peer],
    first: dict[str, float],
    samples: dict[str, list[float]],
    rounds: int,
    skip: str | None,
) -> list[Metric]:
    by_key = {peer.key: peer for peer in peers}
    rows: dict[str, Metric] = {}
    for peer in peers:
        s = Summary.of(samples[peer.key])
        row = Metric(
            id=f"e2e.{peer.key}",
            title=TITLE,
            peer=peer.label,
            unit="ms",
            transport="stdio",
            median=s.median,
            p95=s.p95,
            n=s.n,
        )
        runs = len(peer.run_ids)
        starts = count_events([peer.events])["start"]
        row.checks += [
            Check("first run", first[peer.key], "ms"),
            Check("later runs / first run", s.median / first[peer.key], "x"),
            Check("stdio server processes started per run", starts / runs if runs else None, ""),
        ]
        row.notes = "later runs (the first is apart); langgraph-sdk threads.create + runs.wait"
        rows[peer.key] = row
    metrics = [rows["bridge"]]
    if "langchain_mcp" in rows:
        lc = rows["langchain_mcp"]
        lc.ratio = ratio_of(rows["bridge"], lc)
        spread = round_ratios(samples["bridge"], samples["langchain_mcp"], rounds)
        name = "bridge / langchain.mcp"
        value = None if lc.ratio is None else lc.ratio.value
        lc.checks = [Check(name, value, "x", "<=", 1.0), *spread_checks(name, spread), *lc.checks]
        lc.notes += "; " + spread_note(spread)
        metrics.append(lc)
    else:
        metrics.append(skipped("e2e.langchain_mcp", TITLE, LANGCHAIN_MCP, "ms", skip or "not run"))
    for key, label in (("bridge", BRIDGE), ("langchain_mcp", LANGCHAIN_MCP)):
        peer = by_key.get(key)
        if peer is None:
            metrics.append(skipped(f"e2e.{key}.slow_loads", SLOW_TITLE, label, "", skip or "not run"))
            continue
        metrics.append(_slow_row(peer, read_slow_loads(peer.log)))
    return metrics


def _slow_row(peer: Peer, lines: Sequence[SlowLoad]) -> Metric:
    """The slow-load lines of a peer's runs: per run overall, and for the first run and later ones."""
    first, later = peer.run_ids[0], set(peer.run_ids[1:])
    mine = [line for line in lines if line.run_id in later]
    at_first = [line for line in lines if line.run_id == first]
    runs = len(peer.run_ids)
    errors = sum(line.level == "error" for line in mine)
    warnings = sum(line.level == "warning" for line in mine)
    checks = [
        Check("first run: errors", sum(line.level == "error" for line in at_first), ""),
        Check("first run: warnings", sum(line.level == "warning" for line in at_first), ""),
        Check(f"later runs ({runs - 1}): errors", errors, ""),
        Check(f"later runs ({runs - 1}): warnings", warnings, ""),
    ]
    if at_first:
        checks.append(Check("first run: logged load", at_first[0].ms, "ms"))
    if mine:
        checks.append(Check("later runs: median logged load", statistics.median(x.ms for x in mine), "ms"))
    elsewhere = sum(line.run_id is None for line in lines)
    return Metric(
        id=f"e2e.{peer.key}.slow_loads",
        title=SLOW_TITLE,
        peer=peer.label,
        unit="",
        transport="stdio",
        median=(errors + warnings + len(at_first)) / runs,
        n=runs,
        checks=checks,
        notes=f"counted from the Agent Server's own log over {runs} runs"
        + (f"; {elsewhere} more outside runs (reads)" if elsewhere else ""),
    )
