"""The results as a table: ``python -m bench.table [results.json] [--readme]``.

Without options it prints the table of a results file (default:
``bench/results/latest.json``); ``--readme`` prints the ``## The last run`` section of
``docs/performance.md`` (the command, date, machine, and the table as Markdown), and
``--targets`` the README's table of the metrics that have a target.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.results import LATEST

HEADERS = ("Metric", "Peer", "Median", "p95", "n", "Judged by", "Target", "Result")
ACROSS_RUNS = "Across runs"
"""The column shown after "Judged by" when the suite ran several times (``--runs``)."""


def headers(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The table's columns: "Across runs" only for results of several runs."""
    if data.get("runs", 1) > 1:
        return (*HEADERS[:6], ACROSS_RUNS, *HEADERS[6:])
    return HEADERS


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 0.01 or magnitude == 0:
        return f"{value:.3f}"
    return f"{value:.2g}"  # a small ratio keeps its two significant digits, not 0.000


def _with_unit(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if not unit:  # a count
        return f"{value:g}"
    return f"{_number(value)}x" if unit == "x" else f"{_number(value)} {unit}".rstrip()


def _judged(metric: Mapping[str, Any]) -> str:
    parts = [f"{c['name']} {_with_unit(c['value'], c['unit'])}" for c in metric["checks"]]
    return "; ".join(parts) or "-"


def _across_runs(metric: Mapping[str, Any]) -> str:
    """The lowest and highest value of each target over the suite's runs; else of its judged figure."""
    judged = [c for c in metric["checks"] if c["target"] is not None and len(_values(c.get("runs", []))) > 1]
    if judged:
        named = len(judged) > 1
        return "; ".join(
            (f"{c['name']} " if named else "") + _spread(_values(c["runs"]), c["unit"]) for c in judged
        )
    key = "ratio" if metric["ratio"] is not None else "median"
    values = _values(r[key] for r in metric.get("runs", []))
    return _spread(values, "x" if key == "ratio" else metric["unit"]) if len(values) > 1 else "-"


def _values(figures: Iterable[float | None]) -> list[float]:
    return [value for value in figures if value is not None]


def _spread(values: Sequence[float], unit: str) -> str:
    low, high = _with_unit(min(values), unit), _with_unit(max(values), unit)
    return f"{low} to {high} over {len(values)} runs"


def _result(metric: Mapping[str, Any]) -> str:
    if metric["skipped"] is not None:
        return f"skipped: {metric['skipped']}"
    verdict = metric["pass"]
    if verdict is None:
        return "reported" if metric["checks"] else "-"
    return "PASS" if verdict else "FAIL"


def rows(data: Mapping[str, Any]) -> list[list[str]]:
    """One row of text per metric."""
    several = data.get("runs", 1) > 1
    table: list[list[str]] = []
    for m in data["metrics"]:
        measured = m["skipped"] is None
        table.append(
            [
                m["title"],
                m["peer"],
                _with_unit(m["median"], m["unit"]) if measured else "-",
                _with_unit(m["p95"], m["unit"]) if measured else "-",
                str(m["n"]) if measured else "-",
                _judged(m),
                *([_across_runs(m)] if several else []),
                "; ".join(c["target"] for c in m["checks"] if c["target"]) or "-",
                _result(m),
            ]
        )
    return table


TARGETS_BEGIN = "<!-- bench targets: python -m bench.table --targets -->"
TARGETS_END = "<!-- end of bench targets -->"


def targets(data: Mapping[str, Any]) -> str:
    """The metrics that have a target, as the README's Markdown table (between its markers)."""
    several = data.get("runs", 1) > 1
    columns = ["Metric", "Peer", "Judged by", *(["Across runs"] if several else []), "Target", "Result"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    for m in data["metrics"]:
        if m["target"] is None:
            continue
        judged = [c for c in m["checks"] if c["target"] is not None]
        cells = [
            m["title"],
            m["peer"],
            "; ".join(f"{c['name']} {_with_unit(c['value'], c['unit'])}" for c in judged) or "-",
            *([_across_runs(m)] if several else []),
            "; ".join(c["target"] for c in judged),
            _result(m),
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    runs = data.get("runs", 1)
    about = (
        f"{data['started'][:10]}, `{data['command']}`"
        + (f", {runs} runs" if runs > 1 else "")
        + f", {machine_summary(data)}."
    )
    return "\n".join([TARGETS_BEGIN, "", _wrap(about), "", *lines, "", TARGETS_END])


def markdown(data: Mapping[str, Any]) -> str:
    """The table in Markdown."""
    columns = headers(data)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows(data)]
    return "\n".join(lines)


def plain(data: Mapping[str, Any]) -> str:
    """The table in aligned plain text, for a terminal."""
    columns = headers(data)
    table: Sequence[Sequence[str]] = [columns, *rows(data)]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    s = data["summary"]
    lines.append(
        f"\n{s['passed']} passed, {s['failed']} failed, {s['reported']} reported, {s['skipped']} skipped "
        f"in {data['duration_s']:.0f} s"
    )
    return "\n".join(lines)


def machine_summary(data: Mapping[str, Any]) -> str:
    """One line: CPU, cores, memory, OS, Python."""
    m = data["machine"]
    cpu = m["cpu"] or "unknown CPU"
    return f"{cpu}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, Python {m['python']}"


def readme_section(data: Mapping[str, Any]) -> str:
    """The ``## The last run`` section of ``docs/performance.md``."""
    p = data["packages"]
    versions = ", ".join(
        f"{name} {p[name]}" for name in ("mcp", "langgraph", "langchain-core") if p.get(name)
    )
    adapters = p.get("langchain-mcp-adapters")
    peers: list[str] = []
    if adapters:
        peers.append(f"langchain-mcp-adapters {adapters} with mcp {p.get('mcp (adapters venv)')}")
    langchain = p.get("langchain (langchain.mcp venv)")
    if langchain:
        peers.append(
            f"langchain.mcp of langchain {langchain} with fastmcp {p.get('fastmcp (langchain.mcp venv)')} "
            f"and mcp {p.get('mcp (langchain.mcp venv)')}"
        )
    about = (
        "`.venv/bin/python -m bench` measures, in one run, what a tool call, a connect and a read of "
        "the Agent Server cost through mcpbridge, beside what users would pick instead: the raw `mcp` "
        "client on one open session (the floor), `langchain-mcp-adapters` (in its own venv, "
        "`bench/.venv-adapters`, built on the first run; `--fresh-venv` rebuilds it), LangChain's own "
        "`langchain.mcp` (`MCPAdapter` kept open, in `bench/.venv-langchain-mcp`), a factory that "
        "connects in every context, and the Agent Server's own `/mcp`. It takes a few minutes on "
        "2 cores and writes `bench/results/latest.json` (median, p95, n, unit, ratio, target and "
        "verdict of every metric, with the machine and package versions); "
        "`python -m bench.table --readme` prints this section from it. Bridge and adapters tools are "
        "called through the same LangGraph `ToolNode`; peers run interleaved; ratios are of medians, "
        "with the lowest and highest ratio of the interleaved rounds as their spread where shown. "
        "The thinnest MCP tool through `ToolNode` (the raw client's call, with no validation, "
        "identity, progress or result handling) is the floor any MCP tool reaches through LangGraph: "
        "`bridge / thinnest` is what mcpbridge itself adds. The `traced` rows make the same calls "
        "with a trivial callback handler attached (`callbacks=[handler]`, as any tracing does), "
        "which switches off the bridge's fast path. The `e2e` rows time a tool-calling run through "
        "`langgraph dev` and count the Agent Server's slow graph loads from its log; the `scaling` rows "
        "count cold starts in its scaling modes (see the two sections above)."
    )
    runs = data.get("runs", 1)
    if runs > 1:
        about += (
            f" The suite ran {runs} times: each row is the run whose figure (its ratio, else its median) "
            f"is the median of the {runs}; each target is judged on the median of its own {runs} values, "
            f'and "Across runs" gives their lowest and highest.'
        )
    last = (
        f"Last run: {data['started'][:10]}, `{data['command']}`, {machine_summary(data)}; "
        f"{versions}" + "".join(f"; {peer}" for peer in peers) + "."
    )
    return "\n\n".join(["## The last run", _wrap(about), _wrap(last), markdown(data)])


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=90, break_long_words=False, break_on_hyphens=False)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the table of a results file."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", nargs="?", type=Path, default=LATEST)
    parser.add_argument(
        "--readme", action="store_true", help="print the 'The last run' section of docs/performance.md"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--targets", action="store_true", help="print the README's table of the metrics that have a target"
    )
    args = parser.parse_args(argv)
    data: dict[str, Any] = json.loads(args.path.read_text(encoding="utf-8"))
    if args.readme:
        print(readme_section(data))
    elif args.targets:
        print(targets(data))
    elif args.markdown:
        print(markdown(data))
    else:
        print(plain(data))


if __name__ == "__main__":
    main()
