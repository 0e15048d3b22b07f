"""Identity in `_meta` and progress, through a real LangGraph graph, over stdio and HTTP, in both eras."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import anyio
import pytest
from langgraph.prebuilt import ToolRuntime

from mcpbridge import Bridge
from mcpbridge.events import PROGRESS_EVENT

from .graphs import call, run_config, run_tool_calls, text_of, thread_of, tool_calls, tool_graph
from .support import RUN_KEY, THREAD_KEY, USER_KEY, ChildProcesses, ExampleServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_identity_reaches_the_server(echo: ExampleServer, children: ChildProcesses) -> None:
    first, second = run_config(user="alice"), run_config(user="bob")
    with anyio.fail_after(30):
        async with Bridge([echo.config()]) as bridge:
            assert bridge.protocol_version("echo") == echo.expected_version
            graph = tool_graph(bridge.tools)
            answers = await run_tool_calls(graph, [call("whoami", "who-1")], first)
            again = await run_tool_calls(graph, [call("whoami", "who-2")], second)
        children.assert_none_left()

    for config, answer in ((first, answers["who-1"]), (second, again["who-2"])):
        thread = thread_of(config)
        user = config["configurable"]["langgraph_auth_user"]["identity"]  # pyright: ignore[reportTypedDictNotRequiredAccess]
        assert answer.status == "success", text_of(answer)
        [entry] = echo.records.entries(tool="whoami", thread_id=thread)
        assert entry["protocol"] == echo.expected_version
        assert entry["meta"][THREAD_KEY] == thread
        assert entry["meta"][RUN_KEY] == str(config["run_id"])  # pyright: ignore[reportTypedDictNotRequiredAccess]
        assert entry["meta"][USER_KEY] == user
        # What the tool answered is what the server saw.
        assert answer.artifact["meta"][RUN_KEY] == str(config["run_id"])  # pyright: ignore[reportTypedDictNotRequiredAccess]


@pytest.mark.parametrize("transport", ["http"])
async def test_the_sdks_debug_log_shows_each_call_sent_in_full(
    echo: ExampleServer, caplog: pytest.LogCaptureFixture
) -> None:
    """mcpbridge's HTTP writes (`_QuietWriteStream`) leave the SDK's DEBUG log as it is."""
    caplog.set_level(logging.DEBUG, logger="mcp.client.streamable_http")
    config = run_config()
    with anyio.fail_after(30):
        async with Bridge([echo.config()]) as bridge:
            answers = await run_tool_calls(tool_graph(bridge.tools), [call("whoami", "who-1")], config)
    assert answers["who-1"].status == "success", text_of(answers["who-1"])
    sent = [
        record.getMessage()
        for record in caplog.records
        if record.name == "mcp.client.streamable_http" and "method='tools/call'" in record.getMessage()
    ]
    [line] = sent
    assert line.startswith("Sending client message: jsonrpc='2.0' id=")
    assert f"'{THREAD_KEY}': '{thread_of(config)}'" in line  # the whole message, its _meta too
    assert echo.records.entries(tool="whoami", thread_id=thread_of(config))


async def test_identity_of_concurrent_runs_does_not_mix(echo: ExampleServer) -> None:
    configs = [run_config(user=f"user-{i}") for i in range(4)]
    with anyio.fail_after(30):
        async with Bridge([echo.config()]) as bridge:
            graph = tool_graph(bridge.tools)
            async with anyio.create_task_group() as runs:
                for config in configs:
                    runs.start_soon(run_tool_calls, graph, [call("whoami"), call("add", a=1, b=2)], config)

    for i, config in enumerate(configs):
        entries = echo.records.entries(thread_id=thread_of(config))
        assert sorted(e["tool"] for e in entries) == ["add", "whoami"]
        for entry in entries:
            assert entry["meta"][RUN_KEY] == str(config["run_id"])  # pyright: ignore[reportTypedDictNotRequiredAccess]
            assert entry["meta"][USER_KEY] == f"user-{i}"


def _expected_progress(tool: str, call_id: str, steps: int) -> list[dict[str, Any]]:
    return [
        {
            "type": PROGRESS_EVENT,
            "server": "echo",
            "tool": tool,
            "tool_call_id": call_id,
            "progress": float(step),
            "total": float(steps),
            "message": f"step {step} of {steps}",
        }
        for step in range(1, steps + 1)
    ]


async def test_progress_reaches_the_tool_runtime_stream_writer(echo: ExampleServer) -> None:
    """The server's progress notifications reach the ToolRuntime's writer (no graph involved)."""
    events: list[Any] = []
    runtime = ToolRuntime[None, dict[str, Any]](
        state={},
        context=None,
        config={"configurable": {"thread_id": f"thread-{uuid.uuid4()}"}},
        stream_writer=events.append,
        tool_call_id="count-1",
        store=None,
    )
    with anyio.fail_after(30):
        async with Bridge([echo.config()]) as bridge:
            [count] = [t for t in bridge.tools if t.name == "count"]
            message = await count.ainvoke(
                {"type": "tool_call", "id": "count-1", "name": "count", "args": {"to": 3, "runtime": runtime}}
            )
    assert message.status == "success", text_of(message)
    assert text_of(message) == "counted to 3"
    assert events == _expected_progress("count", "count-1", 3)


async def test_progress_streams_to_the_custom_stream(echo: ExampleServer) -> None:
    config = run_config()
    events: list[Any] = []
    with anyio.fail_after(30):
        async with Bridge([echo.config()]) as bridge:
            graph = tool_graph(bridge.tools)
            stream = graph.astream(tool_calls(call("count", "count-1", to=4)), config, stream_mode="custom")
            async for event in stream:
                events.append(event)
    [entry] = echo.records.entries(tool="count", thread_id=thread_of(config))
    assert entry["arguments"] == {"to": 4}
    assert events == _expected_progress("count", "count-1", 4)
