from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import anyio
import mcp_types as types
import pytest
from langchain_core.callbacks import AsyncCallbackHandler, AsyncCallbackManager
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.prebuilt import ToolRuntime
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

from mcpbridge import Bridge, IdentityMeta, MCPTool, MemoryServer, UsageError
from mcpbridge.events import PROGRESS_EVENT

from ._helpers import LowLevel, Protocol, ai_calls, call, tool, tool_call, tool_graph, tools_by_name

THREAD = "thread-7"
PARENT_RUN = uuid.UUID("00000000-0000-4000-8000-000000000007")


def run_config(run_id: uuid.UUID) -> RunnableConfig:
    return {
        "configurable": {"thread_id": THREAD, "langgraph_auth_user": {"identity": "alice"}},
        "run_id": run_id,
        "metadata": {"assistant_id": "asst-1", "graph_id": "graph-1"},
    }


def expected_identity(run_id: uuid.UUID) -> dict[str, str]:
    return {
        "dev.mcpbridge/thread_id": THREAD,
        "dev.mcpbridge/run_id": str(run_id),
        "dev.mcpbridge/user_id": "alice",
        "dev.mcpbridge/assistant_id": "asst-1",
        "dev.mcpbridge/graph_id": "graph-1",
    }


def identity_of(meta: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(meta or {}).items() if k.startswith("dev.mcpbridge/")}


class Counter:
    def __init__(self) -> None:
        self.calls = 0


def demo_server(counter: Counter, seen_meta: list[dict[str, Any]]) -> MCPServer:
    server = MCPServer("demo")

    @server.tool()
    async def whoami(ctx: Context) -> str:
        """Report the caller's identity."""
        counter.calls += 1
        seen_meta.append(dict(ctx.request_context.meta or {}))
        return "ok"

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        counter.calls += 1
        return a + b

    @server.tool()
    def refuse(reason: str) -> str:
        """Always fails."""
        counter.calls += 1
        raise ToolError(f"refused: {reason}")

    @server.tool()
    def protocol_error() -> str:
        counter.calls += 1
        raise MCPError(-32099, "backend unavailable")

    @server.tool()
    async def slow() -> str:
        counter.calls += 1
        await anyio.sleep(60)
        return "too late"

    @server.tool()
    async def work(steps: int, ctx: Context) -> str:
        """Report progress on every step."""
        for step in range(1, steps + 1):
            await ctx.report_progress(step, steps, f"step {step}")
        return "done"

    @server.tool()
    def uses_runtime(runtime: str, thread_id: str = "none") -> str:
        """A tool with its own `runtime` argument."""
        counter.calls += 1
        return f"runtime={runtime} thread_id={thread_id}"

    return server


@pytest.fixture
def counter() -> Counter:
    return Counter()


@pytest.fixture
def seen_meta() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def server(counter: Counter, seen_meta: list[dict[str, Any]]) -> MCPServer:
    return demo_server(counter, seen_meta)


# --- what the model sees --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_runtime_is_not_visible_to_the_model(server: MCPServer, protocol: Protocol) -> None:
    async with Bridge([MemoryServer(name="demo", server=server, protocol=protocol)]) as bridge:
        for t in bridge.tools:
            schema = t.tool_call_schema
            assert isinstance(schema, dict)
            openai = convert_to_openai_tool(t)["function"]
            properties = openai["parameters"].get("properties", {})
            if t.name == "uses_runtime":
                assert set(properties) == {"runtime", "thread_id"}
                assert set(schema["properties"]) == {"runtime", "thread_id"}
                assert "mcpbridge_runtime_1" not in str(openai)
            else:
                assert "runtime" not in properties
                assert "runtime" not in str(schema)
            assert t.name == openai["name"]


@pytest.mark.anyio
async def test_injected_runtime_is_declared_for_tool_node(server: MCPServer) -> None:
    async with Bridge([MemoryServer(name="demo", server=server)]) as bridge:
        tools = tools_by_name(bridge)
    plain, own = tools["add"].get_input_schema(), tools["uses_runtime"].get_input_schema()
    assert issubclass(plain, BaseModel)
    assert issubclass(own, BaseModel)
    assert {k: f.annotation for k, f in plain.model_fields.items()} == {"runtime": ToolRuntime}
    assert {k: f.annotation for k, f in own.model_fields.items()} == {"mcpbridge_runtime_1": ToolRuntime}


