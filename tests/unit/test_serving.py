"""`mcpbridge.serving` without sockets: loading, options, tool interfaces, runs through in-memory clients."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph_sdk.runtime import ServerRuntime
from mcp import Client
from pydantic import BaseModel

from mcpbridge import ConfigError
from mcpbridge._compat import SERVER_RUNTIME_CLASSES
from mcpbridge.cli import main
from mcpbridge.serving import AgentMCPServer, Caller, LocalGraphs, ServedGraph, ServedUser, open_checkpointer
from mcpbridge.serving.checkpointers import parse_checkpointer, require_checkpointer
from mcpbridge.serving.interface import interface_for
from mcpbridge.serving.loading import load_config_graphs, load_graph, parse_graph_arg
from mcpbridge.serving.progress import ProgressReporter
from mcpbridge.serving.users import VerifierAdapter, as_user, user_of_scope

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


def echo_graph() -> CompiledStateGraph[Any, Any, Any, Any]:
    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"{len(state['messages'])} messages")]}

    builder = StateGraph(MessagesState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile()


def text(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


# --- naming graphs -------------------------------------------------------------------------------


def test_graphs_load_by_module_and_by_file() -> None:
    by_module = load_graph("tests.serve.graphs:memo")
    assert by_module.name == "memo"
    by_file = parse_graph_arg("notes=./tests/serve/graphs.py:repeat", base=ROOT)
    assert by_file.name == "notes"
    assert not isinstance(by_file.graph, StateGraph)  # a StateGraph is compiled on load


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("nocolon", "name it as module:attr"),
        ("tests.serve.graphs:", "name it as module:attr"),
        ("no_such_module_xyz:graph", "cannot import module 'no_such_module_xyz'"),
        ("tests.serve.graphs:nothing", "has no attribute 'nothing'"),
        ("./tests/serve/missing.py:graph", "does not exist"),
        ("tests.serve.graphs:RECORD_ENV", "is a str, which cannot be served"),
    ],
)
def test_bad_graph_names_say_what_to_write(spec: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_graph(spec, base=ROOT)


def test_a_missing_attribute_lists_the_graphs_there() -> None:
    with pytest.raises(ConfigError) as raised:
        load_graph("tests.serve.graphs:nothing")
    assert "memo" in str(raised.value) and "echo_agent" in str(raised.value)


def test_langgraph_json_graphs_by_id(tmp_path: Path) -> None:
    [agent] = load_config_graphs(ROOT / "langgraph.json", ["agent"])
    assert agent.name == "agent"
    assert agent.description == "An agent whose runs use the example MCP echo servers (stdio and HTTP)"
    with pytest.raises(ConfigError, match="graph id 'nope' is not in .*; its graphs are agent"):
        load_config_graphs(ROOT / "langgraph.json", ["nope"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_graphs(tmp_path / "langgraph.json")
    (tmp_path / "langgraph.json").write_text(json.dumps({"graphs": {}}))
    with pytest.raises(ConfigError, match='no "graphs" mapping'):
        load_config_graphs(tmp_path / "langgraph.json")


def test_names_must_be_mcp_tool_names() -> None:
    with pytest.raises(ConfigError, match="not a valid MCP tool name"):
        ServedGraph("my agent", echo_graph())
    with pytest.raises(ConfigError, match="two graphs are named 'a'"):
        LocalGraphs([ServedGraph("a", echo_graph()), ServedGraph("a", echo_graph())])


# --- checkpointers -------------------------------------------------------------------------------


def test_checkpointer_options() -> None:
    assert parse_checkpointer("memory").kind == "memory"
    assert parse_checkpointer("sqlite:threads.db").target == "threads.db"
    assert parse_checkpointer("sqlite:///tmp/threads.db").target == "/tmp/threads.db"
    assert parse_checkpointer("postgres://u:p@localhost/db").kind == "postgres"
    with pytest.raises(ConfigError, match="unknown checkpointer 'redis://x'; use memory, sqlite:PATH"):
        parse_checkpointer("redis://x")
    with pytest.raises(ConfigError, match="needs a file path"):
        parse_checkpointer("sqlite:")


async def test_a_missing_checkpointer_package_names_the_extra() -> None:
    spec = parse_checkpointer("postgres://user:secret@127.0.0.1:1/db")
    try:
        import langgraph.checkpoint.postgres  # noqa: F401  # pyright: ignore[reportMissingImports, reportUnusedImport]
    except ImportError:
        pass
    else:
        pytest.skip("langgraph-checkpoint-postgres is installed")
    with pytest.raises(ConfigError, match=r"pip install 'mcpbridge\[postgres\]'"):
        require_checkpointer(spec)
    with pytest.raises(ConfigError, match="langgraph-checkpoint-postgres"):
        async with open_checkpointer(spec):
            pass


# --- tool interfaces -----------------------------------------------------------------------------


class Inner(BaseModel):
    x: int


class Outer(BaseModel):
    inner: Inner
    thread_id: str


def test_a_graph_schema_keeps_its_defs_and_gets_a_thread_argument() -> None:
    interface = interface_for(Outer.model_json_schema())
    schema = interface.input_schema
    assert "$defs" in schema and schema["properties"]["inner"] == {"$ref": "#/$defs/Inner"}
    assert interface.thread_key == "mcpbridge_thread_id"  # the graph has its own thread_id field
    parsed = interface.parse({"inner": {"x": 1}, "thread_id": "mine", "mcpbridge_thread_id": "t-1"})
    assert not isinstance(parsed, str)
    assert parsed.thread_id == "t-1"
    assert parsed.input == {"inner": {"x": 1}, "thread_id": "mine"}
    refused = interface.parse({"inner": {"x": "one"}, "thread_id": "mine"})
    assert isinstance(refused, str) and "inner/x" in refused


def test_an_unknown_schema_takes_any_object() -> None:
    interface = interface_for(None)
    assert not interface.chat
    assert interface.input_schema["type"] == "object"
    parsed = interface.parse({"anything": [1, 2], "thread_id": "t-1"})
    assert not isinstance(parsed, str)
    assert (parsed.input, parsed.thread_id) == ({"anything": [1, 2]}, "t-1")


# --- users ---------------------------------------------------------------------------------------


def test_verifier_answers_become_users() -> None:
    user = as_user({"identity": "alice", "permissions": ["mcp:remote"], "org": "acme"})
    assert isinstance(user, ServedUser)
    assert (user.identity, user.permissions, user.display_name) == ("alice", ("mcp:remote",), "alice")
    assert user["org"] == "acme" and "org" in user and dict(user.items())["identity"] == "alice"
    with pytest.raises(ConfigError, match="without a string 'identity'"):
        as_user({"permissions": []})
    with pytest.raises(ConfigError, match="return a mapping with 'identity'"):
        as_user(42)


async def test_the_verified_user_travels_in_the_access_token() -> None:
    async def verify(token: str) -> dict[str, Any] | None:
        return {"identity": "bob", "permissions": ["mcp:local"]} if token == "bob-token" else None

    adapter = VerifierAdapter(verify)
    assert await adapter.verify_token("other") is None
    token = await adapter.verify_token("bob-token")
    assert token is not None and token.client_id == "bob" and token.scopes == ["mcp:local"]
    assert user_of_scope({}) is None


# --- runs ----------------------------------------------------------------------------------------


async def test_factories_are_called_as_the_agent_server_calls_them() -> None:
    seen: list[ServerRuntime[Any]] = []

    @asynccontextmanager
    async def factory(
        runtime: ServerRuntime[Any],
    ) -> AsyncGenerator[CompiledStateGraph[Any, Any, Any, Any], None]:
        seen.append(runtime)
        yield echo_graph()

    backend = LocalGraphs([ServedGraph("echo", factory)])
    alice = ServedUser("alice", ("mcp:remote",))
    async with backend.running() as graphs:
        first = await graphs.call_tool("echo", {"message": "hi"}, Caller(alice), ProgressReporter(None))
        thread_id = (first.structured_content or {})["thread_id"]
        second = await graphs.call_tool(
            "echo", {"message": "again", "thread_id": thread_id}, Caller(alice), ProgressReporter(None)
        )
    assert text(first) == "1 messages" and text(second) == "3 messages"  # the thread kept the first turn
    described, run, read, run_again = seen
    execution_runtime, read_runtime = SERVER_RUNTIME_CLASSES
    assert isinstance(described, read_runtime) and described.access_context == "assistants.read"
    assert described.user is None  # described once, before any caller
    assert isinstance(run, execution_runtime) and run.access_context == "threads.create_run"
    assert run.user is alice and run.store is backend.store
    assert isinstance(read, read_runtime) and read.access_context == "threads.read"  # the thread looked up
    assert read.user is alice
    assert isinstance(run_again, execution_runtime) and run_again.user is alice


async def test_threads_belong_to_their_user_and_take_one_call_at_a_time() -> None:
    started, release = anyio.Event(), anyio.Event()

    async def slow(state: MessagesState) -> dict[str, Any]:
        if len(state["messages"]) > 1:
            started.set()
            await release.wait()
        return {"messages": [AIMessage(content="done")]}

    builder = StateGraph(MessagesState)
    builder.add_node("slow", slow)
    builder.add_edge(START, "slow")
    builder.add_edge("slow", END)
    backend = LocalGraphs([ServedGraph("slow", builder)])
    alice, bob = Caller(ServedUser("alice")), Caller(ServedUser("bob"))
    none = ProgressReporter(None)
    busy = probe = unknown = None
    async with backend.running() as graphs:
        with anyio.fail_after(10):
            first = await graphs.call_tool("slow", {"message": "hi"}, alice, none)
        thread_id = (first.structured_content or {})["thread_id"]
        # Bounded: were bob let into alice's thread, his run would wait in `slow` for a release that
        # never comes, and the leak would show as the suite's timeout instead of this failure.
        with anyio.fail_after(10):
            stolen = await graphs.call_tool("slow", {"message": "hi", "thread_id": thread_id}, bob, none)
        assert stolen.is_error and text(stolen).startswith(f"There is no thread {thread_id}")
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(
                    graphs.call_tool, "slow", {"message": "again", "thread_id": thread_id}, alice, none
                )
                await started.wait()
                busy = await graphs.call_tool(
                    "slow", {"message": "meanwhile", "thread_id": thread_id}, alice, none
                )
                # Regression: "busy" was said to anyone, before ownership (an existence oracle).
                probe = await graphs.call_tool("slow", {"message": "x", "thread_id": thread_id}, bob, none)
                unknown = await graphs.call_tool("slow", {"message": "x", "thread_id": "nope"}, bob, none)
                release.set()
    assert busy is not None and busy.is_error and text(busy).startswith(f"Thread {thread_id} is busy")
    assert probe is not None and unknown is not None
    assert probe.is_error and text(probe) == text(unknown).replace("nope", thread_id)


@pytest.mark.parametrize(
    ("host", "warned"),
    [("0.0.0.0", True), ("10.1.2.3", True), ("example.com", True), ("::", True)]
    + [("127.0.0.1", False), ("127.0.0.2", False), ("::1", False), ("[::1]", False), ("localhost", False)],
)
def test_serving_without_auth_beyond_loopback_warns(
    host: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from mcpbridge.serving.server import _warn_when_exposed

    with caplog.at_level(logging.WARNING, logger="mcpbridge"):
        _warn_when_exposed(host, authenticated=False)
        _warn_when_exposed(host, authenticated=True)
    assert [r.getMessage() for r in caplog.records if "without auth" in r.getMessage()] == (
        [caplog.records[0].getMessage()] if warned else []
    )


async def test_an_in_memory_client_sees_tools_and_results() -> None:
    server = AgentMCPServer.from_graphs({"echo": echo_graph()})
    async with Client(server.lowlevel) as client:
        [tool] = (await client.list_tools()).tools
        result = await client.call_tool("echo", {"message": "hello"})
    assert tool.name == "echo" and tool.input_schema["required"] == ["message"]
    assert text(result) == "1 messages"
    assert (result.structured_content or {})["status"] == "success"


# --- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve"], "name a graph to serve"),
        (["serve", "nope"], "name it as module:attr"),
        (["serve", "--config", "langgraph.json", "nope"], "graph id 'nope' is not in"),
        (["serve", "tests.serve.graphs:memo", "--checkpointer", "redis://x"], "unknown checkpointer"),
        (
            ["serve", "tests.serve.graphs:memo", "--auth", "examples.serve_auth:verify"],
            "--auth is for --transport http",
        ),
        (
            ["serve", "--remote", "http://127.0.0.1:1", "--checkpointer", "sqlite:x.db"],
            "does not apply to --remote",
        ),
        (["serve", "tests.serve.graphs:memo", "--transport", "http", "--auth", "remote"], "needs --remote"),
        (
            ["serve", "tests.serve.graphs:memo", "--transport", "http", "--auth", "examples.auth:USERS"],
            "is a dict",
        ),
    ],
)
def test_bad_command_lines_exit_2_with_the_reason(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


async def verify_nobody(token: str) -> None:
    """A bearer-token verifier that knows no token."""
    return None


def test_an_auth_verifier_named_on_the_command_line_is_loaded() -> None:
    from mcpbridge.cli import _verifier  # pyright: ignore[reportPrivateUsage]

    assert _verifier(f"{__name__}:verify_nobody") is verify_nobody
