"""The real Agent Server (``langgraph dev``) serving ``langgraph.json``, and its fixtures.

The fixtures are registered once, in ``tests/conftest.py``, for every test
directory that drives the Agent Server (``tests/e2e``, ``tests/security``): a
session fixture belongs to the conftest that defines it, so defining (or
importing) it in two conftests would start two Agent Servers in one session.

One session-wide set of servers, started by `tests.support.processes.demo_servers`:
the example echo MCP server over streamable HTTP (the agent's ``remote`` server)
and ``langgraph dev --no-reload`` with the repository's ``langgraph.json`` (its
paths made absolute, so the server runs in a temporary directory and keeps its
state there). Each run of the agent starts its own stdio echo server (``local``)
as a child of the Agent Server.

What the tests observe comes from the example servers themselves: every tool
call is a line in the ``MCPBRIDGE_RECORD`` file (with the ``_meta`` it carried)
and every process start and inbound MCP request a line in the
``MCPBRIDGE_RECORD_EVENTS`` file; both variables reach the stdio servers through
``examples/agent.py``. Child processes of the Agent Server are read from /proc.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.e2e.isolation import EchoServer, own_echo_server, reset_store
from tests.support.history import MODEL_RECORD_ENV
from tests.support.processes import (
    ECHO_MODULE,
    HOST,
    DemoServers,
    demo_servers,
    free_port,
    per_run_config,
    tail,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "langgraph.json"
GRAPH_ID = "agent"
TOKENS = {"alice": "alice-token", "bob": "bob-token"}
META = "dev.mcpbridge/"
CONNECT_METHODS = frozenset({"initialize", "server/discover"})
"""The first request of every MCP connection (2025-11-25 handshake, 2026-07-28 discovery)."""
SETTLE_TIMEOUT = 20.0
CLIENT_TIMEOUT = (10.0, 90.0, 10.0, 10.0)
"""(connect, read, write, pool) of a user's client: every request is bounded, a read by 90 s,
longer than any run's own bound."""

PROBE = textwrap.dedent(
    """
    import asyncio, sys
    from langgraph_runtime_inmem.queue import _enable_blockbuster
    from mcpbridge import Bridge, StdioServer

    async def main():
        blockbuster = _enable_blockbuster()  # what `langgraph dev` applies to every run
        try:
            server = StdioServer(name="local", command=sys.executable, args=["-m", "{ECHO_MODULE}"])
            async with Bridge([server]) as bridge:
                add = next(t for t in bridge.tools if t.name == "add")
                assert await add.ainvoke({"a": 1, "b": 2})
        finally:
            blockbuster.deactivate()

    asyncio.run(main())
    """
).replace("{ECHO_MODULE}", ECHO_MODULE)
"""Connect to and call a stdio server under the Agent Server's blocking-call detector, in a fresh process."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- records -------------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class Mark:
    """A position in both record files."""

    calls: int
    events: int


@dataclass
class Activity:
    """What the example servers recorded between two marks."""

    calls: list[dict[str, Any]]
    events: list[dict[str, Any]]

    def starts(self, transport: str = "stdio") -> list[dict[str, Any]]:
        """Server processes started (stdio: one per connection)."""
        return [e for e in self.events if e["event"] == "start" and e.get("transport") == transport]

    def connections(self, pid: int | None = None) -> list[dict[str, Any]]:
        """MCP connections opened (their first request), to the process ``pid`` or any."""
        return [
            e
            for e in self.events
            if e["event"] == "request" and e["method"] in CONNECT_METHODS and pid in (None, e["pid"])
        ]

    def requests(self) -> list[str]:
        return [e["method"] for e in self.events if e["event"] == "request"]

    def calls_to(self, tool: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["tool"] == tool]

    @property
    def quiet(self) -> bool:
        return not self.calls and not self.events


@dataclass
class Records:
    """The example servers' own records: tool calls, process starts and MCP requests."""

    calls_path: Path
    events_path: Path
    models_path: Path | None = None
    """Where the agent's model records its inputs (``MCPBRIDGE_RECORD_MODEL``), if it does."""

    def mark(self) -> Mark:
        return Mark(len(_read_jsonl(self.calls_path)), len(_read_jsonl(self.events_path)))

    def since(self, mark: Mark) -> Activity:
        return Activity(
            _read_jsonl(self.calls_path)[mark.calls :], _read_jsonl(self.events_path)[mark.events :]
        )


def identity(call: dict[str, Any]) -> dict[str, Any]:
    """The ``dev.mcpbridge/*`` entries of a recorded call's ``_meta``, without the prefix."""
    return {k.removeprefix(META): v for k, v in call["meta"].items() if k.startswith(META)}


