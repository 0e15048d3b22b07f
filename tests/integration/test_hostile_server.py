"""A misbehaving server next to a well-behaved one: what loads, under which names, and what errors become."""

from __future__ import annotations

import logging
import re

import anyio
import pytest

from mcpbridge import Bridge, MCPTool, ToolNameConflictError
from tests.support.servers.hostile import CJK_NAME, INVALID_SCHEMAS, LONG_NAME

from .graphs import call, run_config, run_tool_calls, text_of, thread_of, tool_graph
from .support import THREAD_KEY, ChildProcesses, ExampleServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PROVIDER_SAFE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

HOSTILE_TOOLS = {
    "search files",
    "search.files",
    "weather?!:now",
    "überprüfen",
    CJK_NAME,
    LONG_NAME,
    "add",
    "explode",
    "plan_trip",
    "count_nodes",
    "dawdle",
    "huge",
    "bad_image",
    "show_hologram",
    "forecast",
    "impersonate",
    "images",
    "progress_flood",
    "log_flood",
}
"""Every hostile tool whose input schema is valid, so must load."""

ECHO_TOOLS = {"whoami", "add", "count", "slow", "fail", "crash"}


def _by_server(tools: list[MCPTool], server: str) -> dict[str, MCPTool]:
    return {t.mcp_name: t for t in tools if t.server == server}


