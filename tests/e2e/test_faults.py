"""Faults on the real Agent Server: MCP servers that are down, a node that raises, a server that crashes.

One ``langgraph dev --no-reload`` for the module serves the repository's
``langgraph.json`` plus the graphs of `tests.e2e.fault_graphs`. What the tests
observe comes from the processes themselves: the Agent Server's descendants
(read from /proc), the example echo server's records of its starts, requests
and calls, the pids the exiting stdio command appends to its file, and a
listening socket on the unreachable HTTP server's port that records every
connection it accepts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from mcpbridge.events import SKIPPED_EVENT
from tests.e2e import fault_graphs
from tests.e2e.agent_server import CONFIG, GRAPH_ID, TOKENS, Records, alive, descendants, message_text
from tests.support.processes import (
    HOST,
    SERVER_ENV,
    agent_server_command,
    child,
    free_port,
    http_ok,
    per_run_config,
    tail,
    wait_until,
)
from tests.support.servers.common import EVENTS_ENV, RECORD_ENV

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

FAULT_GRAPHS = ("down", "optional_down", "faulty", "no_provider")
DOWN_SERVERS = ("tickets", "files", "notes")
RUN_TIMEOUT = 60.0
SETTLE_TIMEOUT = 20.0


@dataclass
class FaultServer:
    """The running Agent Server and what its runs' MCP servers leave behind."""

    url: str
    process: subprocess.Popen[Any]
    log: Path
    records: Records
    spawns: Path
    http_port: int

    @property
    def http_url(self) -> str:
        """The URL of the ``down`` graphs' HTTP server, where nothing serves MCP."""
        return f"http://{HOST}:{self.http_port}/mcp"

    def client(self) -> LangGraphClient:
        return get_client(url=self.url, api_key=None, headers={"Authorization": f"Bearer {TOKENS['alice']}"})

    def children(self) -> set[int]:
        return descendants(self.process.pid)

    def spawned(self) -> list[int]:
        """The pids of every start of the ``notes`` stdio command."""
        if not self.spawns.exists():
            return []
        return [int(line) for line in self.spawns.read_text().split()]

    async def settle(self) -> None:
        """Wait (bounded) until no MCP server process of a run is left below the Agent Server."""
        with anyio.fail_after(SETTLE_TIMEOUT):
            while self.children():  # noqa: ASYNC110 - processes of another program: poll /proc
                await anyio.sleep(0.05)

    def failure_context(self) -> str:
        return f"--- Agent Server log ---\n{tail(self.log, 80)}"


@pytest.fixture(scope="module")
def fault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultServer]:
    """``langgraph dev`` serving the repository's graphs and the fault graphs, in a temporary directory."""
    workdir = tmp_path_factory.mktemp("faults")
    config = per_run_config(CONFIG, workdir)
    data = json.loads(config.read_text(encoding="utf-8"))
    module = Path(fault_graphs.__file__).resolve()
    data["graphs"].update({name: f"{module}:{name}" for name in FAULT_GRAPHS})
    config.write_text(json.dumps(data, indent=2), encoding="utf-8")

    port, http_port = free_port(), free_port()
    while http_port == port:
        http_port = free_port()
    records = Records(workdir / "calls.jsonl", workdir / "events.jsonl")
    spawns, log = workdir / "spawns.txt", workdir / "agent-server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPBRIDGE_")}
    env = {
        **SERVER_ENV,
        **env,
        RECORD_ENV: str(records.calls_path),
        EVENTS_ENV: str(records.events_path),
        fault_graphs.HTTP_URL_ENV: f"http://{HOST}:{http_port}/mcp",
        fault_graphs.SPAWNS_ENV: str(spawns),
        "PYTHONUNBUFFERED": "1",
    }
    url = f"http://{HOST}:{port}"
    with child(agent_server_command(port, config), cwd=workdir, env=env, log=log) as process:
        wait_until(lambda: http_ok(f"{url}/ok"), process, log, "the Agent Server", 90)
        yield FaultServer(url, process, log, records, spawns, http_port)


class Tripwire:
    """A listening socket that records (and closes) every connection it accepts, until closed."""

    def __init__(self, port: int) -> None:
        self.accepted: list[Any] = []
        self._socket = socket.create_server((HOST, port))
        self._socket.settimeout(0.05)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"tripwire-{port}", daemon=True)

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, peer = self._socket.accept()
            except TimeoutError:
                continue
            self.accepted.append(peer)
            connection.close()

    def __enter__(self) -> Tripwire:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._socket.close()


