"""Runs of an agent factory with an OAuth-protected MCP server, against a real authorization server.

oidc-provider on 127.0.0.1 and the SDK's protected MCP server (it verifies each
token with the issuer's keys and answers ``whoami`` with the token's subject), as
in ``test_oauth_tokens.py``; a headless client stands in for the user's browser.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command
from pydantic import SecretStr

from examples.oauth_servers import AuthorizationServer, authorization_server, protected_server
from mcpbridge import HttpServer, UrlPolicy
from mcpbridge._compat import RUN_ACCESS, server_runtime
from mcpbridge.errors import ServerFailure
from mcpbridge.factory import agent_factory, graph_factory
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
from mcpbridge.scoping import Scoped, UserServers
from mcpbridge.testing import OfflineChatModel
from tests.support.oidc import login

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

LOCAL = UrlPolicy(allow=["127.0.0.1:*"])
KEYS = KeyRing.parse(KeyRing.generate("k1"))
SERVER = "protected"
REDIRECT = "http://127.0.0.1:9/mcpbridge/oauth/callback"  # nothing listens: `login` stops at it


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthorizationServer]:
    with authorization_server(tmp_path_factory.mktemp("oidc")) as server:
        yield server


@pytest.fixture(scope="module")
def mcp_url(auth_server: AuthorizationServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The protected MCP server's URL (a process of its own, stopped by its handle)."""
    with protected_server(auth_server.issuer, tmp_path_factory.mktemp("protected")) as url:
        yield url


@dataclass
class RunUser:
    identity: str
    permissions: tuple[str, ...] = ()
    is_authenticated: bool = True
    display_name: str = ""


@dataclass
class Deployment:
    """One deployment: its store, flow, token store, factory and checkpointer."""

    store: InMemoryStore
    flow: OAuthFlow
    tokens: TokenStore
    url: str
    saver: InMemorySaver = dataclasses.field(default_factory=InMemorySaver)

    def __post_init__(self) -> None:
        oauth = OAuthCredentials(self.flow, self.tokens)
        server = HttpServer(name=SERVER, url=self.url, required=False)
        self.factory = agent_factory(
            UserServers([Scoped(server, credentials=oauth)]), OfflineChatModel(), pool=False, tool_cache=False
        )

    async def run(self, user: str, thread: str, given: Any) -> dict[str, Any]:
        """One run of the factory's graph for ``user`` (a resume is a run too: a new factory call)."""
        runtime = server_runtime(RUN_ACCESS, user=RunUser(user), store=self.store)
        async with self.factory(runtime) as graph:
            graph.checkpointer = self.saver  # the Agent Server gives its graphs its checkpointer
            return await graph.ainvoke(given, {"configurable": {"thread_id": thread}})


def asked(result: dict[str, Any]) -> dict[str, Any]:
    (pending,) = result["__interrupt__"]
    assert pending.value["type"] == "mcp_input_request"
    return pending.value["requests"]


def subject(result: dict[str, Any]) -> str:
    """The subject the protected server saw, from the run's ``whoami`` result."""
    (message,) = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert message.status == "success", message.content
    blocks: Any = message.content
    text = (
        blocks if isinstance(blocks, str) else "".join(b["text"] for b in blocks if b.get("type") == "text")
    )
    return json.loads(text)["subject"]


ASK = {"messages": [("user", "whoami {}")]}


