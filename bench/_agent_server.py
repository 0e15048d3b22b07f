"""Agent Servers (``langgraph dev``) for the end-to-end sections, and what their logs say about graph loads.

Each server serves a ``langgraph.json`` written into its own directory, from the
python of the venv that holds its graphs (this one, or ``langchain.mcp``'s), on
a free port of 127.0.0.1, and is stopped through its own handle. Several start
at once (`start_all`): their start-ups overlap.

The Agent Server logs a "Slow graph load" warning when entering a graph factory
takes more than 100 ms and an error past 250 ms, with the graph and the run;
`slow_loads` reads those lines back.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench._processes import ROOT, stop_process, tail
from tests.support.processes import free_port, http_ok

START_TIMEOUT = 180.0
ENV = {
    # Nothing but 127.0.0.1: no analytics, no version check, no tracing (as tests/support/processes.py).
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "PYTHONUNBUFFERED": "1",
}
AUTH = f"{ROOT / 'examples' / 'auth.py'}:auth"
"""The example deployment's auth: bearer tokens ``alice-token`` and ``bob-token``."""
TOKENS = {"alice": "alice-token", "bob": "bob-token"}

Level = Literal["warning", "error"]
_SLOW = re.compile(r"Slow graph load\. Accessing graph '(?P<graph>[^']+)' took (?P<ms>[\d.]+)ms")
_RUN = re.compile(r"\brun_id=(?P<run>[0-9a-f-]{36})")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True, slots=True)
class Spec:
    """One Agent Server to start: its graphs, its python, and what it runs with."""

    name: str
    python: Path
    graphs: Mapping[str, str]
    """Graph id -> ``path.py:attribute``."""
    env: Mapping[str, str] = field(default_factory=dict[str, str])
    jobs: int | None = None
    """``--n-jobs-per-worker`` (``langgraph dev`` defaults to 1)."""
    auth: bool = False
    """Serve with the example deployment's auth (users ``alice`` and ``bob``)."""


@dataclass(frozen=True, slots=True)
class AgentServer:
    """A running ``langgraph dev``."""

    spec: Spec
    url: str
    log: Path
    process: subprocess.Popen[bytes]


@dataclass(frozen=True, slots=True)
class SlowLoad:
    """One "Slow graph load" line of an Agent Server's log."""

    level: Level
    graph: str
    ms: float
    run_id: str | None


def _command(spec: Spec, port: int, config: Path) -> list[str]:
    command = [str(spec.python), "-m", "langgraph_cli", "dev", "--no-browser", "--no-reload"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--config", str(config)]
    if spec.jobs is not None:
        command += ["--n-jobs-per-worker", str(spec.jobs)]
    return command


def start_all(stack: ExitStack, directory: Path, specs: Sequence[Spec]) -> list[AgentServer]:
    """Start every server in ``specs`` at once (each registered on ``stack``); return them once all serve."""
    started: list[AgentServer] = []
    for spec in specs:
        home = directory / f"agent-server-{spec.name}"
        home.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {"graphs": dict(spec.graphs), "dependencies": [str(ROOT)]}
        if spec.auth:
            config["auth"] = {"path": AUTH, "disable_studio_auth": True}
        path = home / "langgraph.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        port = free_port()
        log = home / "agent-server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                _command(spec, port, path),
                cwd=home,
                env={**os.environ, **ENV, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        stack.callback(stop_process, process)
        started.append(AgentServer(spec, f"http://127.0.0.1:{port}", log, process))
    deadline = time.monotonic() + START_TIMEOUT
    waiting = list(started)
    while waiting:
        for server in list(waiting):
            if http_ok(f"{server.url}/ok"):
                waiting.remove(server)
            elif server.process.poll() is not None:
                raise RuntimeError(
                    f"`langgraph dev` ({server.spec.name}) exited with {server.process.returncode}: "
                    f"{tail(server.log, 600).strip()}"
                )
        if waiting and time.monotonic() > deadline:
            names = ", ".join(s.spec.name for s in waiting)
            raise RuntimeError(f"`langgraph dev` ({names}) not ready within {START_TIMEOUT:g}s")
        if waiting:
            time.sleep(0.1)  # polling interval, bounded by the deadline
    return started


def slow_loads(log: Path) -> list[SlowLoad]:
    """The "Slow graph load" lines of an Agent Server's log, in order."""
    found: list[SlowLoad] = []
    for line in _COLOUR.sub("", tail(log, 1 << 30)).splitlines():
        match = _SLOW.search(line)
        if match is None:
            continue
        head = line[: match.start()].lower()
        level: Level = "error" if "error" in head else "warning"
        run = _RUN.search(line)
        found.append(SlowLoad(level, match["graph"], float(match["ms"]), run["run"] if run else None))
    return found