@pytest.mark.anyio
async def test_ref_defs_any_of_schema_reaches_tool_call_schema(protocol: Protocol) -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
        "properties": {
            "at": {"$ref": "#/$defs/Point"},
            "label": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["at"],
    }
    server = LowLevel([tool("place", schema, description="Place a label.")])
    async with Bridge([MemoryServer(name="m", server=server.server(), protocol=protocol)]) as bridge:
        [t] = bridge.tools
        call_schema = t.tool_call_schema
        parameters = convert_to_openai_tool(t)["function"]["parameters"]
        assert isinstance(call_schema, dict)
        assert call_schema["$defs"] == schema["$defs"]
        assert call_schema["properties"] == schema["properties"]
        # LangChain inlines references for providers; the definition must survive that.
        assert parameters["properties"]["at"] == schema["$defs"]["Point"]
        assert parameters["properties"]["label"] == schema["properties"]["label"]
        message = await call(t, {"at": {"x": "far"}})
        assert message.status == "error"
        assert server.calls == []
        assert (await call(t, {"at": {"x": 1.5}, "label": None})).status == "success"
        assert server.calls[0].arguments == {"at": {"x": 1.5}, "label": None}


@pytest.mark.anyio
async def test_tool_metadata_and_description(server: MCPServer) -> None:
    lowlevel = LowLevel([tool("nameless")])
    async with Bridge(
        [MemoryServer(name="demo", server=server), MemoryServer(name="low", server=lowlevel.server())]
    ) as bridge:
        tools = tools_by_name(bridge)
    add = tools["add"]
    assert isinstance(add, MCPTool)
    assert (add.server, add.mcp_name) == ("demo", "add")
    assert add.metadata == {"mcp_server": "demo", "mcp_tool": "add"}
    assert add.description == "Add two integers."
    assert tools["nameless"].description == "nameless"


# --- identity -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_identity_reaches_the_server_from_a_real_graph(
    server: MCPServer, seen_meta: list[dict[str, Any]], protocol: Protocol
) -> None:
    run_id = uuid.uuid4()
    async with Bridge([MemoryServer(name="demo", server=server, protocol=protocol)]) as bridge:
        graph = tool_graph(bridge.tools)
        with anyio.fail_after(10):
            out = await graph.ainvoke(ai_calls(("whoami", {})), run_config(run_id))
    message = out["messages"][-1]
    assert isinstance(message, ToolMessage)
    assert message.status == "success"
    [meta] = seen_meta
    assert identity_of(meta) == expected_identity(run_id)


@pytest.mark.anyio
async def test_identity_follows_the_thread(server: MCPServer, seen_meta: list[dict[str, Any]]) -> None:
    async with Bridge([MemoryServer(name="demo", server=server)]) as bridge:
        graph = tool_graph(bridge.tools)
        for thread in ("t-1", "t-2"):
            await graph.ainvoke(ai_calls(("whoami", {})), {"configurable": {"thread_id": thread}})
    assert [identity_of(m) for m in seen_meta] == [
        {"dev.mcpbridge/thread_id": "t-1"},
        {"dev.mcpbridge/thread_id": "t-2"},
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "args",
    [
        {"dev.mcpbridge/user_id": "mallory", "dev.mcpbridge/thread_id": "stolen"},
        {"thread_id": "stolen", "user_id": "mallory", "run_id": "r-evil"},
        {"_meta": {"dev.mcpbridge/user_id": "mallory", "dev.mcpbridge/thread_id": "stolen"}},
    ],
    ids=["prefixed-keys", "bare-keys", "_meta"],
)
async def test_model_arguments_cannot_change_forwarded_identity(
    args: dict[str, Any], protocol: Protocol
) -> None:
    schema = {"type": "object", "properties": {k: {} for k in args}}
    lowlevel = LowLevel([tool("lookup", schema)])
    run_id = uuid.uuid4()
    async with Bridge([MemoryServer(name="m", server=lowlevel.server(), protocol=protocol)]) as bridge:
        graph = tool_graph(bridge.tools)
        out = await graph.ainvoke(ai_calls(("lookup", args)), run_config(run_id))
    assert out["messages"][-1].status == "success"
    [received] = lowlevel.calls
    assert received.identity == expected_identity(run_id)
    assert received.arguments == args


