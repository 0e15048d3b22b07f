"""200 interleaved runs of alice and bob, several executing at once: nothing crosses users.

The isolation run itself is `tests.e2e.isolation.run_isolation` (also runnable on
demand: ``python -m tests.e2e.isolation --runs 200``). Its report is printed into the
test output, so that CI logs show the figures and the wall time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.isolation import isolation_servers, run_isolation

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

RUNS = 200
CONCURRENCY = 8
JOBS = 4
"""Runs the Agent Server executes at once (each starts its own stdio MCP server)."""


@pytest.mark.timeout(540)
async def test_interleaved_runs_never_cross_users(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with isolation_servers(tmp_path, jobs=JOBS) as target:
        report = await run_isolation(target, runs=RUNS, concurrency=CONCURRENCY, run_timeout=90)
    with capsys.disabled():
        print(f"\n{report.render()}\n")

    assert report.mismatches == ()
    assert report.failures == ()
    assert report.succeeded == report.runs == RUNS
    assert (report.peak_executing or 0) > 1, "the runs did not execute concurrently"
    assert report.runs_by_user == {"alice": RUNS // 2, "bob": RUNS // 2}
    # Every call was checked: 10 tool-list runs per user, the others call every server their user may use.
    assert report.tool_list_runs == 20
    assert report.calls_by_user == {"alice": 90 * 3, "bob": 90 * 2}
    assert report.calls_by_server == {"local": 180, "remote": 90, "own": 180}
    assert report.tool_results_checked == report.tool_calls_checked == report.calls_checked == 450
