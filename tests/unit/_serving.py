"""A graph and a result reader shared by the serving tests."""

from __future__ import annotations

from typing import Any

import mcp_types as types
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph


def echo_graph() -> CompiledStateGraph[Any, Any, Any, Any]:
    """A graph that answers with how many messages its state holds."""

    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"{len(state['messages'])} messages")]}

    builder = StateGraph(MessagesState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile()


def done(result: types.CallToolResult | types.InputRequiredResult) -> types.CallToolResult:
    """A call's final result (not an input request)."""
    assert isinstance(result, types.CallToolResult), result
    return result


def text(result: types.CallToolResult) -> str:
    """The answer: the first text block (the second carries the structured content as JSON)."""
    first = result.content[0] if result.content else None
    return first.text if isinstance(first, types.TextContent) else ""
