"""Interrupted runs resumed through in-memory MCP clients (``mcpbridge.serving.resuming``)."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt
from mcp import Client
from mcp.client.context import ClientRequestContext

from mcpbridge.serving import AgentMCPServer
from mcpbridge.testing import OfflineChatModel

from ._serving import text

pytestmark = pytest.mark.anyio

FORM = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def asking_graph() -> CompiledStateGraph[Any, Any, Any, Any]:
    """Asks a free-text question, then fills a form, and answers with both."""

    def ask(state: MessagesState) -> dict[str, Any]:
        name = interrupt("What is your name?")
        where = interrupt({"message": "Where do you live?", "schema": FORM})
        return {"messages": [AIMessage(content=f"{name} lives in {where['city']}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder.compile()


async def test_the_2026_era_asks_with_input_required_and_resumes_on_the_thread() -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    async def answer(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        assert isinstance(params, types.ElicitRequestFormParams)
        asked.append((params.message, params.requested_schema))
        content: dict[str, Any] = (
            {"answer": "Ada"} if "answer" in params.requested_schema["properties"] else {"city": "Oslo"}
        )
        return types.ElicitResult(action="accept", content=content)

    server = AgentMCPServer.from_graphs({"ask": asking_graph()})
    async with Client(server.lowlevel, elicitation_callback=answer) as client:
        result = await client.call_tool("ask", {"message": "hi"})
    assert text(result) == "Ada lives in Oslo"
    assert [message for message, _ in asked] == ["What is your name?", "Where do you live?"]
    assert asked[1][1] == FORM


async def test_without_elicitation_the_resume_argument_answers() -> None:
    server = AgentMCPServer.from_graphs({"ask": asking_graph()})
    async with Client(server.lowlevel) as client:
        first = await client.call_tool("ask", {"message": "hi"})
        content = first.structured_content or {}
        thread_id = content["thread_id"]
        [question] = content["questions"]
        assert content["status"] == "interrupted" and content["interrupt_ids"] == [question["interrupt_id"]]
        assert question["free_text"] is True
        assert f'thread_id="{thread_id}" and resume = a string' in text(first)
        second = await client.call_tool("ask", {"thread_id": thread_id, "resume": "Ada"})
        unfit = await client.call_tool("ask", {"thread_id": thread_id, "resume": {"town": "Oslo"}})
        third = await client.call_tool("ask", {"thread_id": thread_id, "resume": {"city": "Oslo"}})
        no_thread = await client.call_tool("ask", {"resume": "x"})
        no_message = await client.call_tool("ask", {})
    assert (second.structured_content or {})["questions"][0]["schema"] == FORM
    assert unfit.is_error and "does not fit the form" in text(unfit)
    assert "'city' is a required property" in text(unfit)
    assert text(third) == "Ada lives in Oslo"
    assert no_thread.is_error and "give its thread_id too" in text(no_thread)
    assert no_message.is_error and "message is required" in text(no_message)


def reviewed_agent(mode: str) -> Any:
    """An agent whose ``add`` tool waits for approval (LangChain's human-in-the-loop middleware)."""

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    middleware = HumanInTheLoopMiddleware(interrupt_on={"add": True}, description_prefix="Adding")
    if mode == "per_call":
        middleware = HumanInTheLoopMiddleware(
            interrupt_on={"add": True}, description_prefix="Adding", interrupt_mode="per_call"
        )
    return create_agent(OfflineChatModel(), tools=[add], middleware=[middleware])


@pytest.mark.parametrize("mode", ["batched", "per_call"])
async def test_a_human_in_the_loop_review_is_a_decision_form(mode: str) -> None:
    seen: list[dict[str, Any]] = []

    async def approve(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        assert isinstance(params, types.ElicitRequestFormParams)
        seen.append(params.requested_schema)
        [field] = [key for key in params.requested_schema["properties"] if key.startswith("decision")]
        return types.ElicitResult(action="accept", content={field: "approve"})

    server = AgentMCPServer.from_graphs({"agent": reviewed_agent(mode)})
    async with Client(server.lowlevel, elicitation_callback=approve) as client:
        approved = await client.call_tool("agent", {"message": 'call add {"a": 2, "b": 40}'})
    async with Client(server.lowlevel) as client:
        waiting = await client.call_tool("agent", {"message": 'call add {"a": 1, "b": 1}'})
        thread_id = (waiting.structured_content or {})["thread_id"]
        [question] = (waiting.structured_content or {})["questions"]
        [field] = [key for key in question["schema"]["properties"] if key.startswith("decision")]
        answer = {field: "reject", "message": "not now"}
        rejected = await client.call_tool("agent", {"thread_id": thread_id, "resume": answer})
    assert text(approved) == "add returned: 42"
    assert seen[0]["properties"][field]["enum"] == ["approve", "edit", "reject", "respond"]
    assert "not now" in text(rejected)


async def test_a_client_that_fails_the_question_leaves_the_thread_waiting() -> None:
    async def refuse(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        return types.ErrorData(code=types.INVALID_REQUEST, message="no human here")

    async def decline(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        return types.ElicitResult(action="decline")

    server = AgentMCPServer.from_graphs({"ask": asking_graph()})
    async with Client(server.lowlevel, mode="legacy", elicitation_callback=refuse) as client:
        failed = await client.call_tool("ask", {"message": "hi"})
    async with Client(server.lowlevel, elicitation_callback=decline) as client:
        declined = await client.call_tool("ask", {"message": "hi"})
        thread_id = (declined.structured_content or {})["thread_id"]
        resumed = await client.call_tool("ask", {"thread_id": thread_id, "resume": "Ada"})
    assert not failed.is_error and (failed.structured_content or {})["status"] == "interrupted"
    assert text(failed).startswith("The client did not answer (")
    assert "no human here" in text(failed)
    assert text(declined).startswith("The input request was declined; nothing was resumed.")
    assert (resumed.structured_content or {})["questions"][0]["schema"] == FORM  # the next question
