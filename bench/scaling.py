"""Cold starts per run in the Agent Server's scaling modes, with sessions kept per event loop.

The Agent Server runs a worker's runs on one shared event loop by default; with
``BG_JOB_ISOLATED_LOOPS=true`` it runs each on one of ``N_JOBS_PER_WORKER`` loops,
each in its own thread, handed out first in, first out (a loop goes back to the
end of the line when its run ends). MCP sessions belong to a loop, so a
`SessionPool` keeps one set per loop, and a user's next run is warm only when it
lands on a loop that served that user before.

Each mode is one ``langgraph dev`` serving ``bench/e2e_graphs.py:pooled`` with
the example deployment's auth, all at once. In each, ``alice`` makes a sequence of
runs, then ``bob`` does; every run makes one ``whoami`` call to the recording echo server
over stdio. A cold start is a server process started during a run, counted from
the server's own records (one line per process start); the call records say
which process served which run and which user it saw, so a session lent across
users would show.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from langgraph_sdk import get_client

from bench._agent_server import ROOT, TOKENS, AgentServer, Spec, start_all
from bench._env import Env
from bench._processes import count_events, offsets, tail
from bench.e2e_graphs import POOLED_MESSAGE
from bench.results import Check, Metric, skipped

TITLE = "Cold starts per run of one user's sequence, SessionPool (sessions per event loop)"
CLIENT_TIMEOUT = (10.0, 120.0, 10.0, 10.0)
RUN_TIMEOUT = 120.0
USERS = ("alice", "bob")
META = "dev.mcpbridge/"


@dataclass(frozen=True, slots=True)
class Mode:
    """One way the Agent Server runs runs."""

    key: str
    label: str
    jobs: int
    isolated: bool


@dataclass(slots=True)
class Outcome:
    """What one mode's runs did: cold starts per user, and who each run was."""

    mode: Mode
    cold: dict[str, int] = field(default_factory=dict[str, int])
    runs: dict[str, int] = field(default_factory=dict[str, int])
    users_of_runs: dict[str, str] = field(default_factory=dict[str, str])


def modes(jobs: Sequence[int]) -> list[Mode]:
    """The default mode (one shared loop, as many jobs as the most tried), and isolated loops for each."""
    shared = Mode("shared", f"default: one shared loop, N_JOBS_PER_WORKER={max(jobs)}", max(jobs), False)
    isolated = [
        Mode(f"isolated_k{k}", f"BG_JOB_ISOLATED_LOOPS=true, N_JOBS_PER_WORKER={k}", k, True) for k in jobs
    ]
    return [shared, *isolated]


def _spec(mode: Mode, workdir: Path) -> Spec:
    env = {
        "MCPBRIDGE_RECORD": str(workdir / f"scaling-{mode.key}-calls.jsonl"),
        "MCPBRIDGE_RECORD_EVENTS": str(workdir / f"scaling-{mode.key}-events.jsonl"),
        "BG_JOB_ISOLATED_LOOPS": "true" if mode.isolated else "false",
    }
    graphs = {"pooled": f"{ROOT / 'bench' / 'e2e_graphs.py'}:pooled"}
    return Spec(f"scaling-{mode.key}", Path(sys.executable), graphs, env=env, jobs=mode.jobs, auth=True)


async def _runs(server: AgentServer, mode: Mode, count: int) -> Outcome:
    """``count`` runs of each user, one after the other, counting the processes each one started."""
    events = Path(server.spec.env["MCPBRIDGE_RECORD_EVENTS"])
    outcome = Outcome(mode)
    for user in USERS:
        headers = {"Authorization": f"Bearer {TOKENS[user]}"}
        sdk: Any = get_client(url=server.url, api_key=None, headers=headers, timeout=CLIENT_TIMEOUT)
        async with sdk as client:
            for _ in range(count):
                before = offsets([events])
                with anyio.fail_after(RUN_TIMEOUT):
                    thread = await client.threads.create()
                    input = {"messages": [{"role": "user", "content": POOLED_MESSAGE}]}
                    await client.runs.wait(thread["thread_id"], "pooled", input=input, raise_error=True)
                    runs = await client.runs.list(thread["thread_id"])
                outcome.users_of_runs |= {r["run_id"]: user for r in runs}
                outcome.cold[user] = outcome.cold.get(user, 0) + count_events([events], since=before)["start"]
                outcome.runs[user] = outcome.runs.get(user, 0) + 1
    return outcome


