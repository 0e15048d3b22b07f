"""A short soak run on the real Agent Server: every fault happens, every run ends as it must, nothing leaks.

The soak itself is `tests.soak.soak.run_soak` (also runnable on demand, longer:
``python -m tests.soak --runs 300``). Its report is printed into the test output, so
that CI logs show the figures and the wall time.
"""

from __future__ import annotations

import functools
from pathlib import Path

import anyio
import pytest

from tests.soak.soak import KINDS, run_soak, soak_servers
from tests.support.processes import tail

pytestmark = [pytest.mark.e2e]

RUNS = 40
"""Three cycles of every kind and some: each kind comes at least three times."""
CONCURRENCY = 8
JOBS = 4


@pytest.mark.timeout(360)
def test_faults_end_every_run_as_expected_and_leak_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with soak_servers(tmp_path, jobs=JOBS) as target:
        soak = functools.partial(run_soak, target, runs=RUNS, concurrency=CONCURRENCY, jobs=JOBS)
        report = anyio.run(soak)
        log = "" if report.ok else f"--- Agent Server log (tail) ---\n{tail(target.log, 80)}\n"
    with capsys.disabled():
        print(f"\n{report.render()}\n{log}")

    assert [r.spec.index for r in report.hangs] == []
    assert [(r.spec.kind, r.problems) for r in report.unexpected] == []
    assert report.leaked_processes == frozenset()
    assert report.leaked_fds == 0
    assert len(report.results) == RUNS
    assert {r.spec.kind for r in report.results} == set(KINDS)
    faults = report.faults
    for fault in (
        "timeouts",
        "stdio crashes",
        "stdio kills",
        "HTTP server kills",
        "cancellations",
        "reconnects",
    ):
        assert faults[fault] > 0, f"no {fault} happened"
    assert report.peak.processes, "no stdio MCP server was seen running under the Agent Server"
