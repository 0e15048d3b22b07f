"""Fixtures of the ``mcpbridge serve`` tests: the command as a subprocess, MCP clients, example servers.

``mcpbridge serve`` runs as its own process, over HTTP on 127.0.0.1 (``--port 0``:
it prints the URL it got) or over stdio (started by the MCP client). Every
process is stopped through its own handle; the MCP servers the served agents
use record their calls in ``MCPBRIDGE_RECORD`` files the tests read.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from tests.integration.support import ROOT, HttpServerProcess, RecordFile, start_http_server
from tests.support.history import MODEL_RECORD_ENV
from tests.support.processes import (
    ECHO_MODULE,
    EXAMPLE_SERVER_ENV,
    DemoServers,
    demo_servers,
    free_port,
    serve_command,
    tail,
)

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
_READY = re.compile(r"mcpbridge: serving .* at (http://\S+)")


def model_record(records: RecordFile) -> Path:
    """Where the served ``echo_agent``'s model records its inputs, beside ``records``."""
    return records.path.parent / "model-inputs.jsonl"


def serve_env(records: RecordFile, **extra: str) -> dict[str, str]:
    """The environment of a served agent: the offline model, the recording echo server, its record file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPBRIDGE_")}
    env.update({"MCPBRIDGE_RECORD": str(records.path), "MCPBRIDGE_MODEL": "", "PYTHONUNBUFFERED": "1"})
    env[EXAMPLE_SERVER_ENV] = ECHO_MODULE  # the example agent's stdio server
    env["MCPBRIDGE_STATE_DIR"] = str(records.path.parent / "state")  # not the user's own threads
    env[MODEL_RECORD_ENV] = str(model_record(records))
    env.update(extra)
    return env


@dataclass
class ServeProcess:
    """``mcpbridge serve --transport http`` running as a subprocess."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    records: RecordFile

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate, wait, and kill if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait(timeout=STOP_TIMEOUT)


def start_serve(
    args: Sequence[str], directory: Path, env: Mapping[str, str], records: RecordFile, *, port: int = 0
) -> ServeProcess:
    """Start ``mcpbridge serve ARGS --transport http --port PORT`` (0: any free one); wait for its URL."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"serve-{time.monotonic_ns()}.log"
    listen = ["--transport", "http", "--host", "127.0.0.1", "--port", str(port)]
    command = [*serve_command(), "serve", *args, *listen]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    served = ServeProcess(process, "", log, records)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            found = _READY.search(served.log_tail())
            if found:
                served.url = found.group(1)
                return served
            if process.poll() is not None:
                raise RuntimeError(f"mcpbridge serve exited with {process.returncode}:\n{served.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mcpbridge serve printed no URL within {START_TIMEOUT}s:\n{served.log_tail()}"
                )
            time.sleep(0.05)  # polling interval, bounded by the deadline
    except BaseException:
        served.stop()
        raise


@asynccontextmanager
async def http_client(
    url: str, *, token: str | None = None, mode: str = "auto", **options: Any
) -> AsyncGenerator[Client, None]:
    """An MCP client of ``url``, sending ``token`` as bearer token (``options``: of ``Client``)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode, **options) as client:
            yield client


@asynccontextmanager
async def stdio_serve_client(
    args: Sequence[str], env: Mapping[str, str], *, mode: str = "auto", **options: Any
) -> AsyncGenerator[Client, None]:
    """An MCP client of ``mcpbridge serve ARGS`` over stdio (the client starts and stops the process)."""
    command = serve_command()
    params = StdioServerParameters(
        command=command[0], args=[*command[1:], "serve", *args], cwd=ROOT, env=dict(env)
    )
    async with Client(
        stdio_client(params), mode=mode, read_timeout_seconds=START_TIMEOUT, **options
    ) as client:
        yield client


LEGACY = "2025-11-25"


class RawSession:
    """A 2025-era MCP client over raw HTTP: ``initialize``, then POSTs with the session id (if any) and token.

    It does what mcp 1.x clients, FastMCP 3 and langchain-mcp-adapters do on the wire when
    their task is cancelled (close the response stream) or they leave (``DELETE``).
    """

    def __init__(self, http: httpx.AsyncClient, url: str, token: str | None = None) -> None:
        self.http = http
        self.url = url
        self.headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._ids = 0

    def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._ids += 1
        return {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}

    async def open(self) -> None:
        info = {"name": "raw", "version": "1"}
        params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": info}
        response = await self.http.post(
            self.url, json=self._request("initialize", params), headers=self.headers
        )
        response.raise_for_status()
        if "mcp-session-id" in response.headers:
            self.headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
        self.headers["Mcp-Protocol-Version"] = LEGACY
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        (await self.http.post(self.url, json=initialized, headers=self.headers)).raise_for_status()

    @asynccontextmanager
    async def call(self, name: str, arguments: dict[str, Any]) -> AsyncGenerator[httpx.Response, None]:
        """POST ``tools/call``; its response (an event stream) is open in the block, closed when it ends."""
        body = self._request("tools/call", {"name": name, "arguments": arguments})
        async with self.http.stream("POST", self.url, json=body, headers=self.headers) as response:
            response.raise_for_status()
            yield response

    async def delete(self) -> httpx.Response:
        """End the session (``DELETE``)."""
        return await self.http.delete(self.url, headers=self.headers)


