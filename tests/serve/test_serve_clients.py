"""``mcpbridge serve`` driven by MCP clients nobody on this project wrote, each from its own install.

The mcp SDK's 1.x client, FastMCP 4's client (both with elicitation handlers),
langchain-mcp-adapters (text only) and the MCP Inspector's CLI run as their own
processes from ``.clients/`` (`tests.support.clients`, installed once per run). Each
resumes the ``ask`` graph's interrupted run to its end, continues a ``memo`` thread,
and those that can signal cancel a long ``echo_agent`` call: the echo MCP server the
agent calls records the cancellation. The mcp SDK's 2.x client, in both eras, is this
environment's own: ``test_serve_questions.py`` and ``test_serve_local.py`` drive it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from tests.integration.support import ROOT, RecordFile
from tests.support.clients import PYTHON_CLIENTS, ensure_clients
from tests.support.peers import PeerProcess
from tests.support.processes import serve_command

from .conftest import ServeProcess, serve_env
from .graphs import CITY_FORM

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(600)]
"""The first test also installs the clients, when `.clients/` lacks them."""

CALL_TIMEOUT = 120.0
ANSWERS = {"answer": "Ada", "city": "Oslo"}
SERVED = ("tests.serve.graphs:ask", "tests.serve.graphs:memo", "tests.serve.graphs:echo_agent")
SLOW_CALL = {"message": 'call echo_slow {"seconds": 60}'}


@pytest.fixture(scope="session")
def installed() -> dict[str, Path | list[str] | Exception]:
    """Every client, installed once (in parallel) into ``.clients/``; or why it could not be."""
    return ensure_clients()


def installed_client(installed: dict[str, Path | list[str] | Exception], name: str) -> Any:
    found = installed[name]
    if isinstance(found, Exception):
        raise AssertionError(f"{name} could not be installed: {found}")
    return found


@dataclass
class Served:
    """Where a client finds ``mcpbridge serve``, and the record of what its graphs and servers got."""

    connection: dict[str, Any]
    records: RecordFile


def serving(transport: str, served_tests: ServeProcess, tmp_path: Path) -> Served:
    """``mcpbridge serve`` over HTTP (shared by the module) or over stdio (started by the client)."""
    if transport == "http":
        return Served({"transport": "http", "url": served_tests.url}, served_tests.records)
    records = RecordFile(tmp_path / "calls.jsonl")
    command = serve_command()
    args = [*command[1:], "serve", *SERVED]
    connection = {"transport": "stdio", "command": command[0], "args": args, "env": serve_env(records)}
    return Served({**connection, "cwd": str(ROOT)}, records)


@pytest.fixture(params=["http", "stdio"])
def served(request: pytest.FixtureRequest, served_tests: ServeProcess, tmp_path: Path) -> Served:
    return serving(request.param, served_tests, tmp_path)


@asynccontextmanager
async def driven(
    installed: dict[str, Path | list[str] | Exception],
    name: str,
    served: Served,
    tmp_path: Path,
    *,
    mode: str = "auto",
    elicitation: bool = True,
) -> AsyncGenerator[PeerProcess, None]:
    """A Python client (``name`` of `PYTHON_CLIENTS`) in its venv, connected to ``served``."""
    client = PYTHON_CLIENTS[name]
    log = tmp_path / f"{name}-{os.getpid()}.log"
    async with PeerProcess(
        installed_client(installed, name), log, client.driver, request_timeout=CALL_TIMEOUT
    ) as peer:
        answers = ANSWERS if elicitation else None
        await peer.request({"op": "open", "connection": served.connection, "mode": mode, "answers": answers})
        yield peer


async def call(peer: PeerProcess, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return await peer.request({"op": "call", "tool": tool, "arguments": arguments})


def structured_of(result: dict[str, Any]) -> dict[str, Any]:
    """The structured content, or for a text-only client the JSON text block that repeats it."""
    if result["structured"] is not None:
        return dict(result["structured"])
    for text in result["texts"]:
        if text.startswith("{"):
            return dict(json.loads(text))
    raise AssertionError(f"no structured content in {result['texts']!r}")


def answers(records: RecordFile, thread_id: str) -> list[Any]:
    return [entry["answer"] for entry in records.entries(tool="ask", thread_id=thread_id)]


ELICITING = [
    pytest.param("mcp1", "legacy", id="mcp1"),
    pytest.param("fastmcp4", "auto", id="fastmcp4-2026"),
    pytest.param("fastmcp4", "legacy", id="fastmcp4-2025"),
]


@pytest.mark.parametrize(("name", "mode"), ELICITING)
async def test_a_client_with_elicitation_resumes_the_run_and_continues_the_thread(
    installed: dict[str, Path | list[str] | Exception], served: Served, tmp_path: Path, name: str, mode: str
) -> None:
    async with driven(installed, name, served, tmp_path, mode=mode) as peer:
        done = await call(peer, "ask", {"message": "hi"})
        thread_id = structured_of(done)["thread_id"]
        again = await call(peer, "memo", {"message": "one"})
        memo = await call(peer, "memo", {"message": "two", "thread_id": structured_of(again)["thread_id"]})
    assert done["texts"][0] == "Ada lives in Oslo", done
    assert structured_of(done)["status"] == "success"
    assert [message for message, _ in done["asked"]] == ["What is your name?", "Where do you live?"]
    assert done["asked"][1][1] == CITY_FORM
    assert answers(served.records, thread_id) == ["Ada", "Ada", {"city": "Oslo"}]  # the node reruns on resume
    assert memo["texts"][0] == "you said: one | two"


@pytest.mark.parametrize("name", ["mcp1", "fastmcp4", "adapters"])
async def test_a_client_without_elicitation_resumes_with_the_resume_argument(
    installed: dict[str, Path | list[str] | Exception], served: Served, tmp_path: Path, name: str
) -> None:
    async with driven(installed, name, served, tmp_path, elicitation=False) as peer:
        first = await call(peer, "ask", {"message": "hi"})
        thread_id = structured_of(first)["thread_id"]
        second = await call(peer, "ask", {"thread_id": thread_id, "resume": "Ada"})
        third = await call(peer, "ask", {"thread_id": thread_id, "resume": {"city": "Oslo"}})
        again = await call(peer, "memo", {"message": "one"})
        memo = await call(peer, "memo", {"message": "two", "thread_id": structured_of(again)["thread_id"]})
    assert structured_of(first)["status"] == "interrupted"
    assert "call this tool again with" in first["texts"][0] and "resume" in first["texts"][0]
    assert structured_of(second)["questions"][0]["schema"] == CITY_FORM
    assert third["texts"][0] == "Ada lives in Oslo"
    assert answers(served.records, thread_id) == ["Ada", "Ada", {"city": "Oslo"}]  # the node reruns on resume
    assert memo["texts"][0] == "you said: one | two"


CANCELLING = [
    pytest.param("mcp1", "http", id="mcp1-http"),
    pytest.param("mcp1", "stdio", id="mcp1-stdio"),
    pytest.param("fastmcp4", "http", id="fastmcp4-http"),
    pytest.param("fastmcp4", "stdio", id="fastmcp4-stdio"),
    pytest.param("adapters", "http", id="adapters-http"),
    pytest.param("adapters", "stdio", id="adapters-stdio"),
]


@pytest.mark.parametrize(("name", "transport"), CANCELLING)
async def test_a_cancelled_call_stops_the_run_and_its_mcp_call(
    installed: dict[str, Path | list[str] | Exception],
    served_tests: ServeProcess,
    tmp_path: Path,
    name: str,
    transport: str,
) -> None:
    served = serving(transport, served_tests, tmp_path)
    records = served.records.view()
    async with driven(installed, name, served, tmp_path) as peer:
        await peer.request({"op": "start", "tool": "echo_agent", "arguments": SLOW_CALL})
        start = await records.wait_for(tool="slow", phase="start", within=CALL_TIMEOUT)
        outcome = (await peer.request({"op": "cancel"}))["outcome"]
        cancelled = await records.wait_for(tool="slow", phase="cancelled", within=30)
        after = await call(peer, "memo", {"message": "still there?"})  # the client goes on
    assert cancelled["pid"] == start["pid"]
    assert not outcome.startswith("finished"), outcome
    assert after["texts"][0] == "you said: still there?"


# --- the MCP Inspector's CLI: one process per call ----------------------------------------------


def inspect(
    command: list[str], served: Served, tool: str, arguments: dict[str, Any], home: Path
) -> dict[str, Any]:
    """``mcp-inspector --cli ... --method tools/call``: its JSON output."""
    args = [*command]
    connection = served.connection
    if connection["transport"] == "http":
        args += [connection["url"], "--transport", "http"]
    else:
        args += [connection["command"], *connection["args"]]
        # What the server needs beyond the Inspector's default environment (it refuses empty values).
        extra = {k: v for k, v in connection["env"].items() if v and os.environ.get(k) != v}
        args += [arg for key, value in extra.items() for arg in ("-e", f"{key}={value}")]
    args += ["--method", "tools/call", "--tool-name", tool]
    for key, value in arguments.items():
        args += ["--tool-arg", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    env = {**os.environ, "HOME": str(home), "MCP_CATALOG_PATH": str(home / "mcp.json")}
    done = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=CALL_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return dict(json.loads(done.stdout))


async def test_the_inspector_cli_resumes_with_the_resume_argument_and_continues_a_thread(
    installed: dict[str, Path | list[str] | Exception], served: Served, tmp_path: Path
) -> None:
    command: list[str] = installed_client(installed, "inspector")

    async def run(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(lambda: inspect(command, served, tool, arguments, tmp_path))

    first = await run("ask", {"message": "hi"})
    thread_id = first["structuredContent"]["thread_id"]
    await run("ask", {"thread_id": thread_id, "resume": "Ada"})
    third = await run("ask", {"thread_id": thread_id, "resume": {"city": "Oslo"}})
    one = await run("memo", {"message": "one"})
    two = await run("memo", {"message": "two", "thread_id": one["structuredContent"]["thread_id"]})
    assert first["structuredContent"]["status"] == "interrupted"
    assert third["content"][0]["text"] == "Ada lives in Oslo"
    assert answers(served.records, thread_id) == ["Ada", "Ada", {"city": "Oslo"}]  # the node reruns on resume
    assert two["content"][0]["text"] == "you said: one | two"
