"""MCP server that misbehaves: awkward tool names, tricky or broken schemas, errors, slowness.

It exists to show that a client survives it: names with spaces, punctuation and
unicode, a 200-character name, two names that clean to the same provider-safe
name, a name (``add``) that the echo server also uses, schemas built on
``$defs``/``$ref``/``anyOf`` (one of them recursive), schemas that are not valid
JSON Schema at all, a tool that always answers ``isError`` and a slow one, results
no valid server sends (an image that is not base64, a content block of a type MCP
does not have, structured content that breaks the tool's own output schema), and a
tool whose arguments are named like the identity the bridge forwards in ``_meta``.

It also tries to exhaust the client's process: with ``MCPBRIDGE_HOSTILE_TOOLS=N`` it
offers N generated tools (made lazily, `FLOOD_PAGE` per ``tools/list`` page, so
100,000 cost the server little); `images` answers megabytes of base64 images,
`progress_flood` sends a progress notification per step, and `log_flood` sends log
messages with forged log lines at the level ``critical``.

Run it over stdio with ``python -m tests.support.servers.hostile``, or over streamable
HTTP with ``python -m tests.support.servers.hostile --http --port 8766``. Set
``MCPBRIDGE_RECORD`` to a file path to have every call recorded there as a JSON line.

``MCPServer`` derives each tool's input schema from its signature, so the tools
whose listed schema is deliberately broken are registered normally and have
their listed ``inputSchema`` replaced in `HostileServer.list_tools`. Only
schemas that keep the wire shape of an input schema (an object root, ``properties``
an object, ``required`` a list) can be sent at all: the SDK's server checks every
``tools/list`` result against the protocol's schema and answers an internal error
otherwise, so the broken ones here are broken inside ``properties``. The SDK checks
``tools/call`` results the same way, so the tools of `RAW_RESULTS` answer normally and
a middleware rewrites their answer on the wire afterwards.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Final, Literal

import anyio
import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from tests.support.servers.common import record, serve

LONG_NAME = "very_long_tool_name_" + "x" * 180
"""A 200-character tool name: over the 64 characters providers accept and the 128 MCP recommends."""

CJK_NAME = "查询天气"
"""A name with no ASCII equivalent at all."""

INVALID_SCHEMAS: dict[str, dict[str, Any]] = {
    # "type" must be a string or a list of strings.
    "broken_schema": {"type": "object", "properties": {"x": {"type": 42}}},
    # "minLength" must be a non-negative integer.
    "negative_min_length": {"type": "object", "properties": {"x": {"type": "string", "minLength": -1}}},
}
"""Tools whose listed input schema a client must refuse; calling them is never expected."""

NOT_BASE64 = "this is not base64!"
"""The ``data`` of the image `bad_image` answers with."""

RAW_RESULTS: dict[str, dict[str, Any]] = {
    # A content block of a type MCP does not define, next to a readable one.
    "show_hologram": {
        "content": [
            {"type": "hologram", "frames": 24},
            {"type": "text", "text": "a hologram of the moon"},
        ]
    },
    # `forecast` declares `celsius` a number; this answer breaks its own output schema.
    "forecast": {
        "content": [{"type": "text", "text": "warm"}],
        "structuredContent": {"celsius": "warm"},
    },
}
"""Tools whose answer is replaced on the wire, after the SDK checked it, by what a broken server sends."""

IMPERSONATE_ARGUMENTS = (
    *("thread_id", "run_id", "user_id", "assistant_id", "graph_id"),
    *("runtime", "mcpbridge_runtime_1", "_meta", "dev.mcpbridge/user_id", "dev.mcpbridge/thread_id"),
)
"""The arguments of `impersonate`: named like the identity the bridge forwards, and like its own fields."""

IMPERSONATE = types.Tool(
    name="impersonate",
    description="Take arguments named like the identity in `_meta`; answer with what the call carried.",
    input_schema={
        "type": "object",
        "properties": {
            name: {"type": "object"} if name == "_meta" else {"type": "string"}
            for name in IMPERSONATE_ARGUMENTS
        },
        "required": list(IMPERSONATE_ARGUMENTS),
    },
)
"""Listed and answered by hand: no function parameter can be called ``_meta`` or ``dev.mcpbridge/user_id``."""


class HostileServer(MCPServer):
    """An `MCPServer` that lists some tools with a hand-written, invalid input schema, and `IMPERSONATE`."""

    async def list_tools(self) -> list[Any]:
        """The registered tools (the `INVALID_SCHEMAS` ones with their broken schema), and `IMPERSONATE`."""
        tools = await super().list_tools()
        for tool in tools:
            broken = INVALID_SCHEMAS.get(tool.name)
            if broken is not None:
                tool.input_schema = broken
        return [*tools, IMPERSONATE]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Record the arguments of `IMPERSONATE` as they came; leave every other tool to `MCPServer`."""
        if name != IMPERSONATE.name or context is None:
            return await super().call_tool(name, arguments, context)
        entry = record("hostile", name, context, arguments=arguments)
        return types.CallToolResult(
            content=[types.TextContent(text=f"the call carried {entry['meta']}")],
            structured_content={"arguments": arguments, "meta": entry["meta"]},
        )


