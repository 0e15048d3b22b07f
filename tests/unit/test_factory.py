"""Agent Server factories: one topology in every access context, servers touched for runs only."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain.chat_models import init_chat_model as real_init_chat_model
from langchain_core.tools import BaseTool, tool
from langgraph.store.memory import InMemoryStore
from langgraph_sdk.runtime import ServerRuntime
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.message import ServerMessageMetadata

import examples.agent
import mcpbridge.factory
from mcpbridge import MemoryServer, ServerConfig
from mcpbridge._compat import RUN_ACCESS, server_runtime
from mcpbridge.errors import ConfigError, TopologyMismatchError, UsageError
from mcpbridge.factory import agent_factory, graph_factory
from mcpbridge.interrupts import InputPolicy
from mcpbridge.sampling import BUDGET_NAMESPACE, Sampling
from mcpbridge.testing import OfflineChatModel, echo
from mcpbridge.topology import topology

pytestmark = pytest.mark.anyio

READ_CONTEXTS = ("threads.read", "threads.update", "assistants.read")


@tool
def local_note(text: str) -> str:
    """Write a note."""
    return text


def tiny_server() -> MCPServer:
    server = MCPServer("tiny")

    @server.tool()
    async def double(x: int) -> int:
        """Double a number."""
        return 2 * x

    return server


@dataclass
class User:
    identity: str
    permissions: Sequence[str] = ()
    is_authenticated: bool = True
    display_name: str = ""


def run_runtime(user: Any = None) -> ServerRuntime[Any]:
    return server_runtime(RUN_ACCESS, user=user, store=InMemoryStore())


def read_runtime(context: Any) -> ServerRuntime[Any]:
    return server_runtime(context, user=None, store=InMemoryStore())


@dataclass
class ServersSpy:
    """A `servers` function that records every call."""

    servers: list[ServerConfig]
    calls: list[ServerRuntime[Any]] = field(default_factory=list[ServerRuntime[Any]])

    def __call__(self, runtime: ServerRuntime[Any]) -> list[ServerConfig]:
        self.calls.append(runtime)
        return self.servers


def tools_listed(graph_json: dict[str, Any]) -> list[str]:
    [node] = [node for node in graph_json["nodes"] if node["id"] == "tools"]
    return node["metadata"]["__tools"]


def without_tool_lists(graph_json: dict[str, Any]) -> dict[str, Any]:
    nodes = [{k: v for k, v in node.items() if k != "metadata"} for node in graph_json["nodes"]]
    return {**graph_json, "nodes": nodes}


async def test_agent_factory_read_and_run_graphs_match() -> None:
    spy = ServersSpy([MemoryServer(name="tiny", server=tiny_server())])
    factory = agent_factory(
        spy,
        OfflineChatModel(),
        tools=[local_note],
        middleware=[HumanInTheLoopMiddleware(interrupt_on={"double": True})],
    )
    reads = []
    for context in READ_CONTEXTS:
        async with factory(read_runtime(context)) as graph:
            reads.append(graph)
    assert spy.calls == []  # reads never ask for servers, let alone connect
    assert all(graph is reads[0] for graph in reads)  # one cached read graph

    runtime = run_runtime()
    async with factory(runtime) as run_graph:
        assert spy.calls == [runtime]
        assert run_graph is not reads[0]
        assert topology(run_graph) == topology(reads[0])
        for xray in (False, True):
            read_json, run_json = (
                reads[0].get_graph(xray=xray).to_json(),
                run_graph.get_graph(xray=xray).to_json(),
            )
            # Only the tools node's metadata tells them apart: it lists the tools bound.
            assert tools_listed(read_json) == ["local_note"]
            assert tools_listed(run_json) == ["local_note", "double"]
            assert without_tool_lists(run_json) == without_tool_lists(read_json)
        # The run's graph really has the MCP tool.
        result = await run_graph.ainvoke({"messages": [("user", 'call local_note {"text": "hi"}')]})
        assert result["messages"][-1].text == "local_note returned: hi"


# Neither provider package is installed here, as on a deployment whose reads must not need it.
UNRESOLVABLE_MODELS = [
    pytest.param("anthropic:claude-x", ImportError, "the langchain-anthropic package", id="anthropic"),
    pytest.param("nonexistent_provider:some-model", ValueError, "nonexistent_provider", id="unknown"),
]


@pytest.mark.parametrize(("spec", "error", "message"), UNRESOLVABLE_MODELS)
async def test_reads_never_resolve_a_model_string(
    monkeypatch: pytest.MonkeyPatch, spec: str, error: type[Exception], message: str
) -> None:
    resolved: list[str] = []
    installed: list[bool] = [False]

    def init_chat_model(model: str, **kwargs: Any) -> Any:
        resolved.append(model)
        return OfflineChatModel() if installed[0] else real_init_chat_model(model, **kwargs)

    monkeypatch.setattr(mcpbridge.factory, "init_chat_model", init_chat_model)
    factory = agent_factory([MemoryServer(name="tiny", server=tiny_server())], spec, tools=[local_note])
    reads: list[Any] = []
    for context in READ_CONTEXTS:
        async with factory(read_runtime(context)) as read:
            reads.append(read)
    assert resolved == []  # no read resolves the string
    expected = topology(reads[0])
    assert "tools" in expected.nodes
    with anyio.fail_after(5), pytest.raises(UsageError, match="resolved for runs only"):
        await reads[0].ainvoke({"messages": [("user", "hi")]})  # a read graph is never run

    with pytest.raises(ConfigError, match=message) as caught:  # a run fails, naming what is missing
        async with factory(run_runtime()):
            pytest.fail("a run resolved a model whose provider package is missing")
    assert isinstance(caught.value.__cause__, error)
    assert caught.value.field == "model"
    assert resolved == [spec]

    installed[0] = True  # the provider's package, once installed, serves runs of the same topology
    async with factory(run_runtime()) as run:
        assert resolved == [spec, spec]
        assert topology(run) == expected


async def test_a_builder_that_drops_nodes_without_tools_fails_the_run() -> None:
    model = OfflineChatModel()
    spy = ServersSpy([MemoryServer(name="tiny", server=tiny_server())])

    def build(tools: list[BaseTool]) -> Any:
        return create_agent(model, tools=tools)  # no tools node when `tools` is empty

    factory = graph_factory(spy, build)
    async with factory(read_runtime("assistants.read")) as read:
        assert "tools" not in topology(read).nodes
    with pytest.raises(TopologyMismatchError) as caught:
        async with factory(run_runtime()):
            pytest.fail("the factory yielded a graph whose topology differs from the read graph")
    assert "node 'tools' is extra" in caught.value.differences
    assert len(spy.calls) == 1


async def test_errors_come_out_of_the_factory_unwrapped() -> None:
    """The Agent Server matches run errors by type: no exception group may wrap them."""
    model = OfflineChatModel()
    factory = graph_factory(
        [MemoryServer(name="tiny", server=tiny_server())], lambda tools: create_agent(model, tools)
    )
    with pytest.raises(TopologyMismatchError):
        async with factory(run_runtime()):
            pass
    factory = agent_factory([MemoryServer(name="tiny", server=tiny_server())], model)
    with pytest.raises(LookupError, match="raised in the run"):
        async with factory(run_runtime()):
            raise LookupError("raised in the run")


@pytest.mark.parametrize(
    ("permissions", "tools"),
    [
        pytest.param([examples.agent.REMOTE_PERMISSION], {"local_whoami", "remote_whoami"}, id="mcp:remote"),
        pytest.param([], {"local_whoami"}, id="no permission"),
    ],
)
async def test_the_example_agent_has_one_topology_for_every_user(
    monkeypatch: pytest.MonkeyPatch, permissions: list[str], tools: set[str]
) -> None:
    """``examples/agent.py``: ``remote`` for users with ``mcp:remote`` only, one graph shape for all."""
    in_memory = {
        name: MemoryServer(name=name, server=echo.server, prefix=name) for name in ("local", "remote")
    }
    entries = tuple(
        dataclasses.replace(entry, server=in_memory[entry.server.name])
        for entry in examples.agent.servers.entries
    )
    monkeypatch.setattr(examples.agent.servers, "entries", entries)
    async with examples.agent.make_graph(read_runtime("threads.read")) as read:
        expected = topology(read)
    async with examples.agent.make_graph(run_runtime(User("carol", permissions))) as run:
        assert topology(run) == expected
        node = run.nodes["tools"].bound
        offered = {name for name in getattr(node, "tools_by_name", {}) if name.endswith("_whoami")}
        assert offered == tools


def sampling_server() -> MCPServer:
    server = MCPServer("sampler")

    @server.tool()
    async def summarize(text: str, ctx: Context) -> str:
        """Ask the client's model."""
        message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=text))
        request = types.CreateMessageRequest(
            params=types.CreateMessageRequestParams(messages=[message], max_tokens=20)
        )
        related = ServerMessageMetadata(related_request_id=ctx.request_id)
        result = await ctx.session.send_request(request, types.CreateMessageResult, metadata=related)
        return f"{result.model}: {result.content}"

    return server


async def test_agent_factory_samples_the_agents_own_model_within_the_runs_store_budget() -> None:
    policy = InputPolicy(sampling=Sampling(servers=["sampler"], daily_tokens=10_000))
    server = MemoryServer(name="sampler", server=sampling_server(), protocol="legacy")
    factory = agent_factory([server], OfflineChatModel(), input_policy=policy, pool=False)
    runtime = run_runtime(User("alice"))
    async with factory(runtime) as graph:
        config: Any = {"configurable": {"thread_id": "t", "langgraph_auth_user_id": "alice"}}
        result = await graph.ainvoke({"messages": [("user", 'Call summarize {"text": "hi"}')]}, config)
    [answer] = [m for m in result["messages"] if m.type == "tool"]
    assert "OfflineChatModel" in str(answer.content)  # the agent's model answered
    [spent] = await runtime.store.asearch((*BUDGET_NAMESPACE, "alice"))
    assert spent.value["tokens"] > 0
