"""A real LangGraph graph around a `ToolNode`, fed tool calls the way a model would send them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode


def tool_graph(tools: Sequence[BaseTool]) -> CompiledStateGraph[Any, Any, Any, Any]:
    """START -> ToolNode(tools) -> END, with a checkpointer so runs have a thread."""
    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode(list(tools)))
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    return builder.compile(checkpointer=InMemorySaver())


def call(name: str, call_id: str | None = None, /, **args: Any) -> dict[str, Any]:
    """One tool call as a model would make it."""
    return {"name": name, "args": args, "id": call_id or f"call_{uuid.uuid4().hex[:12]}", "type": "tool_call"}


def tool_calls(*calls: dict[str, Any]) -> dict[str, Any]:
    """Graph input: an AI message asking for ``calls``."""
    return {"messages": [AIMessage(content="", tool_calls=list(calls))]}


def run_config(
    thread_id: str | None = None, *, user: str | None = "alice", run_id: uuid.UUID | None = None
) -> RunnableConfig:
    """A run config as the Agent Server builds it: thread, authenticated user, run id."""
    configurable: dict[str, Any] = {"thread_id": thread_id or f"thread-{uuid.uuid4()}"}
    if user is not None:
        configurable["langgraph_auth_user"] = {"identity": user}
    return {"configurable": configurable, "run_id": run_id or uuid.uuid4()}


def thread_of(config: RunnableConfig) -> str:
    return str(config["configurable"]["thread_id"])  # pyright: ignore[reportTypedDictNotRequiredAccess]


async def run_tool_calls(
    graph: CompiledStateGraph[Any, Any, Any, Any], calls: Sequence[dict[str, Any]], config: RunnableConfig
) -> dict[str, ToolMessage]:
    """Run the graph on ``calls``; return the tool messages it produced, by tool call id."""
    result = await graph.ainvoke(tool_calls(*calls), config)
    messages = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    return {m.tool_call_id: m for m in messages}


def text_of(message: ToolMessage) -> str:
    """The text of a tool message, whether its content is a string or content blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content)
