"""The results of one run: metrics with their targets, machine and package versions, as JSON.

``bench/results/latest.json`` holds one entry per metric: its median, p95, n and
unit, the ratio it is judged by, the target and whether it passed. A suite run
``--runs N`` times keeps, for each metric, the run whose judged figure is the
median of the N (`combine`), with every run's figure beside it as the spread; each
check with a target is judged on the median of its own N values.
`SCHEMA` is the JSON Schema of that file; `validate` checks a file against it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from jsonschema import validators

SCHEMA_ID = "mcpbridge-bench/1"
LATEST = Path(__file__).resolve().parent / "results" / "latest.json"

PACKAGES = (
    "mcpbridge",
    "mcp",
    "mcp-types",
    "langgraph",
    "langgraph-prebuilt",
    "langchain",
    "langchain-core",
    "langgraph-api",
    "langgraph-cli",
    "httpx2",
    "anyio",
    "uvicorn",
)

Op = Literal["<=", ">="]


@dataclass(frozen=True, slots=True)
class Check:
    """One thing a metric is judged by: a value, and a target it must meet (or none: report only)."""

    name: str
    value: float | None
    unit: str
    op: Op | None = None
    limit: float | None = None
    runs: tuple[float | None, ...] = ()
    """Its value in each run when the suite ran several times (`combine`); empty for one run."""

    @property
    def target(self) -> str | None:
        """The target as text, such as ``<= 1.15``."""
        if self.op is None or self.limit is None:
            return None
        unit = "" if self.unit in ("x", "") else " " + self.unit
        return f"{self.op} {self.limit:g}{unit}"

    @property
    def passed(self) -> bool | None:
        """Whether the value meets the target; ``None`` when there is no target or no value."""
        if self.op is None or self.limit is None or self.value is None:
            return None if self.op is None else False
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def to_json(self) -> dict[str, Any]:
        """The check as JSON."""
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "pass": self.passed,
            "runs": list(self.runs),
        }


@dataclass(frozen=True, slots=True)
class Ratio:
    """The ratio of two metrics' medians that a metric is judged by."""

    value: float
    numerator: str
    denominator: str


@dataclass(frozen=True, slots=True)
class RunFigure:
    """A metric's median and ratio in one of several runs of the suite."""

    median: float | None
    ratio: float | None


@dataclass(slots=True)
class Metric:
    """One measured quantity of one peer."""

    id: str
    title: str
    peer: str
    unit: str
    transport: str | None = None
    median: float | None = None
    p95: float | None = None
    n: int = 0
    ratio: Ratio | None = None
    checks: list[Check] = field(default_factory=list[Check])
    skipped: str | None = None
    notes: str = ""
    runs: list[RunFigure] = field(default_factory=list[RunFigure])
    """The figure of each run when the suite ran several times (`combine`); empty for one run."""

    @property
    def judged(self) -> float | None:
        """The figure the metric is judged by: its ratio when it has one, else its median."""
        return self.ratio.value if self.ratio is not None else self.median

    @property
    def passed(self) -> bool | None:
        """False if a check with a target failed, True if all such checks passed, None if there are none."""
        if self.skipped is not None:
            return None
        verdicts = [c.passed for c in self.checks if c.target is not None]
        if not verdicts:
            return None
        return all(v is True for v in verdicts)

    @property
    def target(self) -> str | None:
        """The targets of the checks, joined."""
        targets = [f"{c.name} {c.target}" for c in self.checks if c.target is not None]
        return "; ".join(targets) or None

    def to_json(self) -> dict[str, Any]:
        """The metric as JSON."""
        ratio = self.ratio
        return {
            "id": self.id,
            "title": self.title,
            "peer": self.peer,
            "transport": self.transport,
            "unit": self.unit,
            "median": self.median,
            "p95": self.p95,
            "n": self.n,
            "ratio": None
            if ratio is None
            else {"value": ratio.value, "numerator": ratio.numerator, "denominator": ratio.denominator},
            "target": self.target,
            "pass": self.passed,
            "checks": [c.to_json() for c in self.checks],
            "skipped": self.skipped,
            "notes": self.notes,
            "runs": [{"median": r.median, "ratio": r.ratio} for r in self.runs],
        }