async def test_valid_tools_load_with_unique_provider_safe_names(
    echo: ExampleServer, hostile: ExampleServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mcpbridge")
    with anyio.fail_after(30):
        async with Bridge([echo.config(), hostile.config()]) as bridge:
            tools = bridge.tools
            assert bridge.protocol_version("hostile") == hostile.expected_version

    names = [t.name for t in tools]
    assert len(set(names)) == len(names), names
    assert all(PROVIDER_SAFE.match(n) for n in names), [n for n in names if not PROVIDER_SAFE.match(n)]
    hostile_tools = _by_server(tools, "hostile")
    assert set(hostile_tools) == HOSTILE_TOOLS
    assert set(_by_server(tools, "echo")) == ECHO_TOOLS

    # `add` is on both servers: each is offered under its server's name, and routed to it.
    assert hostile_tools["add"].name == "hostile_add"
    assert _by_server(tools, "echo")["add"].name == "echo_add"
    # Names are readable where they can be.
    assert hostile_tools["weather?!:now"].name == "weather_now"
    assert hostile_tools["überprüfen"].name == "uberprufen"
    assert hostile_tools[LONG_NAME].name.startswith("very_long_tool_name_x")
    # Two names of one server that clean to the same name are kept apart.
    spaced, dotted = hostile_tools["search files"].name, hostile_tools["search.files"].name
    assert spaced != dotted
    assert spaced.startswith("search_files") and dotted.startswith("search_files")
    # The schemas the model sees are the server's, $defs and $ref included.
    plan = hostile_tools["plan_trip"].tool_call_schema
    assert isinstance(plan, dict) and "$defs" in plan and "Address" in plan["$defs"]

    # Tools with an invalid schema are skipped, each with a warning naming it.
    skipped = " ".join(r.getMessage() for r in caplog.records)
    for name in INVALID_SCHEMAS:
        assert name not in hostile_tools
        assert repr(name) in skipped


async def test_calls_route_and_errors_become_tool_messages(
    echo: ExampleServer, hostile: ExampleServer, children: ChildProcesses
) -> None:
    config = run_config()
    with anyio.fail_after(30):
        async with Bridge([echo.config(), hostile.config(call_timeout=1.0)]) as bridge:
            names = {(t.server, t.mcp_name): t.name for t in bridge.tools}
            graph = tool_graph(bridge.tools)
            calls = [
                call(names["hostile", "add"], "hostile-add", a="ab", b="cd"),
                call(names["echo", "add"], "echo-add", a=1, b=2),
                call(names["hostile", LONG_NAME], "long"),
                call(names["hostile", CJK_NAME], "cjk", city="北京"),
                call(names["hostile", "search files"], "spaced", query="q1"),
                call(names["hostile", "search.files"], "dotted", query="q2"),
                call(
                    names["hostile", "plan_trip"],
                    "plan",
                    trip={
                        "destination": {"street": "1 Main St", "city": "Oslo"},
                        "stops": [{"street": "2 Side St", "city": "Bergen"}],
                        "mode": "train",
                    },
                    budget=100,
                ),
                call(
                    names["hostile", "count_nodes"],
                    "tree",
                    tree={
                        "name": "root",
                        "children": [{"name": "a", "children": [{"name": "b"}]}, {"name": "c"}],
                    },
                ),
                call(names["hostile", "explode"], "explode"),
                call(names["hostile", "plan_trip"], "bad-args", trip={"stops": []}),
                call(names["hostile", "dawdle"], "dawdle", seconds=30),
                call("no_such_tool", "unknown"),
            ]
            answers = await run_tool_calls(graph, calls, config)
        children.assert_none_left()

    ok = {k: text_of(v) for k, v in answers.items() if v.status == "success"}
    assert ok == {
        "hostile-add": "abcd",
        "echo-add": "3.0",
        "long": "long name reached",
        "cjk": "北京: 晴",
        "spaced": "searched for q1",
        "dotted": "dot-searched for q2",
        "plan": "trip to Oslo with 1 stops",
        "tree": "4",
    }
    failed = {k: text_of(v) for k, v in answers.items() if v.status == "error"}
    assert set(failed) == {"explode", "bad-args", "dawdle", "unknown"}
    assert "exploded on purpose" in failed["explode"]
    assert "Invalid arguments" in failed["bad-args"] and "destination" in failed["bad-args"]
    assert "call_timeout=1s" in failed["dawdle"]
    assert "no_such_tool" in failed["unknown"]

    thread = thread_of(config)
    served = {(e["server"], e["tool"]) for e in hostile.records.entries(thread_id=thread)}
    served |= {(e["server"], e["tool"]) for e in echo.records.entries(thread_id=thread)}
    assert served == {
        ("hostile", "add"),
        ("echo", "add"),
        ("hostile", LONG_NAME),
        ("hostile", CJK_NAME),
        ("hostile", "search files"),
        ("hostile", "search.files"),
        ("hostile", "plan_trip"),  # once: the call with bad arguments never left the client
        ("hostile", "count_nodes"),
        ("hostile", "explode"),
        ("hostile", "dawdle"),
    }
    assert len(hostile.records.entries(tool="plan_trip", thread_id=thread)) == 1
    assert all(e["meta"][THREAD_KEY] == thread for e in hostile.records.entries(thread_id=thread))


async def test_name_conflict_policy_error_refuses_and_stops_servers(
    echo: ExampleServer, hostile: ExampleServer, children: ChildProcesses
) -> None:
    with anyio.fail_after(30), pytest.raises(ToolNameConflictError, match="'add'") as raised:
        async with Bridge([echo.config(), hostile.config()], on_name_conflict="error"):
            pytest.fail("the Bridge was entered although both servers offer `add`")
    assert "prefix" in str(raised.value)
    children.assert_none_left()

    # A prefix on one server resolves it.
    with anyio.fail_after(30):
        async with Bridge([echo.config(), hostile.config(prefix="h")], on_name_conflict="error") as bridge:
            names = {(t.server, t.mcp_name): t.name for t in bridge.tools}
    assert names["echo", "add"] == "add"
    assert names["hostile", "add"] == "h_add"
    children.assert_none_left()


async def test_a_20_mb_result_reaches_the_model_truncated_with_a_note(hostile: ExampleServer) -> None:
    config = run_config()
    with anyio.fail_after(60):
        async with Bridge([hostile.config(max_result_chars=50_000)]) as bridge:
            graph = tool_graph(bridge.tools)
            answers = await run_tool_calls(graph, [call("huge", "huge", megabytes=20)], config)
    message = answers["huge"]
    assert message.status == "success"
    text = text_of(message)
    assert len(text) < 51_000, len(text)
    assert text.startswith('{"text":"xxx') or text.startswith('{\n  "text": "xxx')
    assert "The result was too long: 50,000 of its 20,971,5" in text
    assert "structured content (20,971,5" in text and "max_result_chars=50,000" in text
    assert message.artifact is None  # 20 MB of structured content never enters the graph's state
    assert hostile.records.entries(tool="huge", thread_id=thread_of(config))