class ChildWatch:
    """Samples the descendants of a process every 10 ms in a thread, collecting every pid seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.seen: set[int] = set()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"children-of-{pid}", daemon=True)

    def _watch(self) -> None:
        while not self._stopped.wait(0.01):
            self.seen |= descendants(self.pid)

    def __enter__(self) -> ChildWatch:
        self.seen |= descendants(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join(5)
        self.seen |= descendants(self.pid)


@pytest.fixture
def tripwire(fault_server: FaultServer) -> Iterator[Tripwire]:
    """Listens on the ``down`` graphs' HTTP port for the test: any connection attempt shows."""
    with Tripwire(fault_server.http_port) as wire:
        yield wire


@pytest.fixture
async def alice(fault_server: FaultServer) -> Any:
    async with fault_server.client() as client:
        yield client


def _untitled(schema: dict[str, Any]) -> dict[str, Any]:
    """A graph's schema without its title (which names the graph)."""
    return {key: value for key, value in schema.items() if key != "title"}


async def _stream(
    client: LangGraphClient, thread_id: str, graph: str, **kwargs: Any
) -> tuple[str, list[tuple[str, Any]]]:
    """Stream a run to its end, bounded by ``RUN_TIMEOUT``; return its id and every part of the stream."""
    created: list[Any] = []
    parts: list[tuple[str, Any]] = []
    with anyio.fail_after(RUN_TIMEOUT):
        async for part in client.runs.stream(
            thread_id,
            graph,
            stream_mode=["updates", "custom", "values"],
            on_run_created=created.append,
            **kwargs,
        ):
            parts.append((part.event, part.data))
    return created[0]["run_id"], parts


def _ask(content: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}]}


async def _wait(client: LangGraphClient, thread_id: str, graph: str, **kwargs: Any) -> tuple[str, Any]:
    created: list[Any] = []
    with anyio.fail_after(RUN_TIMEOUT):
        state = await client.runs.wait(thread_id, graph, on_run_created=created.append, **kwargs)
    return created[0]["run_id"], state


# --- every MCP server down -----------------------------------------------------------------------


async def test_reads_and_updates_work_while_every_server_is_down(
    fault_server: FaultServer, tripwire: Tripwire, alice: Any
) -> None:
    await fault_server.settle()
    with ChildWatch(fault_server.process.pid) as watch, anyio.fail_after(RUN_TIMEOUT):
        [assistant] = await alice.assistants.search(graph_id="down")
        [reference] = await alice.assistants.search(graph_id=GRAPH_ID)
        graphs = {
            xray: (
                await alice.assistants.get_graph(assistant["assistant_id"], xray=xray),
                await alice.assistants.get_graph(reference["assistant_id"], xray=xray),
            )
            for xray in (False, True)
        }
        schemas = await alice.assistants.get_schemas(assistant["assistant_id"])
        reference_schemas = await alice.assistants.get_schemas(reference["assistant_id"])
        subgraphs = await alice.assistants.get_subgraphs(assistant["assistant_id"])
        thread_id = (await alice.threads.create(graph_id="down"))["thread_id"]
        empty = await alice.threads.get_state(thread_id)
        await alice.threads.update_state(
            thread_id, {"messages": [{"role": "ai", "content": "noted"}]}, as_node="model"
        )
        updated = await alice.threads.get_state(thread_id)
        history = await alice.threads.get_history(thread_id)

    # Nothing was connected to: no process below the Agent Server, no start, no connection.
    assert watch.seen == set()
    assert fault_server.spawned() == []
    assert tripwire.accepted == []
    # The graph is the example agent's: the same nodes, edges and schemas.
    for xray, (down, agent) in graphs.items():
        assert down == agent, f"xray={xray}"
    nodes = {node["id"] for node in graphs[False][0]["nodes"]}
    assert {"model", "tools", "HumanInTheLoopMiddleware.after_model"} <= nodes
    for key in ("input_schema", "output_schema", "state_schema"):
        assert _untitled(schemas[key]) == _untitled(reference_schemas[key]), key
    assert subgraphs == {}
    # The reads and the update really worked on the thread.
    assert empty["values"] == {}
    assert message_text(updated["values"]["messages"]) == "noted"
    assert updated["metadata"]["source"] == "update"
    assert len(history) >= 1
    assert message_text(history[0]["values"]["messages"]) == "noted"

    # The tripwire would have seen a connection.
    with socket.create_connection((HOST, fault_server.http_port), timeout=5):
        pass
    with anyio.fail_after(5):
        while not tripwire.accepted:  # noqa: ASYNC110 - a thread of this process fills it
            await anyio.sleep(0.01)


