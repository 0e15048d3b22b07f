"""The graph served over MCP by the suite: ``trivial``, one node that answers at once.

Loaded as ``bench.graphs:trivial`` by ``mcpbridge serve`` and by file path by
``langgraph dev``, so it imports nothing but LangGraph and LangChain Core.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph


def _answer(state: MessagesState) -> dict[str, Any]:
    return {"messages": [AIMessage(content="ok")]}


def _build() -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(MessagesState)
    builder.add_node("answer", _answer)  # pyright: ignore[reportUnknownMemberType]
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile(name="trivial")  # pyright: ignore[reportUnknownMemberType]


trivial = _build()
"""A message-based graph with one node; it answers ``ok``."""