async def test_alice_authorizes_in_an_interrupt_and_her_resumed_run_calls_as_her(
    auth_server: AuthorizationServer, mcp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = InMemoryStore()
    settings = OAuthSettings(redirect_uri=REDIRECT, url_policy=LOCAL)
    with anyio.fail_after(60):
        async with OAuthFlow(
            settings, states=StoreStateStore(store), clients=StoreClientRegistry(store)
        ) as flow:
            app = Deployment(store, flow, TokenStore(store, KEYS), mcp_url)
            first = asked(await app.run("alice", "a", ASK))
            assert list(first) == [SERVER]
            request = first[SERVER]
            assert request["kind"] == "elicitation" and request["mode"] == "url"
            bobs = asked(await app.run("bob", "b", ASK))[SERVER]["url"]
            assert bobs != request["url"]

            # Alice signs in; the callback completes her authorization and keeps her tokens.
            done = await flow.complete(
                user="alice", params=await login(request["url"], "alice", redirect_uri=REDIRECT)
            )
            await app.tokens.put("alice", done.server, done.server_url, done.tokens)
            resumed = await app.run("alice", "a", Command(resume={SERVER: {"action": "accept"}}))
            assert "__interrupt__" not in resumed
            assert subject(resumed) == "alice"

            # Bob is unaffected: still asked, and never served with alice's tokens.
            assert asked(await app.run("bob", "b2", ASK))[SERVER]["url"]

            # The server refuses an access token (as once it has expired): one refresh, then the call goes.
            consumed = len(auth_server.events("refresh_token.consumed"))
            stale = dataclasses.replace(
                done.tokens, access_token=SecretStr("no-longer-valid"), expires_at=time.time() + 3600
            )
            await app.tokens.put("alice", SERVER, mcp_url, stale)
            again = await app.run("alice", "a2", ASK)
            assert subject(again) == "alice"
            assert len(auth_server.events("refresh_token.consumed")) == consumed + 1
            kept = await app.tokens.get("alice", mcp_url)
            assert kept is not None and kept.access_token.get_secret_value() != "no-longer-valid"
    logged = "\n".join(caplog.messages)
    assert "MCP server 'protected' refused the access token of 'alice'" in logged  # the 401 path, not expiry
    assert request["url"] not in logged and bobs not in logged
    assert done.tokens.access_token.get_secret_value() not in logged


async def test_a_declined_server_is_skipped_and_the_run_goes_on(mcp_url: str) -> None:
    store = InMemoryStore()
    settings = OAuthSettings(redirect_uri=REDIRECT, url_policy=LOCAL)
    with anyio.fail_after(60):
        async with OAuthFlow(
            settings, states=StoreStateStore(store), clients=StoreClientRegistry(store)
        ) as flow:
            app = Deployment(store, flow, TokenStore(store, KEYS), mcp_url)
            assert asked(await app.run("alice", "d", ASK))
            resumed = await app.run("alice", "d", Command(resume={SERVER: {"action": "decline"}}))
            assert "__interrupt__" not in resumed
            assert not [m for m in resumed["messages"] if isinstance(m, ToolMessage)]


def own_graph(tools: list[BaseTool], failures: Mapping[str, ServerFailure]) -> Any:
    """A `graph_factory` builder's graph: the authorization node, then a node calling ``whoami``."""

    async def call(state: MessagesState) -> dict[str, Any]:
        found = [t for t in tools if t.name == "whoami"]
        if not found:
            return {"messages": [AIMessage("no whoami tool")]}
        answer = await found[0].ainvoke({"type": "tool_call", "id": "c1", "name": "whoami", "args": {}})
        return {"messages": [answer]}

    graph = StateGraph(MessagesState)
    graph.add_node("authorize", authorization_node(failures))
    graph.add_node("call", call)
    graph.add_edge(START, "authorize")
    graph.add_edge("authorize", "call")
    return graph


async def test_a_graph_factory_graph_asks_in_its_authorization_node_and_calls_as_the_user(
    mcp_url: str,
) -> None:
    store = InMemoryStore()
    settings = OAuthSettings(redirect_uri=REDIRECT, url_policy=LOCAL)
    saver = InMemorySaver()
    with anyio.fail_after(60):
        async with OAuthFlow(
            settings, states=StoreStateStore(store), clients=StoreClientRegistry(store)
        ) as flow:
            tokens = TokenStore(store, KEYS)
            server = HttpServer(name=SERVER, url=mcp_url, required=False)
            servers = UserServers([Scoped(server, credentials=OAuthCredentials(flow, tokens))])
            factory = graph_factory(servers, own_graph, pool=False, tool_cache=False)

            async def run(given: Any) -> dict[str, Any]:
                runtime = server_runtime(RUN_ACCESS, user=RunUser("alice"), store=store)
                async with factory(runtime) as graph:
                    graph.checkpointer = saver
                    return await graph.ainvoke(given, {"configurable": {"thread_id": "own"}})

            request = asked(await run(ASK))[SERVER]
            assert request["mode"] == "url"
            done = await flow.complete(
                user="alice", params=await login(request["url"], "alice", redirect_uri=REDIRECT)
            )
            await tokens.put("alice", done.server, done.server_url, done.tokens)
            resumed = await run(Command(resume={SERVER: {"action": "accept"}}))
    assert subject(resumed) == "alice"
