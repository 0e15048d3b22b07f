"""A run's side of OAuth without an authorization server: the interrupt, the provider's scope."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from mcpbridge import HttpServer, ServerRefusedError, StdioServer, UrlPolicy
from mcpbridge._compat import server_runtime
from mcpbridge.errors import ServerFailure
from mcpbridge.factory import BridgeMiddleware, graph_factory
from mcpbridge.oauth import (
    KeyRing,
    OAuthCredentials,
    OAuthFlow,
    OAuthSettings,
    StoreClientRegistry,
    StoreStateStore,
    TokenStore,
    authorization_node,
)
from mcpbridge.scoping import UserContext
from mcpbridge.testing import OfflineChatModel

pytestmark = pytest.mark.anyio

URL = "https://as.example/authorize?state=s3cret"


def needs(server: str) -> ServerFailure:
    return ServerFailure(
        server=server, reason="needs the user's authorization", required=False, authorization_url=URL
    )


SAVER = InMemorySaver()


def agent(failures: dict[str, ServerFailure]) -> Any:
    """The run's graph, as the factory builds it for each run (a resume included)."""
    return create_agent(
        OfflineChatModel(), tools=[], middleware=[BridgeMiddleware(failures)], checkpointer=SAVER
    )


async def run_until_interrupt(failures: dict[str, ServerFailure], thread: str) -> dict[str, Any]:
    config: dict[str, Any] = {"configurable": {"thread_id": thread}}
    result = await agent(failures).ainvoke({"messages": [("user", "hi")]}, config)
    return {"config": config, "result": result}


async def test_one_interrupt_lists_every_server_needing_authorization_with_its_url() -> None:
    failures = {
        "a": needs("a"),
        "b": needs("b"),
        "c": ServerFailure(server="c", reason="down", required=False),
    }
    ran = await run_until_interrupt(failures, "one")
    (pending,) = ran["result"]["__interrupt__"]
    assert pending.value == {
        "type": "mcp_input_request",
        "requests": {
            name: {
                "kind": "elicitation",
                "mode": "url",
                "message": (
                    f"Sign in at this URL to let the assistant use the MCP server {name!r} on your "
                    "behalf, then answer accept; decline to go on without it."
                ),
                "url": URL,
            }
            for name in ("a", "b")
        },
    }
    assert URL not in repr(failures["a"])


async def test_a_declined_server_is_skipped_with_the_reason() -> None:
    failures = {"a": needs("a"), "b": needs("b")}
    ran = await run_until_interrupt(failures, "declined")
    # The resumed run's factory call refuses the servers again, for want of their tokens.
    graph = agent({"a": needs("a"), "b": needs("b")})
    events: list[Any] = []
    resume = Command(resume={"a": {"action": "decline"}, "b": {"action": "accept"}})
    async for event in graph.astream(resume, ran["config"], stream_mode="custom"):
        events.append(event)
    (skipped,) = [e for e in events if e.get("type") == "mcp_servers_skipped"]
    assert skipped["servers"] == [
        {"server": "a", "reason": "the user declined to authorize it"},
        {"server": "b", "reason": "the user has not completed its authorization yet"},
    ]


async def test_no_interrupt_without_a_server_needing_authorization() -> None:
    ran = await run_until_interrupt({"c": ServerFailure(server="c", reason="down", required=False)}, "none")
    assert "__interrupt__" not in ran["result"]


def with_node(failures: dict[str, ServerFailure]) -> Any:
    """A `graph_factory` graph of one's own: `authorization_node` first, then a step of the graph's."""
    graph = StateGraph(MessagesState)
    graph.add_node("authorize", authorization_node(failures))
    graph.add_node("reply", lambda state: {"messages": [AIMessage("done")]})
    graph.add_edge(START, "authorize")
    graph.add_edge("authorize", "reply")
    return graph.compile(checkpointer=SAVER)


async def test_the_authorization_node_raises_the_agents_interrupt_and_reports_the_answers() -> None:
    failures = {"a": needs("a"), "c": ServerFailure(server="c", reason="down", required=False)}
    config: dict[str, Any] = {"configurable": {"thread_id": "node"}}
    first = await with_node(failures).ainvoke({"messages": [("user", "hi")]}, config)
    from_agent = (await run_until_interrupt(failures, "node-agent"))["result"]
    (pending,) = first["__interrupt__"]
    assert pending.value == from_agent["__interrupt__"][0].value
    assert pending.value["requests"]["a"]["url"] == URL
    events: list[Any] = []
    resume = Command(resume={"a": {"action": "decline"}})
    async for event in with_node(failures).astream(resume, config, stream_mode=["custom", "values"]):
        events.append(event)
    (skipped,) = [data for mode, data in events if mode == "custom"]
    assert skipped["servers"] == [
        {"server": "a", "reason": "the user declined to authorize it"},
        {"server": "c", "reason": "down"},
    ]
    assert events[-1][1]["messages"][-1].content == "done"


async def test_the_authorization_node_passes_without_failures_and_graph_factory_hands_them_over() -> None:
    config: dict[str, Any] = {"configurable": {"thread_id": "node-none"}}
    result = await with_node({}).ainvoke({"messages": [("user", "hi")]}, config)
    assert "__interrupt__" not in result and result["messages"][-1].content == "done"
    given: list[Any] = []

    def build(tools: list[Any], failures: Any) -> Any:
        given.append(dict(failures))
        return with_node(failures)

    factory = graph_factory([], build)
    async with factory(server_runtime("assistants.read", user=None, store=None)) as graph:
        assert graph is not None
    assert given == [{}]  # outside runs: no failures


def credentials(servers: list[str] | None = None) -> OAuthCredentials:
    store = InMemoryStore()
    settings = OAuthSettings(
        redirect_uri="http://127.0.0.1:1/cb", url_policy=UrlPolicy(allow=["127.0.0.1:*"])
    )
    flow = OAuthFlow(settings, states=StoreStateStore(store), clients=StoreClientRegistry(store))
    return OAuthCredentials(flow, TokenStore(store, KeyRing.parse(KeyRing.generate("k1"))), servers=servers)


async def test_the_provider_covers_only_its_http_servers_and_refuses_anonymous_runs() -> None:
    oauth = credentials(["linear"])
    alice = UserContext(identity="alice")
    assert await oauth(alice, HttpServer(name="other", url="http://127.0.0.1:1/mcp")) is None
    assert await credentials()(alice, StdioServer(name="linear", command="true")) is None
    with pytest.raises(ServerRefusedError, match="no authenticated user"):
        await oauth(UserContext(), HttpServer(name="linear", url="http://127.0.0.1:1/mcp"))