@asynccontextmanager
async def raw_session(url: str, *, token: str | None = None) -> AsyncGenerator[RawSession, None]:
    """An initialized `RawSession` of ``url``."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=120)) as http:
        session = RawSession(http, url, token)
        await session.open()
        yield session


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    """The MCP protocol era of the client: 2026-07-28 (``auto``) or the 2025-11-25 handshake."""
    return request.param


@pytest.fixture(scope="module")
def echo_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServerProcess]:
    """The example echo server over streamable HTTP (the example agent's ``remote`` server)."""
    server = start_http_server("echo", tmp_path_factory.mktemp("echo-http"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served_tests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``mcpbridge serve`` over HTTP with every graph of ``tests/serve/graphs.py``, no auth."""
    directory = tmp_path_factory.mktemp("serve-tests")
    records = RecordFile(directory / "calls.jsonl")
    graphs = [f"{name}=tests.serve.graphs:{name}" for name in GRAPHS]
    served = start_serve(graphs, directory, serve_env(records), records)
    yield served
    served.stop()


@pytest.fixture(scope="module")
def served_example(
    tmp_path_factory: pytest.TempPathFactory, echo_http: HttpServerProcess
) -> Iterator[ServeProcess]:
    """``mcpbridge serve`` over HTTP with the example agent and the example tokens."""
    directory = tmp_path_factory.mktemp("serve-example")
    records = RecordFile(directory / "calls.jsonl")
    env = serve_env(records, MCPBRIDGE_DEMO_HTTP_URL=echo_http.url)
    args = ["agent=./examples/agent.py:make_graph", "--auth", "examples.serve_auth:verify"]
    served = start_serve(args, directory, env, records)
    yield served
    served.stop()


GRAPHS = ("echo_agent", "memo", "repeat", "broken", "plain_factory", "routed", "ask")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the log of ``mcpbridge serve`` to the report of a failed test."""
    report: pytest.TestReport = yield  # type: ignore[misc]
    if report.failed:
        funcargs: dict[str, Any] = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, ServeProcess):
                report.sections.append(("mcpbridge serve log (tail)", value.log_tail()))
            if isinstance(value, AgentServer):
                report.sections.append(("Agent Server log (tail)", tail(value.log, 150)))
    return report  # type: ignore[return-value]


# --- the Agent Server, for remote mode ----------------------------------------------------------


@dataclass
class AgentServer:
    """``langgraph dev`` serving the example agent, ``echo_agent`` and ``ask``, with the example auth."""

    servers: DemoServers
    records: RecordFile
    log: Path

    @property
    def url(self) -> str:
        return self.servers.url


def agent_server_config(directory: Path) -> Path:
    """A ``langgraph.json``: the example agent, the tests' ``echo_agent`` and ``ask``, the example auth."""
    config = {
        "dependencies": [str(ROOT)],
        "graphs": {
            "agent": f"{ROOT / 'examples' / 'agent.py'}:make_graph",
            "echo_agent": f"{ROOT / 'tests' / 'serve' / 'graphs.py'}:echo_agent",
            "ask": f"{ROOT / 'tests' / 'serve' / 'graphs.py'}:ask",
        },
        "auth": {"path": f"{ROOT / 'examples' / 'auth.py'}:auth", "disable_studio_auth": True},
    }
    path = directory / "langgraph.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """The real Agent Server (``langgraph dev``, blocking calls refused) and its HTTP echo MCP server."""
    workdir = tmp_path_factory.mktemp("agent-server")
    records = RecordFile(workdir / "calls.jsonl")
    env = {"MCPBRIDGE_RECORD": str(records.path), "MCPBRIDGE_MODEL": ""}
    with demo_servers(
        port=free_port(),
        mcp_port=free_port(),
        workdir=workdir,
        config=agent_server_config(workdir),
        logs=workdir,
        env=env,
    ) as servers:
        yield AgentServer(servers, records, workdir / "agent-server.log")


@pytest.fixture(scope="module")
def served_remote(
    agent_server: AgentServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    """``mcpbridge serve --remote`` over HTTP in front of the Agent Server, checking tokens with it."""
    directory = tmp_path_factory.mktemp("serve-remote")
    args = ["--remote", agent_server.url, "--auth", "remote"]
    served = start_serve(args, directory, serve_env(agent_server.records), agent_server.records)
    yield served
    served.stop()
