"""A served graph's interrupts as input requests to real MCP clients, resumed over HTTP and stdio.

The ``ask`` graph asks a free-text question, then a form, and records every answer
it gets; those records show what reached the graph, whatever a client was told.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, MCPError
from mcp.client.context import ClientRequestContext

from tests.integration.support import RecordFile

from .conftest import ServeProcess, http_client, serve_env, stdio_serve_client
from .graphs import CITY_FORM

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CALL_TIMEOUT = 60.0


def text(result: types.CallToolResult) -> str:
    first = result.content[0] if result.content else None
    return first.text if isinstance(first, types.TextContent) else ""


def structured(result: types.CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, text(result)
    return dict(result.structured_content)


class Human:
    """An elicitation callback that answers each form as told and remembers what it was asked."""

    def __init__(self, name: str = "Ada", city: Any = "Oslo") -> None:
        self.answers = {"answer": name, "city": city}
        self.asked: list[tuple[str, dict[str, Any]]] = []

    async def __call__(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        assert isinstance(params, types.ElicitRequestFormParams)
        self.asked.append((params.message, params.requested_schema))
        [field] = params.requested_schema["properties"]
        return types.ElicitResult(action="accept", content={field: self.answers[field]})


@asynccontextmanager
async def client_of(
    transport: str, served: ServeProcess, tmp_path: Path, mode: str, **options: Any
) -> AsyncGenerator[tuple[Client, RecordFile], None]:
    """A client of the served ``ask`` graph over ``transport``, and the record its answers go to."""
    if transport == "http":
        async with http_client(served.url, mode=mode, **options) as client:
            yield client, served.records
        return
    records = RecordFile(tmp_path / "calls.jsonl")
    async with stdio_serve_client(
        ["tests.serve.graphs:ask"], serve_env(records), mode=mode, **options
    ) as client:
        yield client, records


def answers(records: RecordFile, thread_id: str) -> list[Any]:
    return [entry["answer"] for entry in records.entries(tool="ask", thread_id=thread_id)]


@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_a_client_with_elicitation_answers_and_the_run_resumes(
    served_tests: ServeProcess, tmp_path: Path, transport: str, mode: str
) -> None:
    """2026-07-28 (``auto``): ``input_required`` rounds; 2025-11-25 (``legacy``): ``elicitation/create``."""
    human = Human()
    with anyio.fail_after(CALL_TIMEOUT * 2):
        async with client_of(transport, served_tests, tmp_path, mode, elicitation_callback=human) as (
            client,
            records,
        ):
            result = await client.call_tool("ask", {"message": "hi"})
            thread_id = structured(result)["thread_id"]
            again = await client.call_tool("ask", {"message": "hi again", "thread_id": thread_id})
    assert text(result) == "Ada lives in Oslo"
    assert structured(result)["status"] == "success"
    assert human.asked[:2] == [
        (
            "What is your name?",
            {
                "type": "object",
                "properties": {"answer": {"type": "string", "title": "Answer"}},
                "required": ["answer"],
            },
        ),
        ("Where do you live?", CITY_FORM),
    ]
    assert "Ada" in answers(records, thread_id) and {"city": "Oslo"} in answers(records, thread_id)
    assert text(again) == "Ada lives in Oslo"  # the thread goes on: a new run that asks again


@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_a_client_without_elicitation_resumes_with_the_resume_argument(
    served_tests: ServeProcess, tmp_path: Path, transport: str, mode: str
) -> None:
    with anyio.fail_after(CALL_TIMEOUT * 2):
        async with client_of(transport, served_tests, tmp_path, mode) as (client, records):
            first = await client.call_tool("ask", {"message": "hi"})
            thread_id = structured(first)["thread_id"]
            second = await client.call_tool("ask", {"thread_id": thread_id, "resume": "Ada"})
            third = await client.call_tool("ask", {"thread_id": thread_id, "resume": {"city": "Oslo"}})
    assert structured(first)["status"] == "interrupted"
    assert structured(first)["interrupt_ids"] == [structured(first)["questions"][0]["interrupt_id"]]
    assert "resume = a string" in text(first)
    assert structured(second)["questions"][0]["schema"] == CITY_FORM
    assert text(third) == "Ada lives in Oslo"
    assert answers(records, thread_id)[-1] == {"city": "Oslo"}


async def test_a_tampered_or_replayed_request_state_is_refused(served_tests: ServeProcess) -> None:
    records = served_tests.records.view()
    name = {"answer": "Ada"}

    def reply(content: dict[str, Any]) -> dict[str, types.InputResponse]:
        return {key: types.ElicitResult(action="accept", content=content) for key in keys}

    async with http_client(served_tests.url, elicitation_callback=Human()) as client:
        session = client.session
        with anyio.fail_after(CALL_TIMEOUT):
            first = await session.call_tool("ask", {"message": "hi"}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult) and first.request_state is not None
            assert first.input_requests is not None
            keys = list(first.input_requests)
            state = first.request_state
            tampered = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
            with pytest.raises(MCPError) as forged:
                await session.call_tool(
                    "ask",
                    {"message": "hi"},
                    input_responses=reply(name),
                    request_state=tampered,
                    allow_input_required=True,
                )
            with pytest.raises(MCPError) as moved:  # sealed for other arguments
                await session.call_tool(
                    "ask",
                    {"message": "other"},
                    input_responses=reply(name),
                    request_state=state,
                    allow_input_required=True,
                )
            second = await session.call_tool(
                "ask",
                {"message": "hi"},
                input_responses=reply(name),
                request_state=state,
                allow_input_required=True,
            )
            assert isinstance(second, types.InputRequiredResult)
            with pytest.raises(MCPError) as replayed:
                await session.call_tool(
                    "ask",
                    {"message": "hi"},
                    input_responses=reply({"answer": "Mallory"}),
                    request_state=state,
                    allow_input_required=True,
                )
    assert forged.value.message == "Invalid or expired requestState"
    assert moved.value.message == "Invalid or expired requestState"
    assert "already answered or is no longer pending" in replayed.value.message
    recorded = [entry["answer"] for entry in records.entries(tool="ask")]
    assert recorded == ["Ada"]  # only the genuine answer reached the graph, once


async def test_an_answer_that_does_not_fit_the_form_is_refused(served_tests: ServeProcess) -> None:
    records = served_tests.records.view()
    async with http_client(served_tests.url, elicitation_callback=Human(city=["not", "a", "city"])) as client:
        with anyio.fail_after(CALL_TIMEOUT):
            refused = await client.call_tool("ask", {"message": "hi"})
    assert refused.is_error
    assert "does not fit the form" in text(
        refused
    ) and "city: ['not', 'a', 'city'] is not of type 'string'" in text(refused)
    assert "the thread still waits" in text(refused)
    assert [entry["answer"] for entry in records.entries(tool="ask")] == ["Ada"]  # the city never arrived


async def test_a_tool_review_is_answered_by_its_user_only(served_example: ServeProcess) -> None:
    """The example agent's human-in-the-loop review, over HTTP with bearer tokens (2026-07-28).

    Alice edits the call the model asked for (30 s) to take no time; bob cannot answer for her.
    """
    records = served_example.records.view()
    call = {"message": 'call local_slow {"seconds": 30}'}
    url, human = served_example.url, Human()
    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(url, token="alice-token", elicitation_callback=human) as alice:
            first = await alice.session.call_tool("agent", call, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult) and first.input_requests
        [(key, request)] = first.input_requests.items()
        assert isinstance(request, types.ElicitRequest)
        assert isinstance(request.params, types.ElicitRequestFormParams)
        assert request.params.message.startswith("A slow tool wants to run")
        fields = request.params.requested_schema["properties"]
        [field] = [name for name in fields if name.startswith("decision")]
        [arguments] = [name for name in fields if name.startswith("arguments")]
        assert "edit" in fields[field]["enum"] and '{"seconds": 30}' in fields[arguments]["description"]
        edit: dict[str, str | int | float | bool | list[str] | None] = {
            field: "edit",
            arguments: '{"seconds": 0}',
        }
        approve: dict[str, types.InputResponse] = {key: types.ElicitResult(action="accept", content=edit)}
        async with http_client(url, token="bob-token", elicitation_callback=human) as bob:
            with pytest.raises(MCPError) as stolen:
                await bob.session.call_tool(
                    "agent",
                    call,
                    input_responses=approve,
                    request_state=first.request_state,
                    allow_input_required=True,
                )
        assert records.entries(tool="slow") == []  # bob's approval ran nothing
        async with http_client(url, token="alice-token", elicitation_callback=human) as alice:
            done = await alice.session.call_tool(
                "agent",
                call,
                input_responses=approve,
                request_state=first.request_state,
                allow_input_required=True,
            )
    assert stolen.value.message == "Invalid or expired requestState"
    assert isinstance(done, types.CallToolResult)
    assert text(done).endswith("slept 0.0s"), text(done)
    assert 'Executed instead: local_slow with arguments {"seconds": 0}' in text(done)  # the middleware's note
    assert len(records.entries(tool="slow", phase="start")) == 1