@pytest.mark.anyio
async def test_server_tool_taking_runtime_still_receives_it(server: MCPServer, protocol: Protocol) -> None:
    run_id = uuid.uuid4()
    async with Bridge([MemoryServer(name="demo", server=server, protocol=protocol)]) as bridge:
        graph = tool_graph(bridge.tools)
        args = {"runtime": "python3.12", "thread_id": "model-says", "mcpbridge_runtime_1": "forged"}
        out = await graph.ainvoke(ai_calls(("uses_runtime", args)), run_config(run_id))
        direct = await call(tools_by_name(bridge)["uses_runtime"], {"runtime": "direct"})
    message = out["messages"][-1]
    assert message.status == "success"
    assert message.content == [{"type": "text", "text": "runtime=python3.12 thread_id=model-says"}]
    assert direct.content == [{"type": "text", "text": "runtime=direct thread_id=none"}]


@pytest.mark.anyio
async def test_identity_from_run_config_outside_a_graph(
    server: MCPServer, seen_meta: list[dict[str, Any]]
) -> None:
    async with Bridge([MemoryServer(name="demo", server=server)]) as bridge:
        whoami = tools_by_name(bridge)["whoami"]
        await whoami.ainvoke(
            {"type": "tool_call", "id": "c", "name": "whoami", "args": {}},
            {"configurable": {"thread_id": "direct-thread"}},
        )
        await call(whoami, {})
    assert [identity_of(m) for m in seen_meta] == [{"dev.mcpbridge/thread_id": "direct-thread"}, {}]


@pytest.mark.anyio
async def test_identity_meta_options(protocol: Protocol) -> None:
    run_id = uuid.uuid4()
    for identity, expected in [
        (IdentityMeta(enabled=False), {}),
        (
            IdentityMeta(prefix="com.acme/", include=("user_id",)),
            {"com.acme/user_id": "alice"},
        ),
    ]:
        lowlevel = LowLevel([tool("t")])
        servers = [MemoryServer(name="m", server=lowlevel.server(), protocol=protocol)]
        async with Bridge(servers, identity=identity) as bridge:
            await tool_graph(bridge.tools).ainvoke(ai_calls(("t", {})), run_config(run_id))
        [received] = lowlevel.calls
        assert {
            k: v for k, v in received.meta.items() if k.startswith(("dev.mcpbridge/", "com.acme/"))
        } == expected


# --- progress -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_progress_reaches_the_custom_stream(server: MCPServer, protocol: Protocol) -> None:
    async with Bridge([MemoryServer(name="demo", server=server, protocol=protocol)]) as bridge:
        graph = tool_graph(bridge.tools)
        custom: list[Any] = []
        updates: list[Any] = []
        with anyio.fail_after(10):
            async for mode, chunk in graph.astream(
                ai_calls(("work", {"steps": 3})),
                {"configurable": {"thread_id": "t"}},
                stream_mode=["updates", "custom"],
            ):
                (custom if mode == "custom" else updates).append(chunk)
    assert custom == [
        {
            "type": PROGRESS_EVENT,
            "server": "demo",
            "tool": "work",
            "tool_call_id": "call-0",
            "progress": step,
            "total": 3,
            "message": f"step {step}",
        }
        for step in (1, 2, 3)
    ]
    assert updates[-1]["tools"]["messages"][0].content == [{"type": "text", "text": "done"}]