server = HostileServer("hostile", instructions="Misbehaves on purpose; for testing clients.")


async def _send_raw_results(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Replace the wire answer of the `RAW_RESULTS` tools."""
    result = await call_next(ctx)
    raw = RAW_RESULTS.get(str((ctx.params or {}).get("name"))) if ctx.method == "tools/call" else None
    if raw is None or not isinstance(result, dict):
        return result
    return {**result, **raw}


server.middleware.append(_send_raw_results)


# --- exhausting the client ------------------------------------------------------------------------

FLOOD_TOOLS_ENV: Final = "MCPBRIDGE_HOSTILE_TOOLS"
"""When set to N, ``tools/list`` offers N generated tools instead of the tools above."""
FLOOD_TOOLS_HEADER: Final = "X-Hostile-Tools"
"""The same per request, over HTTP: one server process floods the clients that ask for it."""
FLOOD_PAGE: Final = 1000
"""Generated tools per ``tools/list`` page."""

FLOOD_SCHEMAS: Final = 100
"""Distinct input schemas among the generated tools (a client may cache checks of identical ones)."""

FORGED_LOG_LINE = "done\n2026-01-01 00:00:00 CRITICAL mcpbridge: credentials of every user exported"
"""The text of `log_flood`'s messages: a newline, then what looks like a log line of the client."""


def flood_tool(index: int) -> dict[str, Any]:
    """Generated tool ``index``, with one of `FLOOD_SCHEMAS` input schemas."""
    variant = index % FLOOD_SCHEMAS
    return {
        "name": f"flood_{index}",
        "description": f"Generated tool number {index}; it exists to be listed. " * 3,
        "inputSchema": {
            "type": "object",
            "properties": {
                f"query_{variant}": {"type": "string", "description": "What to look for."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100 + variant},
                "mode": {"enum": ["fast", "slow", f"mode_{variant}"]},
            },
            "required": [f"query_{variant}"],
        },
    }


async def _flood_tools(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """With `FLOOD_TOOLS_ENV` or `FLOOD_TOOLS_HEADER` set, answer ``tools/list`` with generated tools."""
    headers: Any = getattr(ctx.request, "headers", None) or {}
    count = headers.get(FLOOD_TOOLS_HEADER.lower()) or os.environ.get(FLOOD_TOOLS_ENV)
    if ctx.method != "tools/list" or not count:
        return await call_next(ctx)
    start = int((ctx.params or {}).get("cursor") or 0)
    end = min(start + FLOOD_PAGE, int(count))
    listed = await call_next(ctx)  # the era's other result fields (cache hints), kept as they are
    page: dict[str, Any] = (
        listed.model_dump(by_alias=True, exclude_none=True)
        if isinstance(listed, BaseModel)
        else dict(listed or {})
    )
    page["tools"] = [flood_tool(i) for i in range(start, end)]
    page.pop("nextCursor", None)
    if end < int(count):
        page["nextCursor"] = str(end)
    return page


server.middleware.append(_flood_tools)


@server.tool()
async def images(megabytes: float, ctx: Context, count: int = 4) -> types.CallToolResult:
    """Answer with a caption and `count` PNG images holding `megabytes` MB of base64 in all."""
    record("hostile", "images", ctx, arguments={"megabytes": megabytes, "count": count})
    raw = b"\x89PNG\r\n\x1a\n" + bytes(int(megabytes * 1024 * 1024 * 3 / 4 / count))
    data = base64.b64encode(raw).decode("ascii")
    content: list[types.ContentBlock] = [types.TextContent(text="the moon, in detail")]
    content += [types.ImageContent(data=data, mime_type="image/png") for _ in range(count)]
    return types.CallToolResult(content=content)


@server.tool()
async def progress_flood(steps: int, ctx: Context) -> str:
    """Send a progress notification for each of `steps` steps, as fast as the transport takes them."""
    record("hostile", "progress_flood", ctx, arguments={"steps": steps})
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
    return f"flooded {steps} progress notifications"


@server.tool()
async def log_flood(messages: int, ctx: Context) -> str:
    """Send `messages` log messages at the level ``critical``, each forging a log line (`FORGED_LOG_LINE`)."""
    record("hostile", "log_flood", ctx, arguments={"messages": messages})
    for n in range(messages):
        await ctx.log("critical", f"{FORGED_LOG_LINE} #{n}", logger_name="auth\nmcpbridge")  # pyright: ignore[reportDeprecated]
    return f"flooded {messages} log messages"


@server.tool(name="search files")
async def search_with_space(query: str, ctx: Context) -> str:
    """A tool name with a space."""
    record("hostile", "search files", ctx, arguments={"query": query})
    return f"searched for {query}"


@server.tool(name="search.files")
async def search_with_dot(query: str, ctx: Context) -> str:
    """A tool name that cleans to the same provider-safe name as 'search files'."""
    record("hostile", "search.files", ctx, arguments={"query": query})
    return f"dot-searched for {query}"


@server.tool(name="weather?!:now")
async def punctuated(city: str, ctx: Context) -> str:
    """A tool name full of punctuation."""
    record("hostile", "weather?!:now", ctx, arguments={"city": city})
    return f"sunny in {city}"


@server.tool(name="überprüfen")
async def umlauts(text: str, ctx: Context) -> str:
    """A tool name with accented letters that fold to ASCII."""
    record("hostile", "überprüfen", ctx, arguments={"text": text})
    return f"checked {text}"


@server.tool(name=CJK_NAME)
async def cjk(city: str, ctx: Context) -> str:
    """A tool name with no ASCII letters at all."""
    record("hostile", CJK_NAME, ctx, arguments={"city": city})
    return f"{city}: 晴"


@server.tool(name=LONG_NAME)
async def long_name(ctx: Context) -> str:
    """A tool with a 200-character name."""
    record("hostile", LONG_NAME, ctx)
    return "long name reached"


@server.tool(name="add")
async def add(a: str, b: str, ctx: Context) -> str:
    """Concatenate two strings (the echo server has an `add` that sums numbers)."""
    record("hostile", "add", ctx, arguments={"a": a, "b": b})
    return a + b


@server.tool()
async def explode(ctx: Context) -> str:
    """Always fail with an isError result."""
    record("hostile", "explode", ctx)
    raise ToolError("the hostile server exploded on purpose")


class Address(BaseModel):
    """A postal address."""

    street: str
    city: str


class Trip(BaseModel):
    """A trip; its schema travels as $defs and $ref."""

    destination: Address
    stops: list[Address] = Field(default_factory=list[Address])
    mode: Literal["car", "train"] | None = None


@server.tool()
async def plan_trip(trip: Trip, ctx: Context, budget: float | int | None = None) -> str:
    """Plan a trip; the input schema uses $defs, $ref and anyOf."""
    record("hostile", "plan_trip", ctx, arguments={"trip": trip.model_dump(), "budget": budget})
    return f"trip to {trip.destination.city} with {len(trip.stops)} stops"


class Node(BaseModel):
    """A tree node; its schema refers to itself."""

    name: str
    children: list[Node] = Field(default_factory=list["Node"])


def _size(node: Node) -> int:
    return 1 + sum(_size(child) for child in node.children)


@server.tool()
async def count_nodes(tree: Node, ctx: Context) -> int:
    """Count the nodes of a tree; the input schema is recursive."""
    record("hostile", "count_nodes", ctx, arguments={"tree": tree.model_dump()})
    return _size(tree)


@server.tool()
async def broken_schema(ctx: Context) -> str:
    """Listed with an input schema that is not valid JSON Schema."""
    record("hostile", "broken_schema", ctx)
    return "should never be called"


@server.tool()
async def negative_min_length(ctx: Context) -> str:
    """Listed with an input schema whose `minLength` is negative."""
    record("hostile", "negative_min_length", ctx)
    return "should never be called"


@server.tool()
async def huge(megabytes: int, ctx: Context) -> dict[str, Any]:
    """Answer with `megabytes` MB of text, and as much structured content."""
    record("hostile", "huge", ctx, arguments={"megabytes": megabytes})
    return {"text": "x" * (megabytes * 1024 * 1024)}


@server.tool()
async def dawdle(seconds: float, ctx: Context) -> str:
    """Sleep for `seconds`; records when it starts and whether it was cancelled."""
    record("hostile", "dawdle", ctx, arguments={"seconds": seconds}, phase="start")
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        record("hostile", "dawdle", ctx, phase="cancelled")
        raise
    return f"dawdled {seconds}s"


@server.tool()
async def bad_image(ctx: Context) -> types.CallToolResult:
    """Answer with a caption and a PNG image whose data is not base64."""
    record("hostile", "bad_image", ctx)
    return types.CallToolResult(
        content=[
            types.TextContent(text="a picture of the moon"),
            types.ImageContent(data=NOT_BASE64, mime_type="image/png"),
        ]
    )


@server.tool()
async def show_hologram(ctx: Context) -> str:
    """Answer with a content block of a type MCP does not define, ``hologram`` (see `RAW_RESULTS`)."""
    record("hostile", "show_hologram", ctx)
    return "replaced on the wire"


class Forecast(BaseModel):
    """The output schema `forecast` declares."""

    celsius: float


@server.tool()
async def forecast(city: str, ctx: Context) -> Forecast:
    """Declare a numeric `celsius` as output schema, and answer with text there (see `RAW_RESULTS`)."""
    record("hostile", "forecast", ctx, arguments={"city": city})
    return Forecast(celsius=21.5)


if __name__ == "__main__":
    serve(server, __doc__ or "")
