"""The hostile-tenant deployment on the real Agent Server, and the attacker's own MCP server.

One session-wide ``langgraph dev`` serves ``tests/security/deployment/langgraph.json``
(graphs ``tenant`` and ``tenant_unchecked``, auth ``examples/auth.py``), beside
real MCP servers over streamable HTTP: the deployment's ``notes`` and
``payroll``; ``own``, a server the attacker registers; ``hostile``, offering
100,000 tools; and, for DNS rebinding, the echo server on 127.0.0.2:P (the
address the policy admits) with a tripwire on 127.0.0.3:P (the refused one). The
Agent Server answers the simulated names of `REBINDING` in its own process. Every
server records each call it receives, which is the evidence an attack did or did
not reach its target.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.integration.support import HttpServerProcess, RecordFile, start_http_server
from tests.security.dns import DNS_ENV
from tests.security.network import Tripwire, start_echo_at
from tests.support.processes import (
    REPO_ROOT,
    SERVER_ENV,
    agent_server_command,
    child,
    free_port,
    http_ok,
    portable_config,
    tail,
    wait_until,
)

DEPLOYMENT = Path(__file__).resolve().parent / "deployment" / "langgraph.json"
SERVERS = "tests.security.servers"
TOKENS = {"alice": "alice-token", "bob": "bob-token"}
PAYROLL_AUDIENCE = "payroll-api"
RUN_TIMEOUT = 90.0
ADMITTED, REFUSED = "127.0.0.2", "127.0.0.3"
REBINDING = ("attack.rebind.test", "steady.rebind.test", "control.rebind.test")
"""Names answering the admitted address first; then the refused one (``steady``: refused, then admitted)."""
HOSTILE_TOOLS = 100_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Tenants:
    """The running deployment: its Agent Server, its MCP servers and what each recorded."""

    url: str
    log: Path
    files_base: Path
    files: RecordFile
    notes: HttpServerProcess
    payroll: HttpServerProcess
    own: HttpServerProcess
    hostile: HttpServerProcess
    echo: HttpServerProcess
    """The rebinding target on ``ADMITTED``, port ``tripwire.port``."""
    tripwire: Tripwire
    """Records every connection to ``REFUSED`` on the rebinding port."""
    secret: str = field(repr=False)

    tripwire_mark: int = 0

    def rebinding_url(self, name: str) -> str:
        return f"http://{name}:{self.tripwire.port}/mcp"

    async def tripwire_hits(self) -> list[tuple[str, int]]:
        """The connections the tripwire accepted since `mark` (none of the test's own canaries)."""
        hits = (await self.tripwire.canary())[self.tripwire_mark :]
        self.tripwire_mark = len(self.tripwire.peers())
        return hits

    def client(self, user: str) -> LangGraphClient:
        return get_client(url=self.url, api_key=None, headers={"Authorization": f"Bearer {TOKENS[user]}"})

    def mark(self) -> None:
        """Hide every record written so far, so a test sees only what it caused."""
        self.files = self.files.view()
        for server in (self.notes, self.payroll, self.own, self.hostile, self.echo):
            server.records = server.records.view()
        self.tripwire_mark = len(self.tripwire.peers())


def _server_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MCPBRIDGE_", "TENANT_"))}


@pytest.fixture(scope="session")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    workdir = tmp_path_factory.mktemp("tenants")
    secret = secrets.token_urlsafe(48)
    files_base = workdir / "files"
    files_base.mkdir()
    for name in ("notes", "payroll", "own", "hostile", "rebinding"):
        (workdir / name).mkdir()
    env = _server_env()
    with ExitStack() as stack:

        def http_server(name: str, *args: str, **extra: str) -> HttpServerProcess:
            module = "tests.support.servers.hostile" if name == "hostile" else SERVERS
            server = start_http_server(module, workdir / name, args=args, env={**env, **extra})
            stack.callback(server.stop)
            return server

        notes = http_server("notes")
        payroll = http_server("payroll", "--audience", PAYROLL_AUDIENCE, MCPBRIDGE_IDENTITY_SECRET=secret)
        own = http_server("own")
        hostile = http_server("hostile", MCPBRIDGE_HOSTILE_TOOLS=str(HOSTILE_TOOLS))
        tripwire = stack.enter_context(Tripwire(REFUSED))
        echo = stack.enter_context(start_echo_at(ADMITTED, tripwire.port, workdir / "rebinding"))
        files = RecordFile(workdir / "files-calls.jsonl")
        dns = {name: [[ADMITTED], [REFUSED]] for name in REBINDING}
        dns["steady.rebind.test"] = [[ADMITTED], [REFUSED, ADMITTED]]
        allowed = [f"127.0.0.1:{own.port}", f"127.0.0.1:{hostile.port}", f"{ADMITTED}/32:{tripwire.port}"]
        server_env = {
            **SERVER_ENV,
            **env,
            "PYTHONUNBUFFERED": "1",
            "MCPBRIDGE_IDENTITY_SECRET": secret,
            DNS_ENV: json.dumps(dns),
            "TENANT_FILES_BASE": str(files_base),
            "TENANT_RECORD": str(files.path),
            "TENANT_NOTES_URL": notes.url,
            "TENANT_PAYROLL_URL": payroll.url,
            "TENANT_ALLOWED": ",".join(allowed),
        }
        port = free_port()
        url, log = f"http://127.0.0.1:{port}", workdir / "agent-server.log"
        command = agent_server_command(port, portable_config(DEPLOYMENT, workdir))
        agent = stack.enter_context(child(command, cwd=workdir, env=server_env, log=log))
        wait_until(lambda: http_ok(f"{url}/ok"), agent, log, "the Agent Server", 90.0)
        yield Tenants(url, log, files_base, files, notes, payroll, own, hostile, echo, tripwire, secret)


@pytest.fixture
def deployment(tenants: Tenants) -> Tenants:
    """The deployment, its records marked so the test sees only its own."""
    tenants.mark()
    return tenants


@pytest.fixture
async def tenant_bob(tenants: Tenants) -> AsyncIterator[LangGraphClient]:
    """The attacker: an ordinary user of the deployment (``mcp:local`` only), with an empty store."""
    async with tenants.client("bob") as client:
        await reset_store(client)
        yield client
        await reset_store(client)


@pytest.fixture
async def tenant_alice(tenants: Tenants) -> AsyncIterator[LangGraphClient]:
    """The victim: holds ``mcp:admin`` (and so ``payroll``), with an empty store."""
    async with tenants.client("alice") as client:
        await reset_store(client)
        yield client
        await reset_store(client)


async def reset_store(client: LangGraphClient) -> None:
    """Delete every item of the client's user (the auth handler scopes the empty prefix to them)."""
    while items := (await client.store.search_items([], limit=100))["items"]:
        for item in items:
            await client.store.delete_item(item["namespace"], item["key"])


async def run(client: LangGraphClient, graph: str, content: str) -> dict[str, Any]:
    """One run of ``graph`` on a new thread, to its end: the run, and its final state or error."""
    thread_id = (await client.threads.create())["thread_id"]
    created: list[Any] = []
    with anyio.fail_after(RUN_TIMEOUT):
        state: Any = await client.runs.wait(
            thread_id,
            graph,
            input={"messages": [{"role": "user", "content": content}]},
            on_run_created=created.append,
            raise_error=False,
        )
    [run] = created
    status = (await client.runs.get(thread_id, run["run_id"]))["status"]
    return {"status": status, "state": state, "thread_id": thread_id}


def tool_results(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool messages of a final state."""
    return [m for m in state.get("messages", []) if m["type"] == "tool"]


def error_message(outcome: dict[str, Any]) -> str:
    error = outcome["state"].get("__error__") or {}
    return f"{error.get('error')}: {error.get('message')}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the Agent Server's log to the report of a failed test."""
    report: pytest.TestReport = yield  # type: ignore[misc]
    server = getattr(item, "funcargs", {}).get("tenants") or getattr(item, "funcargs", {}).get("deployment")
    if report.failed and isinstance(server, Tenants):
        report.sections.append(("Agent Server log (tail)", tail(server.log, 150)))
    return report  # type: ignore[return-value]


__all__ = ["REPO_ROOT", "Tenants", "error_message", "reset_store", "run", "tool_results"]