def skipped(id: str, title: str, peer: str, unit: str, reason: str, **extra: Any) -> Metric:
    """A metric that was not measured, with the reason."""
    return Metric(id=id, title=title, peer=peer, unit=unit, skipped=reason, **extra)


def ratio_of(numerator: Metric, denominator: Metric) -> Ratio | None:
    """The ratio of two metrics' medians (``None`` if either is missing)."""
    if numerator.median is None or denominator.median is None or denominator.median == 0:
        return None
    return Ratio(numerator.median / denominator.median, numerator.id, denominator.id)


def combine(runs: Sequence[Sequence[Metric]]) -> list[Metric]:
    """One metric per id from several runs of the suite: the run whose judged figure is the median.

    The median of an even count is the lower middle one. Every run's median and ratio
    is kept in `Metric.runs` (in run order), so the table shows their spread. Each check
    with a target is judged on the median of its values over the runs, not on the value
    in the run the metric's own figure chose (`_over_runs`). A metric measured in no run
    stays skipped with the first run's reason.
    """
    order: list[str] = []
    by_id: dict[str, list[Metric]] = {}
    for metrics in runs:
        for metric in metrics:
            if metric.id not in by_id:
                order.append(metric.id)
                by_id[metric.id] = []
            by_id[metric.id].append(metric)
    combined: list[Metric] = []
    for id in order:
        found = by_id[id]
        measured = sorted(
            (m for m in found if m.skipped is None and m.judged is not None), key=lambda m: m.judged or 0.0
        )
        chosen = measured[(len(measured) - 1) // 2] if measured else found[0]
        chosen.runs = [RunFigure(m.median, None if m.ratio is None else m.ratio.value) for m in found]
        if len(found) > 1:
            chosen.checks = [_over_runs(check, found) for check in chosen.checks]
        combined.append(chosen)
    return combined


def _over_runs(check: Check, found: Sequence[Metric]) -> Check:
    """``check`` judged on the median of its values in ``found`` (one metric per run), each beside it."""
    if check.op is None:
        return check
    runs = tuple(
        next((c.value for c in metric.checks if c.name == check.name), None)
        if metric.skipped is None
        else None
        for metric in found
    )
    values = sorted(value for value in runs if value is not None)
    value = values[(len(values) - 1) // 2] if values else None
    return replace(check, value=value, runs=runs)


def machine() -> dict[str, Any]:
    """What this machine is: CPU, cores, memory, OS, Python, load."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib: float | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
    }


def packages(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``names`` (``None`` for one that is not installed)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def document(
    metrics: Sequence[Metric],
    *,
    command: str,
    started: str,
    finished: str,
    duration_s: float,
    quick: bool,
    machine_info: Mapping[str, Any],
    package_versions: Mapping[str, Any],
    runs: int = 1,
) -> dict[str, Any]:
    """The whole results document (``runs``: how many runs of the suite `combine` took it from)."""
    verdicts = [m.passed for m in metrics]
    return {
        "schema": SCHEMA_ID,
        "command": command,
        "started": started,
        "finished": finished,
        "duration_s": round(duration_s, 1),
        "quick": quick,
        "runs": runs,
        "machine": dict(machine_info),
        "packages": dict(package_versions),
        "summary": {
            "passed": sum(v is True for v in verdicts),
            "failed": sum(v is False for v in verdicts),
            "reported": sum(v is None and m.skipped is None for v, m in zip(verdicts, metrics, strict=True)),
            "skipped": sum(m.skipped is not None for m in metrics),
        },
        "metrics": [m.to_json() for m in metrics],
    }


def write(data: Mapping[str, Any], path: Path) -> None:
    """Write ``data`` to ``path`` atomically (through ``<path>.tmp``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": [
        "schema",
        "command",
        "started",
        "finished",
        "duration_s",
        "quick",
        "runs",
        "machine",
        "packages",
        "summary",
        "metrics",
    ],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "command": {"type": "string"},
        "started": {"type": "string"},
        "finished": {"type": "string"},
        "duration_s": {"type": "number", "minimum": 0},
        "quick": {"type": "boolean"},
        "runs": {"type": "integer", "minimum": 1},
        "machine": {
            "type": "object",
            "required": ["cpu", "cores", "memory_gib", "os", "python", "load_average"],
            "properties": {"cores": {"type": "integer", "minimum": 1}},
        },
        "packages": {"type": "object", "additionalProperties": _STRING_OR_NULL},
        "summary": {
            "type": "object",
            "required": ["passed", "failed", "reported", "skipped"],
            "additionalProperties": {"type": "integer", "minimum": 0},
        },
        "metrics": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "id",
                    "title",
                    "peer",
                    "transport",
                    "unit",
                    "median",
                    "p95",
                    "n",
                    "ratio",
                    "target",
                    "pass",
                    "checks",
                    "skipped",
                    "notes",
                    "runs",
                ],
                "properties": {
                    "id": {"type": "string", "pattern": r"^[a-z0-9_.-]+$"},
                    "title": {"type": "string"},
                    "peer": {"type": "string"},
                    "transport": _STRING_OR_NULL,
                    "unit": {"type": "string"},
                    "median": _NUMBER_OR_NULL,
                    "p95": _NUMBER_OR_NULL,
                    "n": {"type": "integer", "minimum": 0},
                    "ratio": {
                        "oneOf": [
                            {"type": "null"},
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["value", "numerator", "denominator"],
                                "properties": {
                                    "value": {"type": "number"},
                                    "numerator": {"type": "string"},
                                    "denominator": {"type": "string"},
                                },
                            },
                        ]
                    },
                    "target": _STRING_OR_NULL,
                    "pass": {"type": ["boolean", "null"]},
                    "checks": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["name", "value", "unit", "target", "pass", "runs"],
                            "properties": {
                                "name": {"type": "string"},
                                "value": _NUMBER_OR_NULL,
                                "unit": {"type": "string"},
                                "target": _STRING_OR_NULL,
                                "pass": {"type": ["boolean", "null"]},
                                "runs": {"type": "array", "items": _NUMBER_OR_NULL},
                            },
                        },
                    },
                    "skipped": _STRING_OR_NULL,
                    "notes": {"type": "string"},
                    "runs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["median", "ratio"],
                            "properties": {"median": _NUMBER_OR_NULL, "ratio": _NUMBER_OR_NULL},
                        },
                    },
                },
            },
        },
    },
}


def validate(data: Any) -> list[str]:
    """Every way ``data`` departs from `SCHEMA`, and from the rules a schema cannot say; empty if none."""
    validator: Any = validators.Draft202012Validator(SCHEMA)
    problems = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(data)
    ]
    if problems:
        return problems
    ids = [m["id"] for m in data["metrics"]]
    problems += [f"metric id {i!r} appears twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for metric in data["metrics"]:
        measured = metric["skipped"] is None
        if measured and (metric["median"] is None or metric["n"] < 1):
            problems.append(f"{metric['id']}: measured but has no median or n")
        if not measured and metric["pass"] is not None:
            problems.append(f"{metric['id']}: skipped but judged")
        if metric["runs"] and len(metric["runs"]) > data["runs"]:
            problems.append(f"{metric['id']}: figures of more runs than the document's {data['runs']}")
        ratio = metric["ratio"]
        if ratio is not None and ratio["denominator"] not in ids:
            problems.append(f"{metric['id']}: ratio over unknown metric {ratio['denominator']!r}")
    return problems