# --- processes -----------------------------------------------------------------------------------


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":  # a zombie has already exited
            parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid``."""
    parents = _parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    return pid in _parents()


# --- the servers ---------------------------------------------------------------------------------


@dataclass
class AgentServer:
    """The running Agent Server, what it served before any run, and the records of its MCP servers."""

    servers: DemoServers
    records: Records
    log: Path
    allow_blocking: bool
    secret: str = field(default="", repr=False)
    """The ``MCPBRIDGE_IDENTITY_SECRET`` the Agent Server signs identities with."""
    graph_before_runs: dict[str, Any] = field(default_factory=dict[str, Any])
    graph_xray_before_runs: dict[str, Any] = field(default_factory=dict[str, Any])
    schemas_before_runs: dict[str, Any] = field(default_factory=dict[str, Any])

    @property
    def url(self) -> str:
        return self.servers.url

    @property
    def pid(self) -> int:
        return self.servers.agent.pid

    @property
    def http_echo_pid(self) -> int:
        return self.servers.echo.pid

    def client(self, user: str | None = "alice", **headers: str) -> LangGraphClient:
        if user is not None:
            headers["Authorization"] = f"Bearer {TOKENS[user]}"
        return get_client(url=self.url, api_key=None, headers=headers, timeout=CLIENT_TIMEOUT)

    def children(self) -> set[int]:
        return descendants(self.pid)

    async def settle(self) -> Mark:
        """Wait until no run's MCP server process is left, then mark the records.

        A run's result can reach the client a moment before the run's connections
        are torn down; this waits (bounded) for the teardown to finish.
        """
        with anyio.fail_after(SETTLE_TIMEOUT):
            while self.children():  # noqa: ASYNC110 - processes of another program: poll /proc
                await anyio.sleep(0.05)
        return self.records.mark()


def _stdio_blocking_failure(env: dict[str, str]) -> str | None:
    """Why a stdio connection fails under the Agent Server's blocking-call detector (``None``: it works)."""
    try:
        done = subprocess.run(
            [sys.executable, "-P", "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        return "the probe did not finish within 60s"
    if done.returncode == 0:
        return None
    output = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
    blocking = [line.strip() for line in output if "BlockingError:" in line]
    return blocking[0] if blocking else output[-1]


@pytest.fixture(scope="session")
def stdio_blocking_failure() -> str | None:
    """Why stdio MCP connections break inside ``langgraph dev`` (blocking calls); ``None`` if they don't."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPBRIDGE_")}
    return _stdio_blocking_failure(env)


@pytest.fixture(scope="session")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """The Agent Server serving the repository's ``langgraph.json``, with the HTTP echo server beside it.

    It runs without ``--allow-blocking``, as users run it, so a blocking call on the
    event loop fails the runs that make it.
    """
    workdir = tmp_path_factory.mktemp("agent-server")
    records = Records(workdir / "calls.jsonl", workdir / "events.jsonl", workdir / "model-inputs.jsonl")
    secret = secrets.token_urlsafe(48)  # the tests' own, so extra MCP servers can verify signed identities
    env = {
        "MCPBRIDGE_RECORD": str(records.calls_path),
        "MCPBRIDGE_RECORD_EVENTS": str(records.events_path),
        MODEL_RECORD_ENV: str(records.models_path),
        "MCPBRIDGE_MODEL": "",  # the offline model, whatever the environment says
        "MCPBRIDGE_IDENTITY_SECRET": secret,
        "MCPBRIDGE_ALLOWED_HOSTS": f"{HOST}:*",  # users may register servers on 127.0.0.1 only (any port)
        "PYTHONUNBUFFERED": "1",  # the log file is complete when a test reads it
    }
    config = per_run_config(CONFIG, workdir)
    allow_blocking = False
    with demo_servers(
        port=free_port(),
        mcp_port=free_port(),
        workdir=workdir,
        config=config,
        logs=workdir,
        env=env,
        allow_blocking=allow_blocking,
    ) as servers:
        server = AgentServer(servers, records, workdir / "agent-server.log", allow_blocking, secret)
        headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
        with httpx.Client(base_url=servers.url, headers=headers, timeout=30) as http:
            server.graph_before_runs = _ok(http.get(f"/assistants/{GRAPH_ID}/graph")).json()
            server.graph_xray_before_runs = _ok(http.get(f"/assistants/{GRAPH_ID}/graph?xray=true")).json()
            found = _ok(http.post("/assistants/search", json={"graph_id": GRAPH_ID})).json()
            assistant_id = found[0]["assistant_id"]
            server.schemas_before_runs = _ok(http.get(f"/assistants/{assistant_id}/schemas")).json()
        yield server


def _ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code == 200, f"{response.request.url}: {response.status_code} {response.text}"
    return response


@pytest.fixture(scope="session")
def own_server(agent_server: AgentServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoServer]:
    """A user's own MCP server: the HTTP echo server, verifying identities addressed to ``mine``.

    It shares the Agent Server's identity secret, and records its calls and requests in
    files of its own (``own_server.records``, ``own_server.events``).
    """
    directory = tmp_path_factory.mktemp("own-server")
    with own_echo_server(
        secret=agent_server.secret,
        records=directory / "calls.jsonl",
        events=directory / "events.jsonl",
        log=directory / "echo.log",
    ) as server:
        yield server


@pytest.fixture
async def clean_store(agent_server: AgentServer) -> Any:
    """Alice's and Bob's store namespaces are empty before and after the test."""
    async with agent_server.client("alice") as alice, agent_server.client("bob") as bob:
        users = {"alice": alice, "bob": bob}
        await reset_store(users)
        yield
        await reset_store(users)


@pytest.fixture
async def alice(agent_server: AgentServer) -> Any:
    async with agent_server.client("alice") as client:
        yield client


@pytest.fixture
async def bob(agent_server: AgentServer) -> Any:
    async with agent_server.client("bob") as client:
        yield client


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the Agent Server's log (and the MCP records) to the report of a failed test.

    A fixture value of another test module adds its own sections through a
    ``failure_sections()`` method returning ``(title, text)`` pairs.
    """
    report: pytest.TestReport = yield  # type: ignore[misc]
    if not report.failed:
        return report  # type: ignore[return-value]
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    server = funcargs.get("agent_server")
    if isinstance(server, AgentServer):
        report.sections.append(("Agent Server log (tail)", tail(server.log, 150)))
        report.sections.append(("MCP events (tail)", tail(server.records.events_path, 40)))
    for value in funcargs.values():
        sections = getattr(value, "failure_sections", None)
        if callable(sections):
            report.sections.extend(cast("list[tuple[str, str]]", sections()))
    return report  # type: ignore[return-value]


def message_text(messages: Sequence[dict[str, Any]]) -> str:
    """The content of the last message of a state's ``messages``."""
    content = messages[-1]["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)
