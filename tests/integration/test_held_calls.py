"""A 2025-11-25 server's elicitation answered by the run's user: the call held open across the interrupt.

The inquiring example server asks during its open call, over stdio and streamable HTTP,
on the 2025-11-25 protocol. Each run borrows its session from a `SessionPool` and goes
through a real ``ToolNode`` with a checkpointer; the resume is a new run on the same
thread. What the server got is read from its own record.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.messages import ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command

from mcpbridge import Bridge, SessionPool
from mcpbridge.interrupts import INPUT_REQUEST, InputPolicy
from tests.support.servers.inquiring import SCHEMA, SECRET_URL

from .graphs import call, run_config, text_of, tool_calls
from .support import ExampleServer, HttpServerProcess, RecordFile, Transport, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def legacy(request: pytest.FixtureRequest, transport: Transport, tmp_path: Path) -> ExampleServer:
    """The inquiring server over each transport, on the 2025-11-25 protocol."""
    if transport == "http":
        http: HttpServerProcess = request.getfixturevalue("inquiring_http")
        return ExampleServer("inquiring", transport, "legacy", http.records.view(), http)
    return ExampleServer("inquiring", transport, "legacy", RecordFile(tmp_path / "inquiring-calls.jsonl"))


@pytest.fixture
def legacy_http(inquiring_http: HttpServerProcess) -> ExampleServer:
    """The inquiring server over streamable HTTP only, on the 2025-11-25 protocol."""
    return ExampleServer("inquiring", "http", "legacy", inquiring_http.records.view(), inquiring_http)


class Runs:
    """Runs of one thread, each with its own Bridge on the pool, as the factories make them."""

    def __init__(self, server: ExampleServer, pool: SessionPool, policy: InputPolicy) -> None:
        self.server = server
        self.pool = pool
        self.policy = policy
        self.saver = InMemorySaver()
        self.config = run_config()

    async def run(self, graph_input: Any) -> dict[str, Any]:
        async with Bridge(
            [self.server.config()], pool=self.pool, user="alice", input_policy=self.policy
        ) as bridge:
            builder = StateGraph(MessagesState)
            builder.add_node("tools", ToolNode(bridge.tools))
            builder.add_edge(START, "tools")
            graph: Any = builder.compile(checkpointer=self.saver)
            return await graph.ainvoke(graph_input, self.config)


def message_of(result: dict[str, Any]) -> ToolMessage:
    [message] = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    return message


async def test_the_user_answers_the_open_call_and_the_server_is_called_once(legacy: ExampleServer) -> None:
    async with SessionPool() as pool:
        runs = Runs(legacy, pool, InputPolicy(hold_calls=120))
        with anyio.fail_after(60):
            first = await runs.run(tool_calls(call("ask", "c1", question="Who books?")))
            [pending] = first["__interrupt__"]
            assert pending.value == {
                "type": INPUT_REQUEST,
                "server": "inquiring",
                "tool": "ask",
                "tool_call_id": "c1",
                "requests": {
                    "elicitation": {
                        "kind": "elicitation",
                        "mode": "form",
                        "message": "Who books?",
                        "schema": SCHEMA,
                        "url": None,
                    }
                },
            }
            assert legacy.records.entries(tool="ask") == []  # the call is still open
            assert pool.size == 1 and pool.idle == 1  # its session waits in the pool
            answer = {"elicitation": {"action": "accept", "content": {"name": "Ada", "seats": 2}}}
            second = await runs.run(Command(resume=answer))
    [entry] = legacy.records.entries(tool="ask")  # one call: the held one, answered
    assert entry["outcome"] == {"action": "accept", "content": {"name": "Ada", "seats": 2}}
    message = message_of(second)
    assert message.status == "success"
    expected = {"action": "accept", "content": {"name": "Ada", "seats": 2}}
    assert text_of(message) == f"ask: {json.dumps(expected, sort_keys=True)}"


async def test_a_declined_answer_reaches_the_server_and_no_url_is_logged(
    legacy_http: ExampleServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with SessionPool() as pool:
        runs = Runs(legacy_http, pool, InputPolicy(hold_calls=120))
        with anyio.fail_after(60):
            first = await runs.run(tool_calls(call("visit", "c1")))
            [pending] = first["__interrupt__"]
            assert pending.value["requests"]["elicitation"]["url"] == SECRET_URL
            second = await runs.run(Command(resume={"elicitation": {"action": "decline"}}))
    [entry] = legacy_http.records.entries(tool="visit")
    assert entry["outcome"] == {"action": "decline"}
    assert text_of(message_of(second)) == 'visit: {"action": "decline"}'
    assert "very-secret" not in caplog.text and "login.example.com" not in caplog.text


async def test_a_resume_after_the_hold_fails_clearly_and_calls_nothing(legacy: ExampleServer) -> None:
    async with SessionPool() as pool:
        runs = Runs(legacy, pool, InputPolicy(hold_calls=0.2))
        with anyio.fail_after(60):
            first = await runs.run(tool_calls(call("ask", "c1", question="Who books?")))
            assert first["__interrupt__"]
            # Nobody answered within the hold: the server's request was cancelled, its call ended.
            [entry] = await poll_until(lambda: legacy.records.entries(tool="ask"), within=30)
            assert entry["outcome"] == {"action": "cancel"}
            answer = {"elicitation": {"action": "accept", "content": {"name": "Ada"}}}
            second = await runs.run(Command(resume=answer))
    message = message_of(second)
    assert message.status == "error"
    assert "ended before the answer came" in text_of(message)
    assert "Call the tool again" in text_of(message)
    assert len(legacy.records.entries(tool="ask")) == 1  # no new call with a stale answer


async def test_each_question_of_one_call_is_its_own_interrupt(legacy_http: ExampleServer) -> None:
    async with SessionPool() as pool:
        runs = Runs(legacy_http, pool, InputPolicy(hold_calls=120))
        with anyio.fail_after(60):
            first = await runs.run(tool_calls(call("survey", "c1", first="Who?", second="How many?")))
            [pending] = first["__interrupt__"]
            assert pending.value["requests"]["elicitation"]["message"] == "Who?"
            second = await runs.run(
                Command(resume={"elicitation": {"action": "accept", "content": {"name": "Ada"}}})
            )
            [pending] = second["__interrupt__"]
            assert pending.value["requests"]["elicitation"]["message"] == "How many?"
            assert legacy_http.records.entries(tool="survey") == []
            answer = {"elicitation": {"action": "accept", "content": {"name": "Bob", "seats": 3}}}
            third = await runs.run(Command(resume=answer))
    [entry] = legacy_http.records.entries(tool="survey")
    assert entry["outcome"] == [
        {"action": "accept", "content": {"name": "Ada"}},
        {"action": "accept", "content": {"name": "Bob", "seats": 3}},
    ]
    assert text_of(message_of(third)).startswith("survey: ")


async def test_a_held_session_outlives_the_idle_timeout(legacy_http: ExampleServer) -> None:
    async with SessionPool(idle_timeout=0.2) as pool:
        runs = Runs(legacy_http, pool, InputPolicy(hold_calls=120))
        with anyio.fail_after(60):
            first = await runs.run(tool_calls(call("ask", "c1", question="Who books?")))
            assert first["__interrupt__"]
            async with Bridge([legacy_http.config()], pool=pool, user="bob"):
                pass
            assert pool.size == 2
            await poll_until(lambda: pool.size == 1, within=30)  # bob's idle session was closed
            answer = {"elicitation": {"action": "accept", "content": {"name": "Ada"}}}
            second = await runs.run(Command(resume=answer))
    assert message_of(second).status == "success"
    [entry] = legacy_http.records.entries(tool="ask")
    assert entry["outcome"] == {"action": "accept", "content": {"name": "Ada"}}


async def test_a_resume_that_cannot_reach_the_held_call_fails_clearly_and_calls_nothing(
    legacy_http: ExampleServer,
) -> None:
    policy = InputPolicy(hold_calls=120)
    async with SessionPool() as pool:
        runs = Runs(legacy_http, pool, policy)
        with anyio.fail_after(60):
            first = await runs.run(tool_calls(call("ask", "c1", question="Who books?")))
            assert first["__interrupt__"]
            # The resume runs with sessions of its own, as it would in another process.
            async with Bridge([legacy_http.config()], user="alice", input_policy=policy) as bridge:
                builder = StateGraph(MessagesState)
                builder.add_node("tools", ToolNode(bridge.tools))
                builder.add_edge(START, "tools")
                graph: Any = builder.compile(checkpointer=runs.saver)
                answer = {"elicitation": {"action": "accept", "content": {"name": "Ada"}}}
                second = await graph.ainvoke(Command(resume=answer), runs.config)
    message = message_of(second)
    assert message.status == "error"
    assert "ended before the answer came" in text_of(message)
    # No new call got the answer (the held one ended with the pool, unanswered).
    assert [
        e for e in legacy_http.records.entries(tool="ask") if e["outcome"].get("action") == "accept"
    ] == []