@pytest.mark.anyio
async def test_progress_is_coalesced_and_the_last_one_kept(server: MCPServer) -> None:
    # One event per 1000 s: every notification after the first is held back, the last one written at the end.
    config = MemoryServer(name="demo", server=server, max_progress_per_second=0.001)
    async with Bridge([config]) as bridge:
        graph = tool_graph(bridge.tools)
        with anyio.fail_after(10):
            stream = graph.astream(
                ai_calls(("work", {"steps": 5})), {"configurable": {"thread_id": "t"}}, stream_mode="custom"
            )
            custom = [chunk async for chunk in stream]
    assert [(e["progress"], e["message"]) for e in custom] == [(1, "step 1"), (5, "step 5")]


@pytest.mark.anyio
async def test_progress_events_carry_each_tool_call_id(server: MCPServer) -> None:
    async with Bridge([MemoryServer(name="demo", server=server)]) as bridge:
        graph = tool_graph(bridge.tools)
        events = [
            chunk
            async for chunk in graph.astream(
                ai_calls(("work", {"steps": 1}), ("work", {"steps": 2})),
                {"configurable": {"thread_id": "t"}},
                stream_mode="custom",
            )
        ]
    assert sorted((e["tool_call_id"], e["progress"]) for e in events) == [
        ("call-0", 1),
        ("call-1", 1),
        ("call-1", 2),
    ]


@pytest.mark.anyio
async def test_progress_without_a_graph_is_harmless(server: MCPServer) -> None:
    async with Bridge([MemoryServer(name="demo", server=server)]) as bridge:
        message = await call(tools_by_name(bridge)["work"], {"steps": 2})
    assert message.content == [{"type": "text", "text": "done"}]


# --- failures become error ToolMessages -----------------------------------------------------------


@pytest.mark.anyio
async def test_is_error_becomes_an_error_tool_message(
    server: MCPServer, counter: Counter, protocol: Protocol
) -> None:
    async with Bridge([MemoryServer(name="demo", server=server, protocol=protocol)]) as bridge:
        out = await tool_graph(bridge.tools).ainvoke(
            ai_calls(("refuse", {"reason": "policy"})), {"configurable": {"thread_id": "t"}}
        )
    message = out["messages"][-1]
    assert isinstance(message, ToolMessage)
    assert message.status == "error"
    assert message.tool_call_id == "call-0"
    assert "refused: policy" in str(message.content)
    assert counter.calls == 1


@pytest.mark.anyio
async def test_is_error_without_text(protocol: Protocol) -> None:
    async def handler(params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(
            content=[types.ImageContent(data="AA==", mime_type="image/png")], is_error=True
        )

    lowlevel = LowLevel([tool("draw")], handler)
    async with Bridge([MemoryServer(name="m", server=lowlevel.server(), protocol=protocol)]) as bridge:
        message = await call(bridge.tools[0], {})
    assert message.status == "error"
    assert "reported an error without a message" in str(message.content)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "args", [{"a": 1}, {"a": "one", "b": 2}, {"a": 1.5, "b": 2}], ids=["missing", "wrong-type", "float"]
)
async def test_invalid_arguments_do_not_reach_the_server(
    server: MCPServer, counter: Counter, protocol: Protocol, args: dict[str, Any]
) -> None:
    async with Bridge([MemoryServer(name="demo", server=server, protocol=protocol)]) as bridge:
        out = await tool_graph(bridge.tools).ainvoke(
            ai_calls(("add", args)), {"configurable": {"thread_id": "t"}}
        )
        message = out["messages"][-1]
        assert message.status == "error"
        assert "Invalid arguments for tool 'add'" in str(message.content)
        assert "The tool was not called" in str(message.content)
        assert counter.calls == 0
        ok = await call(tools_by_name(bridge)["add"], {"a": 1, "b": 2})
    assert ok.content == [{"type": "text", "text": "3"}]
    assert ok.artifact == {"result": 3}
    assert counter.calls == 1