async def _run_down(server: FaultServer, client: LangGraphClient) -> tuple[str, str, list[tuple[str, Any]]]:
    """Stream a run of the ``down`` graph on a new thread; return the thread, the run and the stream."""
    await server.settle()
    thread_id = (await client.threads.create())["thread_id"]
    run_id, parts = await _stream(client, thread_id, "down", input=_ask("call tickets_list {}"))
    return thread_id, run_id, parts


async def test_a_run_with_every_required_server_down_ends_in_error(
    fault_server: FaultServer, alice: Any
) -> None:
    before = len(fault_server.spawned())
    thread_id, run_id, parts = await _run_down(fault_server, alice)
    with anyio.fail_after(RUN_TIMEOUT):
        run = await alice.runs.get(thread_id, run_id)
        joined = await alice.runs.join(thread_id, run_id)
        thread = await alice.threads.get(thread_id)
        state = await alice.threads.get_state(thread_id)
    await fault_server.settle()

    assert run["status"] == "error", fault_server.failure_context()
    assert thread["status"] == "error"
    # One error, the same wherever it is read: the stream, the joined run, the thread.
    assert parts == [("error", joined["__error__"])]
    assert joined["__error__"]["error"] == "ConnectError"
    assert thread["error"] == joined["__error__"]
    # Nothing ran: no checkpoint, no update.
    assert state["values"] == {}
    assert state["checkpoint"] is None
    # The run did try the servers (the exiting command started once), and left no process behind.
    spawned = fault_server.spawned()[before:]
    assert len(spawned) == 1
    assert not alive(spawned[0])


async def test_the_error_of_a_run_with_required_servers_down_names_them(
    fault_server: FaultServer, alice: Any
) -> None:
    _, _, parts = await _run_down(fault_server, alice)
    [(event, error)] = parts
    assert (event, error["error"]) == ("error", "ConnectError")
    message = error["message"]
    assert "could not connect to 3 required MCP servers" in message
    assert f"tickets: cannot reach {fault_server.http_url}" in message
    assert f"files: command {fault_graphs.MISSING_COMMAND!r} was not found" in message
    assert "notes: " in message


async def test_a_run_with_every_optional_server_down_reports_them_skipped(
    fault_server: FaultServer, alice: Any
) -> None:
    await fault_server.settle()
    before = len(fault_server.spawned())
    thread_id = (await alice.threads.create())["thread_id"]
    run_id, parts = await _stream(alice, thread_id, "optional_down", input=_ask("call tickets_list {}"))
    run = await alice.runs.get(thread_id, run_id)
    await fault_server.settle()

    assert run["status"] == "success", fault_server.failure_context()
    assert not [data for event, data in parts if event == "error"]
    [skipped] = [data for event, data in parts if event == "custom" and data.get("type") == SKIPPED_EVENT]
    reasons = {entry["server"]: entry["reason"] for entry in skipped["servers"]}
    assert set(reasons) == set(DOWN_SERVERS)
    assert reasons["tickets"].startswith(f"cannot reach {fault_server.http_url}")
    assert reasons["files"].startswith(f"command {fault_graphs.MISSING_COMMAND!r} was not found")
    assert "closed the connection" in reasons["notes"]
    messages = next(data for event, data in reversed(parts) if event == "values")["messages"]
    assert [m["type"] for m in messages] == ["human", "ai"]
    assert not messages[-1].get("tool_calls")
    assert "No tools are bound to me" in message_text(messages)
    assert len(fault_server.spawned()) == before + 1


# --- a node that raises --------------------------------------------------------------------------


