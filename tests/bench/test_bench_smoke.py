"""The benchmark suite's machinery, with a few repetitions: ``python -m bench --quick``.

It starts the bench servers, runs every section but the adapters venv and the
Agent Server (whose ``e2e`` and ``scaling`` sections are rows skipped by ``--quick``;
``langchain.mcp`` runs, in ``bench/.venv-langchain-mcp``, built once and reused),
and must write results that match their schema. Timings are not
asserted: they say nothing on a shared machine with so few repetitions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import table
from bench.results import validate

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

MEASURED = {
    "call.stdio.raw",
    "call.stdio.bridge",
    "call.stdio.bridge_tool",
    "call.stdio.toolnode_floor",
    "call.stdio.local_toolnode",
    "concurrent.stdio.raw",
    "concurrent.stdio.bridge",
    "concurrent.stdio.toolnode_floor",
    "concurrent.stdio.local_toolnode",
    "call.http.raw",
    "call.http.bridge",
    "call.http.bridge_tool",
    "call.http.toolnode_floor",
    "call.http.local_toolnode",
    "concurrent.http.raw",
    "concurrent.http.bridge",
    "concurrent.http.toolnode_floor",
    "concurrent.http.local_toolnode",
    "factory.read.bridge",
    "factory.read.naive",
    "connect.http.one",
    "connect.http.eight",
    "pool.stdio.cold",
    "pool.stdio.warm",
    "memory.http2.per_run",
    "serve.direct",
    "serve.raw.auto",
    "serve.raw.legacy",
    "serve.floor.auto",
    "serve.floor.legacy",
    "call.stdio.langchain_mcp",
    "call.http.langchain_mcp",
    "concurrent.stdio.langchain_mcp",
    "concurrent.http.langchain_mcp",
    "connect.http.bridge",
    "connect.http.langchain_mcp",
    "call.stdio.traced.raw",
    "call.stdio.traced.bridge",
    "call.stdio.traced.langchain_mcp",
    "call.http.traced.raw",
    "call.http.traced.bridge",
    "call.http.traced.langchain_mcp",
}
SKIPPED_BY_QUICK = {
    "call.stdio.adapters_persistent",
    "call.stdio.adapters_default",
    "call.http.adapters_persistent",
    "call.http.adapters_default",
    "call.stdio.traced.adapters",
    "call.http.traced.adapters",
    "serve.agent_server",
    # Runs through `langgraph dev` (e2e, scaling): five Agent Servers, about 70 s on 2 cores even in
    # their quick form (`--quick --agent-server`), so the smoke leaves them out.
    "e2e.bridge",
    "e2e.langchain_mcp",
    "e2e.bridge.slow_loads",
    "e2e.langchain_mcp.slow_loads",
    "scaling.shared.cold_rate",
    "scaling.isolated_k2.cold_rate",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("bench") / "latest.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, (
        f"python -m bench --quick failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    )
    assert f"written to {output}" in done.stdout
    return json.loads(output.read_text(encoding="utf-8"))


@pytest.mark.timeout(420)
def test_quick_run_writes_valid_results(results: dict[str, Any]) -> None:
    assert validate(results) == []
    assert results["quick"] is True
    assert results["command"] == f"python -m bench --quick --output {results['command'].split()[-1]}"
    assert results["packages"]["mcpbridge"]
    assert results["machine"]["cores"] >= 1


@pytest.mark.timeout(420)
def test_every_metric_is_there(results: dict[str, Any]) -> None:
    metrics = {m["id"]: m for m in results["metrics"]}
    assert not [i for i in metrics if i.endswith(".error")], [m["skipped"] for m in metrics.values()]
    for id in MEASURED:
        assert metrics[id]["skipped"] is None, (id, metrics[id]["skipped"])
        assert metrics[id]["n"] >= 1 and metrics[id]["median"] is not None, id
    for id in SKIPPED_BY_QUICK:
        assert metrics[id]["skipped"] == "skipped by --quick", (id, metrics[id]["skipped"])
    # mcpbridge serve runs in --quick too: measured, or skipped with the reason
    for id in ("serve.mcpbridge.auto", "serve.mcpbridge.legacy"):
        assert metrics[id]["skipped"] is None or "mcpbridge serve" in metrics[id]["skipped"], metrics[id]


@pytest.mark.timeout(420)
def test_judged_metrics_carry_their_targets(results: dict[str, Any]) -> None:
    metrics = {m["id"]: m for m in results["metrics"]}
    judged = {
        "call.stdio.bridge": "<= 1.15",
        "call.http.bridge": "<= 1.15",
        "concurrent.http.bridge": ">= 0.9",
        "connect.http.eight": "<= 1.5",
        "pool.stdio.warm": "<= 0.05",
        "serve.mcpbridge.auto": "<= 1.25",
        "serve.mcpbridge.legacy": "<= 1.25",
    }
    for id, target in judged.items():
        metric = metrics[id]
        assert target in metric["target"], (id, metric["target"])
        assert isinstance(metric["pass"], bool), id
        assert metric["ratio"]["value"] > 0 and metric["ratio"]["numerator"] == id
    for t in ("stdio", "http"):
        checks = {c["name"]: c for c in metrics[f"call.{t}.bridge"]["checks"]}
        assert checks["bridge / thinnest in ToolNode"]["target"] == "<= 1.05", checks
        low = checks["bridge / thinnest in ToolNode, lowest round"]["value"]
        assert 0 < low <= checks["bridge / thinnest in ToolNode, highest round"]["value"], checks
    factory = metrics["factory.read.bridge"]
    assert [c["target"] for c in factory["checks"]] == ["<= 1 ms", "<= 0", ">= 100"]
    assert factory["checks"][1]["value"] == 0  # a read context connects nothing, at any speed


@pytest.mark.timeout(420)
def test_langchain_mcp_is_a_peer_with_spread(results: dict[str, Any]) -> None:
    metrics = {m["id"]: m for m in results["metrics"]}
    assert results["packages"]["langchain (langchain.mcp venv)"] == results["packages"]["langchain"]
    assert results["packages"]["fastmcp (langchain.mcp venv)"]
    for id, numerator in (
        ("call.stdio.langchain_mcp", "call.stdio.bridge"),
        ("call.http.langchain_mcp", "call.http.bridge"),
        ("concurrent.stdio.langchain_mcp", "concurrent.stdio.bridge"),
        ("concurrent.http.langchain_mcp", "concurrent.http.bridge"),
        ("connect.http.langchain_mcp", "connect.http.bridge"),
    ):
        metric = metrics[id]
        assert metric["peer"] == "langchain.mcp"
        assert metric["ratio"]["numerator"] == numerator and metric["ratio"]["value"] > 0, id
        ends = ("lowest round", "highest round")
        low, high = (c["value"] for c in metric["checks"] if c["name"].endswith(ends))
        assert 0 < low <= high, (id, metric["checks"])
        assert "interleaved rounds" in metric["notes"], id
    assert "<= 0.8" in metrics["call.http.langchain_mcp"]["target"]


@pytest.mark.timeout(420)
def test_traced_rows_have_every_peer_with_spread(results: dict[str, Any]) -> None:
    metrics = {m["id"]: m for m in results["metrics"]}
    for t in ("stdio", "http"):
        bridge = metrics[f"call.{t}.traced.bridge"]
        assert bridge["ratio"]["denominator"] == f"call.{t}.traced.raw"
        lc = metrics[f"call.{t}.traced.langchain_mcp"]
        assert lc["ratio"]["numerator"] == bridge["id"] and lc["ratio"]["value"] > 0
        assert "<= 1" in lc["target"], lc["target"]
        low, high = (
            c["value"] for c in lc["checks"] if c["name"].endswith(("lowest round", "highest round"))
        )
        assert 0 < low <= high, lc["checks"]
        assert "interleaved rounds" in lc["notes"]
    assert [m["id"] for m in results["metrics"]].index("call.stdio.traced.bridge") < [
        m["id"] for m in results["metrics"]
    ].index("concurrent.stdio.raw")


@pytest.mark.timeout(420)
def test_validation_catches_a_broken_document(results: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(results))
    del broken["metrics"][0]["median"]
    broken["metrics"][1]["ratio"] = {"value": 1.0, "numerator": "x", "denominator": "no.such.metric"}
    problems = validate(broken)
    assert any("median" in p for p in problems), problems
    fixed = json.loads(json.dumps(results))
    fixed["metrics"][1]["ratio"] = {"value": 1.0, "numerator": "x", "denominator": "no.such.metric"}
    assert any("no.such.metric" in p for p in validate(fixed))


@pytest.mark.timeout(420)
def test_tables_render(results: dict[str, Any]) -> None:
    section = table.readme_section(results)
    assert section.startswith("## The last run\n")
    assert "python -m bench --quick" in section
    rows = [line for line in table.markdown(results).splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(results["metrics"])  # header, rule, one per metric
    assert "skipped by --quick" in table.plain(results)
    assert "langchain.mcp of langchain" in " ".join(section.split())


def test_the_fast_path_comparison_runs() -> None:
    """``python -m bench.fastpath``: mcpbridge with and without its fast path, against the floor."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.fastpath", "--calls", "4", "--repeats", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    *runs, summary = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(runs) == 2
    assert all(set(run["median_ms"]) == {"thin", "fast", "slow"} for run in runs)
    assert set(summary) == {"over", "fast/thin", "slow/thin", "slow/fast", "slow-fast_ms"}