@pytest.mark.anyio
async def test_call_timeout_returns_an_error_and_the_server_stays_usable(
    server: MCPServer, counter: Counter, protocol: Protocol
) -> None:
    servers = [MemoryServer(name="demo", server=server, protocol=protocol, call_timeout=0.3)]
    async with Bridge(servers) as bridge:
        tools = tools_by_name(bridge)
        with anyio.fail_after(10):
            out = await tool_graph(bridge.tools).ainvoke(
                ai_calls(("slow", {})), {"configurable": {"thread_id": "t"}}
            )
            message = out["messages"][-1]
            assert isinstance(message, ToolMessage)
            assert message.status == "error"
            assert message.tool_call_id == "call-0"
            assert "call_timeout=0.3s" in str(message.content)
            assert "cancelled" in str(message.content)
            after = await call(tools["add"], {"a": 2, "b": 2})
    assert after.content == [{"type": "text", "text": "4"}]
    assert counter.calls == 2


@pytest.mark.anyio
async def test_protocol_error_becomes_an_error_tool_message(server: MCPServer, protocol: Protocol) -> None:
    async with Bridge([MemoryServer(name="demo", server=server, protocol=protocol)]) as bridge:
        message = await call(tools_by_name(bridge)["protocol_error"], {})
    assert message.status == "error"
    assert "-32099" in str(message.content)
    assert "backend unavailable" in str(message.content)


@pytest.mark.anyio
async def test_call_after_the_bridge_closed_is_an_error_message(server: MCPServer) -> None:
    async with Bridge([MemoryServer(name="demo", server=server)]) as bridge:
        add = tools_by_name(bridge)["add"]
    message = await call(add, {"a": 1, "b": 2})
    assert message.status == "error"
    assert "'demo' is not connected" in str(message.content)


@pytest.mark.anyio
async def test_sync_invocation_is_refused(server: MCPServer) -> None:
    async with Bridge([MemoryServer(name="demo", server=server)]) as bridge:
        add = tools_by_name(bridge)["add"]
        with pytest.raises(NotImplementedError, match="async only") as caught:
            add.invoke({"a": 1, "b": 2})
        assert isinstance(caught.value, UsageError)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "arg",
    [
        "self",
        "run_manager",
        "config",
        "callbacks",
        "tool_call_id",
        "args",
        "kwargs",
        "name",
    ],
)
async def test_argument_names_that_clash_with_python_or_langchain(arg: str) -> None:
    lowlevel = LowLevel(
        [tool("t", {"type": "object", "properties": {arg: {"type": "string"}}, "required": [arg]})]
    )
    async with Bridge([MemoryServer(name="m", server=lowlevel.server())]) as bridge:
        out = await tool_graph(bridge.tools).ainvoke(
            ai_calls(("t", {arg: "v"})), {"configurable": {"thread_id": "t"}}
        )
    assert out["messages"][-1].status == "success"
    assert [c.arguments for c in lowlevel.calls] == [{arg: "v"}]


# --- with and without callback listeners ----------------------------------------------------------