async def test_a_run_that_raises_in_a_node_ends_in_error_and_stops_its_server(
    fault_server: FaultServer, alice: Any
) -> None:
    await fault_server.settle()
    mark = fault_server.records.mark()
    thread_id = (await alice.threads.create())["thread_id"]
    run_id, parts = await _stream(alice, thread_id, "faulty", input=_ask('call echo_count {"to": 2}'))
    with anyio.fail_after(RUN_TIMEOUT):
        run = await alice.runs.get(thread_id, run_id)
        joined = await alice.runs.join(thread_id, run_id)
    await fault_server.settle()
    activity = fault_server.records.since(mark)

    assert run["status"] == "error", fault_server.failure_context()
    [error] = [data for event, data in parts if event == "error"]
    assert error == {"error": "NodeFault", "message": fault_graphs.FAULT_MESSAGE}
    assert joined["__error__"] == error
    # The tool ran in the run's own stdio server, which is gone now.
    [start] = activity.starts("stdio")
    [call] = activity.calls
    assert (call["tool"], call["pid"]) == ("count", start["pid"])
    assert not alive(start["pid"])

    # The thread goes on: the next run on it calls the server and answers.
    mark = fault_server.records.mark()
    next_run, state = await _wait(alice, thread_id, "faulty", input=_ask('call echo_add {"a": 2, "b": 3}'))
    await fault_server.settle()
    assert message_text(state["messages"]) == "echo_add returned: 5.0"
    assert (await alice.runs.get(thread_id, next_run))["status"] == "success"
    [start] = fault_server.records.since(mark).starts("stdio")
    assert not alive(start["pid"])


# --- a resumed run whose server crashes ----------------------------------------------------------


async def test_a_resumed_run_whose_server_crashes_finishes_with_an_error_message(
    fault_server: FaultServer, alice: Any
) -> None:
    await fault_server.settle()
    mark = fault_server.records.mark()
    thread_id = (await alice.threads.create())["thread_id"]
    _, paused = await _wait(alice, thread_id, "faulty", input=_ask("call echo_crash {}"))
    [interrupt] = paused["__interrupt__"]
    assert interrupt["value"]["action_requests"][0]["name"] == "echo_crash"
    await fault_server.settle()
    resume_mark = fault_server.records.mark()

    resumed, final = await _wait(
        alice, thread_id, "faulty", command={"resume": {"decisions": [{"type": "approve"}]}}
    )
    await fault_server.settle()
    activity = fault_server.records.since(resume_mark)

    assert (await alice.runs.get(thread_id, resumed))["status"] == "success"
    [start] = activity.starts("stdio")
    [call] = activity.calls
    assert (call["tool"], call["pid"]) == ("crash", start["pid"])
    # One server per run, each gone with its run.
    first, second = fault_server.records.since(mark).starts("stdio")
    assert second == start
    assert not alive(first["pid"])
    assert not alive(second["pid"])
    tool_message = next(m for m in final["messages"] if m["type"] == "tool")
    assert tool_message["status"] == "error"
    assert "echo" in message_text([tool_message])
    assert message_text(final["messages"]).startswith("echo_crash failed: ")
    assert (await alice.threads.get_state(thread_id))["next"] == []


# --- a model whose provider package is missing ---------------------------------------------------


async def test_reads_need_no_provider_package_and_a_run_names_it(
    fault_server: FaultServer, alice: Any
) -> None:
    with anyio.fail_after(RUN_TIMEOUT):
        [assistant] = await alice.assistants.search(graph_id="no_provider")
        [reference] = await alice.assistants.search(graph_id=GRAPH_ID)
        for xray in (False, True):
            graph = await alice.assistants.get_graph(assistant["assistant_id"], xray=xray)
            assert graph == await alice.assistants.get_graph(reference["assistant_id"], xray=xray)
        schemas = await alice.assistants.get_schemas(assistant["assistant_id"])
        reference_schemas = await alice.assistants.get_schemas(reference["assistant_id"])
        thread_id = (await alice.threads.create(graph_id="no_provider"))["thread_id"]
        assert (await alice.threads.get_state(thread_id))["values"] == {}
    for key in ("input_schema", "output_schema", "state_schema"):
        assert _untitled(schemas[key]) == _untitled(reference_schemas[key]), key

    _, parts = await _stream(alice, thread_id, "no_provider", input=_ask("hello"))
    [(event, error)] = parts
    assert (event, error["error"]) == ("error", "ConfigError"), fault_server.failure_context()
    assert "langchain-anthropic" in error["message"]
