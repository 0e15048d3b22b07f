"""Graphs served in-process: factories, runtimes, threads per user (``mcpbridge.serving.local``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from langchain_core.messages import AIMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt
from langgraph_sdk.runtime import ServerRuntime
from pydantic import BaseModel, Field

from mcpbridge._compat import SERVER_RUNTIME_CLASSES
from mcpbridge.serving import Caller, LocalGraphs, ServedGraph, ServedUser
from mcpbridge.serving.progress import ProgressReporter

from ._serving import done, echo_graph, text

pytestmark = pytest.mark.anyio


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
        first = done(await graphs.call_tool("echo", {"message": "hi"}, Caller(alice), ProgressReporter(None)))
        thread_id = (first.structured_content or {})["thread_id"]
        second = done(
            await graphs.call_tool(
                "echo", {"message": "again", "thread_id": thread_id}, Caller(alice), ProgressReporter(None)
            )
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
            first = done(await graphs.call_tool("slow", {"message": "hi"}, alice, none))
        thread_id = (first.structured_content or {})["thread_id"]
        # Bounded: were bob let into alice's thread, his run would wait in `slow` for a release that
        # never comes, and the leak would show as the suite's timeout instead of this failure.
        with anyio.fail_after(10):
            stolen = done(
                await graphs.call_tool("slow", {"message": "hi", "thread_id": thread_id}, bob, none)
            )
        assert stolen.is_error and text(stolen).startswith(f"There is no thread {thread_id}")
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(
                    graphs.call_tool, "slow", {"message": "again", "thread_id": thread_id}, alice, none
                )
                await started.wait()
                busy = done(
                    await graphs.call_tool(
                        "slow", {"message": "meanwhile", "thread_id": thread_id}, alice, none
                    )
                )
                # Regression: "busy" was said to anyone, before ownership (an existence oracle).
                probe = done(
                    await graphs.call_tool("slow", {"message": "x", "thread_id": thread_id}, bob, none)
                )
                unknown = done(
                    await graphs.call_tool("slow", {"message": "x", "thread_id": "nope"}, bob, none)
                )
                release.set()
    assert busy is not None and busy.is_error and text(busy).startswith(f"Thread {thread_id} is busy")
    assert probe is not None and unknown is not None
    assert probe.is_error and text(probe) == text(unknown).replace("nope", thread_id)


async def test_header_schemas_are_known_once_described_and_while_running() -> None:
    class Routed(BaseModel):
        region: str = Field(json_schema_extra={"x-mcp-header": "Region"})

    def route(state: Routed) -> dict[str, Any]:
        return {}

    builder = StateGraph(Routed)
    builder.add_node("route", route)
    builder.add_edge(START, "route")
    builder.add_edge("route", END)
    backend = LocalGraphs([ServedGraph("routed", builder), ServedGraph("echo", echo_graph())])
    assert backend.header_schema("routed") is None  # not running
    async with backend.running():
        schema = backend.header_schema("routed")
        assert schema is not None and schema["properties"]["region"]["x-mcp-header"] == "Region"
        assert backend.header_schema("echo") is None  # nothing to check
        assert backend.header_schema("nope") is None
    assert backend.header_schema("routed") is None


async def test_without_progress_a_run_still_reports_its_interrupts_and_output() -> None:
    def ask(state: MessagesState) -> dict[str, Any]:
        get_stream_writer()({"message": "asking"})
        answer = interrupt({"question": "go on?"})
        return {"messages": [AIMessage(content=f"got {answer}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    heard: list[str | None] = []

    async def sink(progress: float, total: float | None, message: str | None) -> None:
        heard.append(message)

    backend = LocalGraphs([ServedGraph("ask", builder), ServedGraph("echo", echo_graph())])
    async with backend.running() as graphs:
        quiet = done(await graphs.call_tool("ask", {"message": "hi"}, Caller(), ProgressReporter(None)))
        listened = done(await graphs.call_tool("ask", {"message": "hi"}, Caller(), ProgressReporter(sink)))
        echoed = done(await graphs.call_tool("echo", {"message": "hi"}, Caller(), ProgressReporter(None)))
    for result in (quiet, listened):
        content = result.structured_content or {}
        assert content["status"] == "interrupted" and content["interrupts"] == [{"question": "go on?"}]
    assert heard == ["asking", "the run waits for input"]
    assert text(echoed) == "1 messages"
