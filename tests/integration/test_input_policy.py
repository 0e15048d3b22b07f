"""A server's requests during a call answered by the deployment's policy: elicitation, sampling, roots.

The inquiring example server asks in both protocol eras (2025-11-25: requests while the
call is open; 2026-07-28: ``input_required`` rounds), over stdio and streamable HTTP,
through a real ``ToolNode``. What the server got is read from its own record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command

from mcpbridge import Bridge, ConnectError
from mcpbridge.interrupts import INPUT_REQUEST, ElicitationAnswer, ElicitationRequest, InputPolicy
from mcpbridge.sampling import BUDGET_NAMESPACE, Sampling
from mcpbridge.scoping import UserContext, UserServers
from mcpbridge.testing import OfflineChatModel
from tests.support.servers.inquiring import SECRET_URL

from .graphs import call, run_config, text_of, tool_calls
from .support import ExampleServer, HttpServerProcess, Protocol, RecordFile, Transport

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def _inquiring(
    request: pytest.FixtureRequest, transport: Transport, protocol: Protocol, tmp: Path
) -> ExampleServer:
    if transport == "http":
        http: HttpServerProcess = request.getfixturevalue("inquiring_http")
        return ExampleServer("inquiring", transport, protocol, http.records.view(), http)
    return ExampleServer("inquiring", transport, protocol, RecordFile(tmp / "inquiring-calls.jsonl"))


@pytest.fixture
def inquiring(
    request: pytest.FixtureRequest, transport: Transport, protocol: Protocol, tmp_path: Path
) -> ExampleServer:
    """The inquiring server over each transport, in each protocol era."""
    return _inquiring(request, transport, protocol, tmp_path)


@pytest.fixture
def legacy(request: pytest.FixtureRequest, transport: Transport, tmp_path: Path) -> ExampleServer:
    """The inquiring server over each transport, on the 2025-11-25 protocol."""
    return _inquiring(request, transport, "legacy", tmp_path)


def graph_of(tools: Sequence[BaseTool]) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode(list(tools)))
    builder.add_edge(START, "tools")
    return builder.compile()


async def run_one(bridge: Bridge, name: str, **args: Any) -> tuple[ToolMessage, dict[str, Any]]:
    """Call tool ``name`` through a ToolNode as alice; its message and the whole result."""
    result = await graph_of(bridge.tools).ainvoke(tool_calls(call(name, "c1", **args)), run_config())
    messages = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    return (messages[0] if messages else None), result  # pyright: ignore[reportReturnType]


def outcome(server: ExampleServer, tool: str) -> Any:
    [entry] = server.records.entries(tool=tool)
    return entry["outcome"]


# --- elicitation (2025-11-25) ----------------------------------------------------------------


async def test_elicitation_is_declined_by_default_and_the_result_says_so(legacy: ExampleServer) -> None:
    with anyio.fail_after(60):
        async with Bridge([legacy.config()], user="alice") as bridge:
            message, _ = await run_one(bridge, "ask", question="Who books?")
    assert outcome(legacy, "ask") == {"action": "decline"}
    assert "it was declined" in text_of(message)


async def test_a_handler_answers_with_the_call_it_serves(legacy: ExampleServer) -> None:
    seen: list[ElicitationRequest] = []

    async def answer(request: ElicitationRequest) -> ElicitationAnswer:
        seen.append(request)
        return ElicitationAnswer("accept", {"name": "Ada", "seats": 2})

    policy = InputPolicy(elicitation=answer)
    with anyio.fail_after(60):
        async with Bridge([legacy.config()], user="alice", input_policy=policy) as bridge:
            message, _ = await run_one(bridge, "ask", question="Who books?")
    [request] = seen
    assert (request.server, request.tool, request.user, request.mode) == ("inquiring", "ask", "alice", "form")
    assert request.message == "Who books?"
    assert request.schema is not None and request.schema["required"] == ["name"]
    assert outcome(legacy, "ask") == {"action": "accept", "content": {"name": "Ada", "seats": 2}}
    assert "mcpbridge:" not in text_of(message)


async def test_content_off_the_schema_is_declined(legacy: ExampleServer) -> None:
    async def answer(request: ElicitationRequest) -> ElicitationAnswer:
        return ElicitationAnswer("accept", {"seats": "two"})  # no name, and seats not an integer

    with anyio.fail_after(60):
        async with Bridge([legacy.config()], input_policy=InputPolicy(elicitation=answer)) as bridge:
            await run_one(bridge, "ask", question="Who books?")
    assert outcome(legacy, "ask") == {"action": "decline"}


async def test_url_mode_logs_nothing_of_the_url(
    legacy: ExampleServer, caplog: pytest.LogCaptureFixture
) -> None:
    urls: list[str | None] = []

    async def answer(request: ElicitationRequest) -> ElicitationAnswer:
        urls.append(request.url)
        raise RuntimeError(f"cannot open {request.url}")  # a handler failing with the URL in its message

    caplog.set_level(logging.DEBUG)
    with anyio.fail_after(60):
        async with Bridge([legacy.config()], input_policy=InputPolicy(elicitation=answer)) as bridge:
            message, _ = await run_one(bridge, "visit")
    assert urls == [SECRET_URL]
    assert outcome(legacy, "visit") == {"action": "decline"}
    assert "very-secret" not in caplog.text and "login.example.com" not in caplog.text
    assert "very-secret" not in text_of(message)


async def test_2026_elicitation_still_interrupts(inquiring_http: HttpServerProcess) -> None:
    server = ExampleServer("inquiring", "http", "auto", inquiring_http.records.view(), inquiring_http)
    builder = StateGraph(MessagesState)
    async with Bridge([server.config()], input_policy=InputPolicy()) as bridge:
        builder.add_node("tools", ToolNode(bridge.tools))
        builder.add_edge(START, "tools")
        graph: Any = builder.compile(checkpointer=InMemorySaver())
        with anyio.fail_after(60):
            result = await graph.ainvoke(tool_calls(call("visit", "c1")), run_config())
    [pending] = result["__interrupt__"]
    assert pending.value["type"] == INPUT_REQUEST
    assert pending.value["requests"]["url"]["url"] == SECRET_URL


# --- sampling (both eras) --------------------------------------------------------------------


def sampling_policy(**limits: Any) -> InputPolicy:
    options: dict[str, Any] = {"servers": ["inquiring"], "model": OfflineChatModel(), **limits}
    return InputPolicy(sampling=Sampling(**options))


async def test_sampling_answers_within_the_budget_kept_in_the_store(inquiring: ExampleServer) -> None:
    store = InMemoryStore()
    policy = sampling_policy(daily_tokens=10_000)
    with anyio.fail_after(60):
        async with Bridge([inquiring.config()], user="alice", input_policy=policy, store=store) as bridge:
            message, _ = await run_one(bridge, "summarize", text="MCP is a protocol.")
    [answer] = outcome(inquiring, "summarize")
    assert answer["role"] == "assistant" and answer["model"] == "OfflineChatModel"
    assert "offline model" in answer["content"]["text"]
    assert "mcpbridge:" not in text_of(message)
    [spent] = await store.asearch((*BUDGET_NAMESPACE, "alice"))
    assert 0 < spent.value["tokens"] < 10_000


def declined(answer: Any) -> str:
    """The reason a declined sampling request carried (2025: the error; 2026: the decline's ``_meta``)."""
    if "error" in answer:
        return answer["error"]
    assert answer["action"] == "decline"
    return answer["_meta"]["dev.mcpbridge/reason"]


async def test_a_spent_budget_declines_and_the_server_is_told(inquiring: ExampleServer) -> None:
    store = InMemoryStore()
    policy = sampling_policy(daily_tokens=150, max_tokens=50)
    with anyio.fail_after(60):
        async with Bridge([inquiring.config()], user="alice", input_policy=policy, store=store) as bridge:
            await run_one(bridge, "summarize", text="x" * 200, times=2)
    first, second = outcome(inquiring, "summarize")
    assert first["role"] == "assistant"  # within the budget
    assert "budget is spent" in declined(second)


async def test_too_many_requests_per_call_and_oversized_prompts_are_declined(
    inquiring: ExampleServer,
) -> None:
    policy = sampling_policy(daily_tokens=None, max_per_call=1, max_prompt_chars=1000)
    with anyio.fail_after(60):
        async with Bridge([inquiring.config()], input_policy=policy) as bridge:
            message, _ = await run_one(bridge, "summarize", text="short", times=2)
            await run_one(bridge, "summarize", text="y" * 5000)
    assert "at most 1 requests per tool call]" in text_of(message)  # the result says so, in both eras
    [first, second], [big] = (e["outcome"] for e in inquiring.records.entries(tool="summarize"))
    assert first["role"] == "assistant"
    assert "at most 1 requests per tool call" in declined(second)
    assert "over the 1,000 allowed" in declined(big)


async def test_a_server_not_named_may_not_sample(inquiring: ExampleServer) -> None:
    policy = InputPolicy(sampling=Sampling(servers=["another"], model=OfflineChatModel()))
    with anyio.fail_after(60):
        async with Bridge([inquiring.config()], input_policy=policy, store=InMemoryStore()) as bridge:
            await run_one(bridge, "summarize", text="hello")
    [answer] = outcome(inquiring, "summarize")
    assert "role" not in answer  # no completion reached the server
    # 2025: the session offers no sampling to it; 2026: declined with the reason
    assert "not supported" in declined(answer) or "may not sample" in declined(answer)


# --- roots (both eras) -----------------------------------------------------------------------


async def _selected(server: ExampleServer, user: UserContext) -> Bridge:
    servers = UserServers([server.config(roots=("file:///srv/teams/{user.team}", "file:///srv/shared"))])
    selection = await servers.select(user)
    return Bridge(selection.servers, refused=selection.refused, user=user.identity)


async def test_roots_come_from_configuration_per_user(inquiring: ExampleServer) -> None:
    user = UserContext(identity="alice", fields={"team": "blue"})
    with anyio.fail_after(60):
        async with await _selected(inquiring, user) as bridge:
            await run_one(bridge, "where")
    assert outcome(inquiring, "where") == {
        "roots": [{"uri": "file:///srv/teams/blue"}, {"uri": "file:///srv/shared"}]
    }


@pytest.mark.parametrize("team", ["..", "../../etc", "blue/../../etc", "%2e%2e", "a\\b", "x\nfile:///etc"])
async def test_a_user_value_cannot_move_a_root(legacy: ExampleServer, team: str) -> None:
    user = UserContext(identity="mallory", fields={"team": team})
    with anyio.fail_after(60), pytest.raises(ConnectError, match="roots"):
        async with await _selected(legacy, user):
            pass
    assert legacy.records.entries() == []  # the server was never called


async def test_a_2026_round_interrupts_for_its_elicitation_only_and_never_samples_twice(
    inquiring_http: HttpServerProcess,
) -> None:
    server = ExampleServer("inquiring", "http", "auto", inquiring_http.records.view(), inquiring_http)
    store = InMemoryStore()
    saver = InMemorySaver()
    config = run_config()
    policy = sampling_policy(daily_tokens=10_000)

    def graph_with(bridge: Bridge) -> Any:
        builder = StateGraph(MessagesState)
        builder.add_node("tools", ToolNode(bridge.tools))
        builder.add_edge(START, "tools")
        return builder.compile(checkpointer=saver)

    with anyio.fail_after(60):
        async with Bridge([server.config()], user="alice", input_policy=policy, store=store) as bridge:
            first = await graph_with(bridge).ainvoke(
                tool_calls(call("consult", "c1", question="Who?", text="Summarize this.")), config
            )
        [pending] = first["__interrupt__"]
        assert list(pending.value["requests"]) == ["form"]  # the policy answered the sampling request
        [before] = await store.asearch((*BUDGET_NAMESPACE, "alice"))
        # A new bridge (new connections) resumes, as a new run would.
        async with Bridge([server.config()], user="alice", input_policy=policy, store=store) as bridge:
            resume = {"form": {"action": "accept", "content": {"name": "Ada"}}}
            await graph_with(bridge).ainvoke(Command(resume=resume), config)
    [entry] = server.records.entries(tool="consult")
    assert entry["outcome"]["form"] == {"action": "accept", "content": {"name": "Ada"}}
    assert entry["outcome"]["sample"]["role"] == "assistant"
    [after] = await store.asearch((*BUDGET_NAMESPACE, "alice"))
    assert after.value == before.value  # the sealed answer was sent again: no second sample


async def test_a_2025_call_gets_its_elicitation_and_its_completion_from_the_policy(
    legacy: ExampleServer,
) -> None:
    async def answer(request: ElicitationRequest) -> ElicitationAnswer:
        return ElicitationAnswer("accept", {"name": request.user or "guest"})

    settings = Sampling(servers=["inquiring"], model=OfflineChatModel(), daily_tokens=None)
    policy = InputPolicy(elicitation=answer, sampling=settings)
    with anyio.fail_after(60):
        async with Bridge([legacy.config()], user="alice", input_policy=policy) as bridge:
            message, _ = await run_one(bridge, "consult", question="Who?", text="Summarize this.")
    [entry] = legacy.records.entries(tool="consult")
    assert entry["outcome"]["form"] == {"action": "accept", "content": {"name": "alice"}}
    assert entry["outcome"]["sample"]["role"] == "assistant"
    assert "mcpbridge:" not in text_of(message)  # nothing declined, nothing noted
