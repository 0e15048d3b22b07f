"""``python -m bench --runs N``: each metric keeps its median run and each target its median value."""

from __future__ import annotations

from typing import Any

from bench import table
from bench.results import Check, Metric, Ratio, combine, document, skipped, validate


def _run(floor: float, bridge: float) -> list[Metric]:
    raw = Metric(id="call.raw", title="Call", peer="raw", unit="ms", median=floor, p95=floor, n=10)
    ours = Metric(
        id="call.bridge",
        title="Call",
        peer="bridge",
        unit="ms",
        median=bridge,
        p95=bridge,
        n=10,
        ratio=Ratio(bridge / floor, "call.bridge", "call.raw"),
    )
    return [raw, ours, skipped("serve.agent_server", "Serve", "Agent Server", "ms", "skipped by --quick")]


def _document(metrics: list[Metric], runs: int) -> dict[str, Any]:
    return document(
        metrics,
        command="python -m bench --runs 3",
        started="2026-12-03T00:00:00+00:00",
        finished="2026-12-03T00:01:00+00:00",
        duration_s=60.0,
        quick=False,
        machine_info={"cpu": "", "cores": 2, "memory_gib": 1.0, "os": "", "python": "", "load_average": []},
        package_versions={},
        runs=runs,
    )


def test_each_metric_keeps_its_median_run_and_every_runs_figure() -> None:
    combined = combine([_run(1.0, 1.3), _run(1.0, 1.1), _run(2.0, 2.4)])
    by_id = {m.id: m for m in combined}
    assert [m.id for m in combined] == ["call.raw", "call.bridge", "serve.agent_server"]
    bridge = by_id["call.bridge"]
    assert bridge.ratio is not None and bridge.ratio.value == 1.2  # ratios 1.3, 1.1, 1.2: the median run
    assert bridge.median == 2.4  # the median run's own figures, never a mix of runs
    assert [r.ratio for r in bridge.runs] == [1.3, 1.1 / 1.0, 1.2]
    assert by_id["call.raw"].median == 1.0  # medians 1.0, 1.0, 2.0
    assert by_id["serve.agent_server"].skipped == "skipped by --quick"


def _judged(floor: float, bridge: float, thinnest: float) -> Metric:
    """A metric judged by two targets, against the floor and against the thinnest tool."""
    return Metric(
        id="call.bridge",
        title="Call",
        peer="bridge",
        unit="ms",
        median=bridge,
        n=10,
        ratio=Ratio(bridge / floor, "call.bridge", "call.raw"),
        checks=[
            Check("bridge / floor", bridge / floor, "x", "<=", 1.15),
            Check("bridge / thinnest", bridge / thinnest, "x", "<=", 1.05),
            Check("bridge - thinnest", bridge - thinnest, "ms"),
        ],
    )


def test_each_target_is_judged_on_its_own_median_over_the_runs() -> None:
    # Against the floor, the median run is the second (1.12); against the thinnest tool,
    # the runs give 1.04, 1.06 and 1.02: the second run's 1.06 is not their median.
    runs = [_judged(1.0, 1.04, 1.0), _judged(1.0, 1.12, 1.12 / 1.06), _judged(1.0, 1.20, 1.20 / 1.02)]
    [bridge] = combine([[metric] for metric in runs])
    floor, thinnest, difference = bridge.checks
    assert bridge.median == 1.12 and floor.value == 1.12  # the metric's own figures: its median run
    assert floor.runs == (1.04, 1.12, 1.20)
    assert thinnest.value is not None and round(thinnest.value, 9) == 1.04 and thinnest.passed
    assert [round(v or 0, 9) for v in thinnest.runs] == [1.04, 1.06, 1.02]
    assert difference == runs[1].checks[2]  # a check without a target stays the median run's
    raw = Metric(id="call.raw", title="Call", peer="raw", unit="ms", median=1.0, n=10)
    data = _document([bridge, raw], runs=3)
    assert validate(data) == []
    assert data["metrics"][0]["checks"][1]["runs"] == list(thinnest.runs)


def test_a_run_that_skipped_the_metric_gives_its_targets_no_value() -> None:
    gone = skipped("call.bridge", "Call", "bridge", "ms", "the server did not start")
    [bridge] = combine([[_judged(1.0, 1.04, 1.0)], [gone], [_judged(1.0, 1.10, 1.0)]])
    assert bridge.checks[0].runs == (1.04, None, 1.10)
    assert bridge.checks[0].value == 1.04  # the lower middle of the two measured


def test_an_even_count_takes_the_lower_middle_run() -> None:
    combined = combine([_run(1.0, 1.4), _run(1.0, 1.2)])
    bridge = next(m for m in combined if m.id == "call.bridge")
    assert bridge.ratio is not None and bridge.ratio.value == 1.2


def test_the_document_of_several_runs_validates_and_shows_their_spread() -> None:
    data = _document(combine([_run(1.0, 1.3), _run(1.0, 1.1), _run(1.0, 1.2)]), runs=3)
    assert validate(data) == []
    assert table.ACROSS_RUNS in table.markdown(data)
    assert "1.10x to 1.30x over 3 runs" in table.plain(data)
    data["runs"] = 2
    assert any("more runs" in p for p in validate(data))


def test_one_run_has_no_spread_column() -> None:
    data = _document(_run(1.0, 1.2), runs=1)
    assert validate(data) == []
    assert table.ACROSS_RUNS not in table.markdown(data)


def test_the_table_shows_each_targets_spread_over_the_runs() -> None:
    runs = [_judged(1.0, 1.04, 1.0), _judged(1.0, 1.12, 1.12 / 1.06), _judged(1.0, 1.20, 1.20 / 1.02)]
    [bridge] = combine([[metric] for metric in runs])
    raw = Metric(id="call.raw", title="Call", peer="raw", unit="ms", median=1.0, n=10)
    shown = table.targets(_document([bridge, raw], runs=3))
    assert "bridge / floor 1.04x to 1.20x over 3 runs; bridge / thinnest 1.02x to 1.06x over 3 runs" in shown
