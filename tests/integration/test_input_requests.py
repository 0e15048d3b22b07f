"""A server's input requests as LangGraph interrupts: resumed, declined, never repeated, tamper-proof."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command

from mcpbridge import Bridge, HttpServer
from mcpbridge.interrupts import INPUT_REQUEST

from .graphs import call, run_config, text_of, tool_calls
from .support import HttpServerProcess, start_http_server

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def asking(tmp_path: Path) -> Iterator[HttpServerProcess]:
    server = start_http_server("asking", tmp_path)
    try:
        yield server
    finally:
        server.stop()


def tool_graph(tools: Sequence[BaseTool], saver: InMemorySaver | None = None) -> Any:
    """START -> ToolNode(list(tools)), on ``saver`` (a checkpoint a later run resumes)."""
    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode(list(tools)))
    builder.add_edge(START, "tools")
    return builder.compile(checkpointer=saver or InMemorySaver())


def _answer(result: dict[str, Any]) -> ToolMessage:
    [message] = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    return message


async def test_rounds_become_interrupts_and_resume_without_repeats(asking: HttpServerProcess) -> None:
    config = run_config()
    saver = InMemorySaver()
    with anyio.fail_after(60):
        async with Bridge([HttpServer(name="asking", url=asking.url)]) as bridge:
            graph = tool_graph(bridge.tools, saver)
            first = await graph.ainvoke(tool_calls(call("book", "c1", room="blue")), config)
            [pending] = first["__interrupt__"]
            assert pending.value["type"] == INPUT_REQUEST
            assert pending.value["server"] == "asking"
            assert pending.value["tool"] == "book"
            assert pending.value["tool_call_id"] == "c1"
            who = pending.value["requests"]["who"]
            assert who["kind"] == "elicitation" and who["mode"] == "form"
            assert who["message"] == "Who books blue?"
            assert who["schema"]["required"] == ["name"]

        # A new bridge (new connections), as a new run would have.
        async with Bridge([HttpServer(name="asking", url=asking.url)]) as bridge:
            graph = tool_graph(bridge.tools, saver)
            second = await graph.ainvoke(
                Command(resume={"who": {"action": "accept", "content": {"name": "Ada"}}}), config
            )
            [pending] = second["__interrupt__"]
            assert pending.value["requests"]["ok"]["message"] == "Book blue for Ada?"
            done = await graph.ainvoke(
                Command(resume={"ok": {"action": "accept", "content": {"confirm": "yes"}}}), config
            )
    assert text_of(_answer(done)) == "booked blue for Ada (yes)"
    rounds = [e["round"] for e in asking.records.entries(tool="book")]
    assert rounds == [1, 2, 3, 4]  # every round once: none repeated by the resumes
    for entry in asking.records.entries(tool="book"):
        assert entry["meta"]  # the run's identity on every round


@pytest.mark.parametrize("action", ["decline", "cancel"])
async def test_a_declined_request_reaches_the_server(asking: HttpServerProcess, action: str) -> None:
    config = run_config()
    with anyio.fail_after(60):
        async with Bridge([HttpServer(name="asking", url=asking.url)]) as bridge:
            graph = tool_graph(bridge.tools)
            await graph.ainvoke(tool_calls(call("book", "c1", room="red")), config)
            done = await graph.ainvoke(Command(resume={"who": {"action": action}}), config)
    assert text_of(_answer(done)) == f"not booked: {action}"
    assert [e["round"] for e in asking.records.entries(tool="book")] == [1, 2]


async def test_a_tampered_entry_is_refused(asking: HttpServerProcess) -> None:
    config = run_config()
    with anyio.fail_after(60):
        async with Bridge([HttpServer(name="asking", url=asking.url)]) as bridge:
            graph = tool_graph(bridge.tools)
            await graph.ainvoke(tool_calls(call("book", "c1", room="red")), config)
            saver: Any = graph.checkpointer
            forged = 0
            for writes in saver.writes.values():
                for key, (task_id, channel, value, path) in list(writes.items()):
                    if channel != "__interrupt__":
                        continue
                    interrupts = saver.serde.loads_typed(value)
                    for item in interrupts:
                        body, mac = item.value["mcpbridge_state"].rsplit(".", 1)
                        entry = json.loads(base64.urlsafe_b64decode(body))
                        entry["state"] = json.dumps({"round": 3, "name": "Mallory"})  # skip to the last round
                        body = base64.urlsafe_b64encode(json.dumps(entry).encode()).decode()
                        item.value["mcpbridge_state"] = f"{body}.{mac}"
                        forged += 1
                    writes[key] = (task_id, channel, saver.serde.dumps_typed(interrupts), path)
            assert forged == 1
            resume = {"who": {"action": "accept", "content": {"name": "Eve"}}}
            done = await graph.ainvoke(Command(resume=resume), config)
    message = _answer(done)
    assert message.status == "error"
    assert "altered" in str(message.content)
    assert [e["round"] for e in asking.records.entries(tool="book")] == [1]


async def test_an_answer_off_the_forms_schema_is_declined_and_the_result_says_so(
    asking: HttpServerProcess,
) -> None:
    config = run_config()
    with anyio.fail_after(60):
        async with Bridge([HttpServer(name="asking", url=asking.url)]) as bridge:
            graph = tool_graph(bridge.tools)
            await graph.ainvoke(tool_calls(call("book", "c1", room="red")), config)
            resume = {"who": {"action": "accept", "content": {"name": 7}}}  # the schema wants a string
            done = await graph.ainvoke(Command(resume=resume), config)
    text = text_of(_answer(done))
    assert text.startswith("not booked: decline")
    assert (
        "[mcpbridge: the answer to the server's form 'who' did not match its schema; it was declined]" in text
    )
    [_, second] = asking.records.entries(tool="book")
    assert second["answers"] == {"who": {"action": "decline"}}