def leaks(records: Path, users_of_runs: Mapping[str, str]) -> tuple[int, int]:
    """Calls that saw another user's identity or a process that served another user; and all calls."""
    calls: list[dict[str, Any]] = [
        json.loads(line) for line in records.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    served: dict[int, set[str]] = {}
    wrong = 0
    for call in calls:
        expected = users_of_runs.get(str(call["meta"].get(f"{META}run_id")))
        if expected is None or call["meta"].get(f"{META}user_id") != expected:
            wrong += 1
        served.setdefault(int(call["pid"]), set()).add(str(expected))
    shared = sum(1 for call in calls if len(served[int(call["pid"])]) > 1)
    return wrong + shared, len(calls)


async def scaling_modes(
    env: Env, *, agent_server: bool = True, agent_server_skipped: str = ""
) -> list[Metric]:
    """Cold-start rate and cross-user isolation in each mode."""
    chosen = modes(env.sizes.scaling_jobs)
    if not agent_server:
        reason = agent_server_skipped or "Agent Server not run"
        return [
            skipped(f"scaling.{mode.key}.cold_rate", TITLE, mode.label, "", reason, transport="stdio")
            for mode in chosen
        ]
    with ExitStack() as processes:
        specs = [_spec(mode, env.workdir) for mode in chosen]
        servers = await anyio.to_thread.run_sync(lambda: start_all(processes, env.workdir, specs))
        for server, mode in zip(servers, chosen, strict=True):
            _check_mode(server, mode)
        outcomes: dict[str, Outcome] = {}

        async def runs(server: AgentServer, mode: Mode) -> None:
            outcomes[mode.key] = await _runs(server, mode, env.sizes.scaling_runs)

        async with anyio.create_task_group() as group:  # the modes' servers are independent
            for server, mode in zip(servers, chosen, strict=True):
                group.start_soon(runs, server, mode)
    return [_metric(outcomes[mode.key], env.workdir) for mode in chosen]


def _check_mode(server: AgentServer, mode: Mode) -> None:
    """Make sure the Agent Server runs its queue the way ``mode`` says (its log names the queue's loops)."""
    wanted = "Starting queue with isolated loops" if mode.isolated else "Starting queue with shared loop"
    if wanted not in tail(server.log, 1 << 30):
        raise RuntimeError(f"{server.spec.name}: the Agent Server's log does not say {wanted!r}")


def _metric(outcome: Outcome, workdir: Path) -> Metric:
    mode = outcome.mode
    runs = sum(outcome.runs.values())
    cold = sum(outcome.cold.values())
    leaked, calls = leaks(workdir / f"scaling-{mode.key}-calls.jsonl", outcome.users_of_runs)
    per_user = max(outcome.cold.values())
    bound = mode.jobs if mode.isolated else 1
    return Metric(
        id=f"scaling.{mode.key}.cold_rate",
        title=TITLE,
        peer=mode.label,
        unit="",
        transport="stdio",
        median=cold / runs,
        n=runs,
        checks=[
            Check("cold starts, most of one user", per_user, ""),
            Check("loops a user can meet", bound, ""),
            Check("calls seeing another user's session", leaked, "", "<=", 0),
            Check("calls recorded / runs", calls / runs, "x"),
        ],
        notes=(
            f"{outcome.runs[USERS[0]]} runs of each of {len(USERS)} users in sequence; "
            "value = stdio server processes started / runs, from the server's own records"
        ),
    )
