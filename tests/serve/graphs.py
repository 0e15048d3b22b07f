"""Graphs served by the tests with ``mcpbridge serve tests.serve.graphs:<name>``.

- ``echo_agent``: an `agent_factory` agent over the example echo server (stdio,
  tools ``echo_*``), without the approval step of ``examples/agent.py``, so
  ``echo_slow`` runs at once (for cancellation). Its model records each input it gets in
  ``MCPBRIDGE_RECORD_MODEL`` (`tests.support.history.RecordingChatModel`).
- ``memo``: a message-based graph that answers with every user message of its
  thread, so a continued thread shows what it remembers.
- ``repeat``: a graph with its own input and output schemas, reporting progress
  on the ``custom`` stream.
- ``broken``: a graph whose node raises.
- ``plain_factory``: a plain (not context manager) factory, reporting the user it was built for.
- ``routed``: a graph whose ``region`` argument is mirrored into an ``Mcp-Param-Region`` header
  (``x-mcp-header``), which a 2026-era server checks against the body.
- ``ask``: a graph that interrupts twice, a free-text question then a form (``CITY_FORM``),
  recording each answer it gets in ``MCPBRIDGE_RECORD`` (``tool: "ask"``).
- ``gate``: ``memo``, except that a message starting with ``wait`` holds its run at the
  test's gate (a TCP listener on ``MCPBRIDGE_GATE_PORT``): the run connects, sends its
  thread id, and goes on when the gate answers.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.config import get_config, get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt
from langgraph_sdk.runtime import ServerRuntime
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from mcpbridge import ServerConfig, StdioServer
from mcpbridge.factory import agent_factory
from tests.support.history import RecordingChatModel

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (this file is also loaded by path, by ``langgraph dev``)."""
RECORD_ENV = "MCPBRIDGE_RECORD"


def _echo_servers(runtime: ServerRuntime[Any]) -> Sequence[ServerConfig]:
    env = {RECORD_ENV: os.environ[RECORD_ENV]} if os.environ.get(RECORD_ENV) else None
    server = StdioServer(
        name="echo",
        command=sys.executable,
        args=("-m", "tests.support.servers.echo"),
        cwd=ROOT,
        env=env,
        prefix="echo",
    )
    return [server]


echo_agent = agent_factory(_echo_servers, RecordingChatModel())


def _memo(state: MessagesState) -> dict[str, Any]:
    said = [m.text for m in state["messages"] if isinstance(m, HumanMessage)]
    return {"messages": [AIMessage(content=f"you said: {' | '.join(said)}")]}


def _build_memo() -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(MessagesState)
    builder.add_node("memo", _memo)
    builder.add_edge(START, "memo")
    builder.add_edge("memo", END)
    return builder.compile()


memo = _build_memo()

GATE_ENV = "MCPBRIDGE_GATE_PORT"


async def _gate(state: MessagesState) -> dict[str, Any]:
    said = [m.text for m in state["messages"] if isinstance(m, HumanMessage)]
    if said and said[-1].startswith("wait"):
        thread_id = (get_config().get("configurable") or {}).get("thread_id")
        async with await anyio.connect_tcp("127.0.0.1", int(os.environ[GATE_ENV])) as gate:
            await gate.send(f"{thread_id}\n".encode())
            await gate.receive()  # the test lets the run go on
    return {"messages": [AIMessage(content=f"you said: {' | '.join(said)}")]}


gate = StateGraph(MessagesState)
gate.add_node("gate", _gate)
gate.add_edge(START, "gate")
gate.add_edge("gate", END)


class RepeatInput(TypedDict):
    text: str
    times: int


class RepeatOutput(TypedDict):
    result: str


class RepeatState(RepeatInput, RepeatOutput):
    pass


def _repeat(state: RepeatInput) -> RepeatOutput:
    write = get_stream_writer()
    for i in range(state["times"]):
        write({"message": f"repeat {i + 1} of {state['times']}"})
    return {"result": state["text"] * state["times"]}


repeat = StateGraph(RepeatState, input_schema=RepeatInput, output_schema=RepeatOutput)
repeat.add_node("repeat", _repeat)
repeat.add_edge(START, "repeat")
repeat.add_edge("repeat", END)


def _fail(state: MessagesState) -> dict[str, Any]:
    raise ValueError("the disk is full")


def _build_broken() -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(MessagesState)
    builder.add_node("fail", _fail)
    builder.add_edge(START, "fail")
    builder.add_edge("fail", END)
    return builder.compile()


broken = _build_broken()


def plain_factory(runtime: ServerRuntime[Any]) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A plain factory: its graph answers with the user and access context it was built for."""
    user = runtime.user.identity if runtime.user is not None else "nobody"
    context = runtime.access_context

    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"built for {user} ({context})")]}

    builder = StateGraph(MessagesState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile()


class RoutedState(BaseModel):
    region: str = Field(json_schema_extra={"x-mcp-header": "Region"})
    text: str = ""


def _route(state: RoutedState) -> dict[str, Any]:
    return {"text": f"{state.region}: {state.text}"}


routed = StateGraph(RoutedState)
routed.add_node("route", _route)
routed.add_edge(START, "route")
routed.add_edge("route", END)


CITY_FORM: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string", "title": "City"}},
    "required": ["city"],
}


def _record_answer(question: str, answer: Any) -> None:
    path = os.environ.get(RECORD_ENV)
    if not path:
        return
    thread_id = (get_config().get("configurable") or {}).get("thread_id")
    entry = {
        "tool": "ask",
        "question": question,
        "answer": answer,
        "meta": {"dev.mcpbridge/thread_id": thread_id},
    }
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(entry) + "\n")


def _ask(state: MessagesState) -> dict[str, Any]:
    name = interrupt("What is your name?")
    _record_answer("name", name)
    where = interrupt({"message": "Where do you live?", "schema": CITY_FORM})
    _record_answer("city", where)
    return {"messages": [AIMessage(content=f"{name} lives in {where['city']}")]}


ask = StateGraph(MessagesState)
ask.add_node("ask", _ask)
ask.add_edge(START, "ask")
ask.add_edge("ask", END)
