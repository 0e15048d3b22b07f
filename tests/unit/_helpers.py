"""In-memory MCP servers, graphs and small utilities shared by the unit tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import mcp_types as types
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer

from mcpbridge import Bridge

IDENTITY_PREFIX = "dev.mcpbridge/"

Protocol: TypeAlias = Literal["auto", "legacy"]
Lifespan: TypeAlias = Callable[[Any], AbstractAsyncContextManager[Any]]


@dataclass
class Call:
    name: str
    arguments: dict[str, Any]
    meta: dict[str, Any]

    @property
    def identity(self) -> dict[str, Any]:
        """The identity entries of the request's ``_meta``."""
        return {k: v for k, v in self.meta.items() if k.startswith(IDENTITY_PREFIX)}


Handler = Callable[[types.CallToolRequestParams], Awaitable[types.CallToolResult]]


@dataclass
class LowLevel:
    """A low-level MCP server serving exactly the tools given (any schema, any name) and recording calls."""

    tools: Sequence[types.Tool]
    handler: Handler | None = None
    calls: list[Call] = field(default_factory=list[Call])

    def server(self, name: str = "lowlevel") -> Server[Any]:
        async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
            return types.ListToolsResult(tools=list(self.tools))

        async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
            self.calls.append(Call(params.name, dict(params.arguments or {}), dict(ctx.meta or {})))
            if self.handler is not None:
                return await self.handler(params)
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=f"called {params.name}")]
            )

        return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


def tool(name: str, schema: dict[str, Any] | None = None, description: str | None = None) -> types.Tool:
    return types.Tool(name=name, description=description, input_schema=schema or {"type": "object"})


def tool_call(name: str, args: dict[str, Any], call_id: str = "call-1") -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "args": args}


async def call(tool_: BaseTool, args: dict[str, Any], call_id: str = "call-1") -> ToolMessage:
    """Invoke a tool the way ToolNode does (a full tool call), outside any graph."""
    message = await tool_.ainvoke(tool_call(tool_.name, args, call_id))
    assert isinstance(message, ToolMessage)
    return message


def tool_graph(tools: Sequence[BaseTool]) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A real graph: one ToolNode, checkpointed, fed an AIMessage carrying tool calls."""
    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode(list(tools)))
    builder.add_edge(START, "tools")
    return builder.compile(checkpointer=InMemorySaver())


def ai_calls(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """Graph input: one AIMessage asking for ``calls`` (ids call-0, call-1, ...)."""
    tool_calls = [{"id": f"call-{i}", "name": name, "args": args} for i, (name, args) in enumerate(calls)]
    return {"messages": [AIMessage(content="", tool_calls=tool_calls)]}


def tools_by_name(bridge: Bridge) -> dict[str, BaseTool]:
    return {t.name: t for t in bridge.tools}


async def entry_error(bridge: Bridge) -> Exception:
    """Enter ``bridge`` expecting failure; return the error exactly as raised.

    Entry errors come out as themselves, never inside an exception group (the Agent Server and
    callers match them by type; see test_bridge.py::test_entry_errors_are_not_wrapped_in_exception_groups),
    so a group here fails the test rather than being unwrapped.
    """
    try:
        async with bridge:
            pass
    except Exception as exc:
        assert not isinstance(exc, BaseExceptionGroup), f"entry error wrapped in a group: {exc!r}"
        return exc
    raise AssertionError("entering the Bridge did not fail")


def server_with(*names: str, lifespan: Lifespan | None = None) -> MCPServer:
    """A server whose tools ``names`` each echo their ``text`` after their own name."""
    server = MCPServer("test", lifespan=lifespan)
    for name in names:
        server.add_tool(echo_as(name), name=name, description=f"The {name} tool.")
    return server


def echo_as(name: str) -> Callable[..., str]:
    def fn(text: str = "") -> str:
        return f"{name}:{text}"

    return fn
