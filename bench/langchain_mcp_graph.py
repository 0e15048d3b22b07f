"""The ``langchain.mcp`` peer's graph for ``langgraph dev``, served from ``bench/.venv-langchain-mcp``.

``make_graph`` is an async-context-manager factory as a LangGraph user writes it
with LangChain's own MCP adapter: for each run it opens ``MCPAdapter`` over the
bench server on stdio, lists its tools and builds ``create_agent`` with them
(other contexts, such as reads, get the agent without tools). The model is
`ScriptedModel`, a minimal deterministic fake: it calls ``echo`` once, then answers.

It imports neither mcpbridge nor the rest of the bench (that venv has neither);
the bench server's python comes from ``MCPBRIDGE_BENCH_PYTHON`` and its events
file from ``MCPBRIDGE_BENCH_EVENTS``. LangChain, FastMCP and the Agent Server's
runtime are imported by name: they are in that venv only.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langgraph_sdk.runtime import ServerRuntime

ROOT = Path(__file__).resolve().parent.parent
PYTHON_ENV = "MCPBRIDGE_BENCH_PYTHON"
EVENTS_ENV = "MCPBRIDGE_BENCH_EVENTS"
TOOL = "echo"
ARGS = {"text": "hi"}


class ScriptedModel(BaseChatModel):
    """Calls ``echo`` with ``{"text": "hi"}`` once, then answers with the tool's result."""

    @property
    def _llm_type(self) -> str:
        return "bench-scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """Accept the tools (``create_agent`` binds them); the script does not depend on them."""
        return self.bind(**kwargs)  # pyright: ignore[reportReturnType]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            message = AIMessage(content=f"{TOOL} returned: {last.text}")
        else:
            message = AIMessage(content="", tool_calls=[{"name": TOOL, "args": ARGS, "id": "call_1"}])
        return ChatResult(generations=[ChatGeneration(message=message)])


def _agent(tools: list[Any]) -> Any:
    create_agent: Any = importlib.import_module("langchain.agents").create_agent
    return create_agent(ScriptedModel(), tools=tools)


def _target() -> Any:
    transports: Any = importlib.import_module("fastmcp.client.transports")
    events = os.environ.get(EVENTS_ENV)
    args = ["-m", "bench.servers", *(["--events", events] if events else [])]
    return transports.StdioTransport(
        command=os.environ.get(PYTHON_ENV, sys.executable), args=args, cwd=str(ROOT)
    )


@asynccontextmanager
async def make_graph(runtime: ServerRuntime[Any]) -> AsyncGenerator[Any, None]:
    """For a run: open ``MCPAdapter``, list its tools, build the agent; close the adapter after the run."""
    if runtime.execution_runtime is None:  # a read, an update or a schema: no tools needed
        yield _agent([])
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the namespace warns that it is in beta
        adapter_class: Any = importlib.import_module("langchain.mcp").MCPAdapter
    async with adapter_class(_target()) as adapter:
        tools = await adapter.list_tools()
        yield _agent(tools)
