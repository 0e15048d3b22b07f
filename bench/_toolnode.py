"""One LangGraph ``ToolNode`` call, the same for every peer that offers LangChain tools.

Imports only LangGraph and LangChain Core: it also runs in the
``langchain-mcp-adapters`` venv. The node gets the ``Runtime`` LangGraph gives
a node inside a graph (thread and run in ``execution_info``), so it builds the
``ToolRuntime`` of every call as it does in an agent. `RecordingHandler` is the
callback handler of the traced rows, the same class in every peer's process.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.prebuilt import ToolNode
from langgraph.runtime import ExecutionInfo, Runtime

RUNTIME_KEY = "__pregel_runtime"
"""Where a graph hands its nodes the ``Runtime`` (``langgraph._internal._constants.CONFIG_KEY_RUNTIME``)."""

THREAD_ID = "bench-thread"
RUN_ID = "bench-run"


class RecordingHandler(AsyncCallbackHandler):
    """A trivial tracer: counts the tool starts and ends it is told of (tracing on, nothing exported)."""

    def __init__(self) -> None:
        self.starts = 0
        self.ends = 0

    async def on_tool_start(
        self, serialized: dict[str, Any], input_str: str, *, run_id: UUID, **kwargs: Any
    ) -> None:
        """Count a tool start."""
        self.starts += 1

    async def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Count a tool end."""
        self.ends += 1


class ToolNodeCaller:
    """Calls tools through one ``ToolNode`` with a graph's runtime; a failed call raises.

    With a ``handler``, every invocation carries ``callbacks=[handler]`` in its
    config, and a call the handler was not told of (start and end) raises.
    """

    def __init__(self, tools: Sequence[BaseTool], handler: RecordingHandler | None = None) -> None:
        self.node = ToolNode(list(tools))
        info = ExecutionInfo(
            checkpoint_id="", checkpoint_ns="", task_id="", thread_id=THREAD_ID, run_id=RUN_ID
        )
        runtime: Runtime[Any] = Runtime(execution_info=info)
        self.config: RunnableConfig = {"configurable": {RUNTIME_KEY: runtime}}
        if handler is not None:
            self.config["callbacks"] = [handler]
        self.handler = handler
        self._ids = itertools.count()

    async def call(self, name: str, args: Mapping[str, Any]) -> ToolMessage:
        """One tool call, as a model's message with one tool call."""
        [message] = await self.call_many(name, [args])
        return message

    async def call_many(self, name: str, calls: Sequence[Mapping[str, Any]]) -> list[ToolMessage]:
        """Parallel tool calls, as one model message with ``len(calls)`` tool calls (run concurrently)."""
        tool_calls = [
            ToolCall(name=name, args=dict(args), id=f"call_{next(self._ids)}", type="tool_call")
            for args in calls
        ]
        seen = (self.handler.starts, self.handler.ends) if self.handler is not None else (0, 0)
        output: dict[str, list[ToolMessage]] = await self.node.ainvoke(
            {"messages": [AIMessage(content="", tool_calls=tool_calls)]}, self.config
        )
        messages = output["messages"]
        failed = [m for m in messages if m.status != "success"]
        if failed or len(messages) != len(calls):
            raise RuntimeError(f"tool call failed: {failed[0].content if failed else messages!r}")
        if self.handler is not None:
            told = (self.handler.starts - seen[0], self.handler.ends - seen[1])
            if told != (len(calls), len(calls)):
                raise RuntimeError(
                    f"the callback handler saw {told} tool starts and ends for {len(calls)} calls"
                )
        return messages


def text_of(message: ToolMessage) -> str:
    """The text of a tool message, whether its content is a string or content blocks."""
    content: Any = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":  # pyright: ignore[reportUnknownMemberType]
            parts.append(str(block.get("text", "")))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
    return "".join(parts)