class ToolEvents(AsyncCallbackHandler):
    """Records the tool events LangChain's callback machinery reports."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kwargs: Any) -> None:
        self.events.append(f"start {serialized['name']} {input_str}")

    async def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        self.events.append(f"end {output.status}")


def comparable(message: ToolMessage) -> tuple[Any, ...]:
    return (message.content, message.artifact, message.status, message.name, message.tool_call_id)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "args"),
    [("add", {"a": 1, "b": 2}), ("refuse", {"reason": "policy"}), ("add", {"a": "one"})],
    ids=["success", "tool-error", "invalid-arguments"],
)
async def test_the_same_message_with_and_without_callback_listeners(
    server: MCPServer, name: str, args: dict[str, Any]
) -> None:
    listener = ToolEvents()
    async with Bridge([MemoryServer(name="demo", server=server)]) as bridge:
        tool_ = tools_by_name(bridge)[name]
        quiet = await tool_.ainvoke(tool_call(name, args, "call-1"))
        listened = await tool_.ainvoke(tool_call(name, args, "call-1"), {"callbacks": [listener]})
        graph = tool_graph(bridge.tools)
        out = await graph.ainvoke(ai_calls((name, args)), {"configurable": {"thread_id": "t"}})
    assert isinstance(quiet, ToolMessage) and isinstance(listened, ToolMessage)
    assert comparable(quiet) == comparable(listened)
    in_graph = out["messages"][-1]
    assert (in_graph.content, in_graph.artifact, in_graph.status) == (
        quiet.content,
        quiet.artifact,
        quiet.status,
    )
    assert listener.events == [f"start {name} {args}", f"end {quiet.status}"]


class EverythingSeen(AsyncCallbackHandler):
    """Records every argument of the tool events, but the run ids (new on every call)."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    async def on_tool_start(
        self, serialized: dict[str, Any], input_str: str, *, run_id: uuid.UUID, **kwargs: Any
    ) -> None:
        self.seen.append(("start", serialized, input_str, kwargs))

    async def on_tool_end(self, output: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        self.seen.append(("end", comparable(output), kwargs))

    async def on_tool_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        self.seen.append(("error", str(error), kwargs))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("add", {"a": 1, "b": 2}),
        ("refuse", {"reason": "policy"}),
        ("add", {"a": "one"}),
        ("uses_runtime", {"runtime": "r", "thread_id": "x"}),
    ],
    ids=["success", "tool-error", "invalid-arguments", "own-runtime-argument"],
)
async def test_handlers_are_told_what_langchains_own_path_tells_them(
    server: MCPServer, name: str, args: dict[str, Any]
) -> None:
    """The bridge's path for a listened tool call gives the handlers LangChain's events, field for field."""
    ours, langchains = EverythingSeen(), EverythingSeen()
    async with Bridge([MemoryServer(name="demo", server=server)]) as bridge:
        tool_ = tools_by_name(bridge)[name]
        for handler, invoke in ((ours, tool_.ainvoke), (langchains, partial(BaseTool.ainvoke, tool_))):
            parent = await AsyncCallbackManager.configure([handler]).on_chain_start({}, {}, run_id=PARENT_RUN)
            config: RunnableConfig = {
                "callbacks": parent.get_child(),
                "tags": ["t"],
                "metadata": {"m": 1},
                "run_name": "named",
                "configurable": {"thread_id": THREAD},
            }
            runtime = ToolRuntime(
                state={},
                context=None,
                config=config,
                stream_writer=lambda _: None,
                tool_call_id="call-1",
                store=None,
            )
            tool_key = "mcpbridge_runtime_1" if name == "uses_runtime" else "runtime"
            await invoke(tool_call(name, {**args, tool_key: runtime}), config)
    assert ours.seen == langchains.seen
    assert [event[0] for event in ours.seen] == ["start", "end"]
    assert ours.seen[0][3]["parent_run_id"] == PARENT_RUN
    assert ours.seen[0][3]["inputs"] == args  # the injected runtime is left out


@pytest.mark.anyio
async def test_listeners_of_a_graph_see_every_tool_call(server: MCPServer) -> None:
    listener = ToolEvents()
    async with Bridge([MemoryServer(name="demo", server=server)]) as bridge:
        graph = tool_graph(bridge.tools)
        config: RunnableConfig = {"configurable": {"thread_id": "t"}, "callbacks": [listener]}
        out = await graph.ainvoke(ai_calls(("add", {"a": 1, "b": 2})), config)
        events = [e async for e in graph.astream_events(ai_calls(("add", {"a": 2, "b": 2})), config)]
    assert out["messages"][-1].content == [{"type": "text", "text": "3"}]
    assert listener.events[:2] == ["start add {'a': 1, 'b': 2}", "end success"]
    ends = [e for e in events if e["event"] == "on_tool_end"]
    assert [e["name"] for e in ends] == ["add"]
    output = ends[0]["data"].get("output")
    assert isinstance(output, ToolMessage)
    assert output.content == [{"type": "text", "text": "4"}]


@pytest.mark.anyio
async def test_a_tool_call_without_an_id_gives_the_content(server: MCPServer) -> None:
    async with Bridge([MemoryServer(name="demo", server=server)]) as bridge:
        add = tools_by_name(bridge)["add"]
        content = await add.ainvoke(
            {"name": "add", "args": {"a": 1, "b": 2}, "id": None, "type": "tool_call"}
        )
    assert content == [{"type": "text", "text": "3"}]
