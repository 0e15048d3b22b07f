"""Servers that die, hang, time out or never come up; runs that are cancelled. Nothing hangs or leaks."""

from __future__ import annotations

import sys
import time
from typing import Any

import anyio
import pytest
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from mcpbridge import Bridge, ConnectError, HttpServer, ServerConfig, StdioServer

from .graphs import call, run_config, run_tool_calls, text_of, thread_of, tool_graph
from .support import (
    PROTOCOL_VERSIONS,
    ROOT,
    RUN_KEY,
    ChildProcesses,
    ExampleServer,
    HttpServerProcess,
    Protocol,
    RecordFile,
    SilentListener,
    free_port,
    poll_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

NEVER_ANSWERS = (
    "-c",
    "import sys, time; print('waiting for a licence server', file=sys.stderr, flush=True); time.sleep(60)",
)
"""Arguments of a Python process that starts, says why on stderr, and never speaks MCP."""


def echo_stdio(name: str = "echo", **options: Any) -> StdioServer:
    """The echo example server over stdio, started by the Bridge."""
    return StdioServer(
        name=name, command=sys.executable, args=("-m", "tests.support.servers.echo"), cwd=ROOT, **options
    )


async def connect_error(servers: list[ServerConfig]) -> ConnectError:
    """Enter a Bridge that must fail; return its `ConnectError`, raised as itself (not in a group)."""
    with anyio.fail_after(30), pytest.raises(ConnectError) as raised:
        async with Bridge(servers):
            pytest.fail("the Bridge was entered")
    return raised.value


# --- servers dying mid-call --------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_stdio_server_crashing_mid_call(
    protocol: Protocol, record_file: RecordFile, children: ChildProcesses
) -> None:
    config = run_config()
    server = echo_stdio(protocol=protocol, env={"MCPBRIDGE_RECORD": str(record_file.path)})
    with anyio.fail_after(30):
        async with Bridge([server]) as bridge:
            assert children.new(), "the stdio server should be a child process of the test"
            graph = tool_graph(bridge.tools)
            with anyio.fail_after(10):
                answers = await run_tool_calls(graph, [call("crash", "crash")], config)
                after = await run_tool_calls(graph, [call("whoami", "after")], run_config())
        children.assert_none_left()

    assert record_file.entries(tool="crash", thread_id=thread_of(config)), "the crash tool never ran"
    crashed = answers["crash"]
    assert crashed.status == "error"
    assert "'echo'" in text_of(crashed) and "crash" in text_of(crashed)
    # The next call reconnected once: a new server process answered it.
    assert after["after"].status == "success", text_of(after["after"])
    [crash_entry] = record_file.entries(tool="crash")
    [after_entry] = record_file.entries(tool="whoami")
    assert after_entry["pid"] != crash_entry["pid"]


@pytest.mark.parametrize("reconnect", [0, 1, 2])
async def test_reconnects_are_bounded(reconnect: int, children: ChildProcesses) -> None:
    """Each crash spends one reconnect; once they are spent, calls fail with the reason."""
    server = echo_stdio(reconnect=reconnect)
    statuses: list[str] = []
    with anyio.fail_after(60):
        async with Bridge([server]) as bridge:
            graph = tool_graph(bridge.tools)
            for _ in range(3):
                crashed = await run_tool_calls(graph, [call("crash", "crash")], run_config())
                assert crashed["crash"].status == "error"
                answers = await run_tool_calls(graph, [call("whoami", "who")], run_config())
                statuses.append(answers["who"].status)
                if answers["who"].status == "error":
                    assert "'echo'" in text_of(answers["who"]) and "not connected" in text_of(answers["who"])
                    break
        children.assert_none_left()
    assert statuses == ["success"] * reconnect + ["error"]


async def kill_during_slow_call(
    graph: CompiledStateGraph[Any, Any, Any, Any], server: HttpServerProcess, config: RunnableConfig
) -> tuple[ToolMessage, float]:
    """Kill ``server`` once `slow` started in a run of ``graph``; return the call's message, and how soon."""
    answers: dict[str, ToolMessage] = {}
    killed_at = 0.0

    async def slow_call() -> None:
        answers.update(await run_tool_calls(graph, [call("slow", "slow", seconds=60)], config))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(slow_call)
        await server.records.view().wait_for(tool="slow", phase="start", thread_id=thread_of(config))
        killed_at = anyio.current_time()
        server.kill()
    return answers["slow"], anyio.current_time() - killed_at


def assert_killed_call_reported(message: ToolMessage, answered_in: float) -> None:
    assert answered_in < 10, f"the call took {answered_in:.1f}s to fail after the server died"
    assert message.status == "error"
    assert "'echo'" in text_of(message) and "slow" in text_of(message)


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_http_server_killed_mid_call(
    protocol: Protocol, own_echo_http: HttpServerProcess, children: ChildProcesses
) -> None:
    server = HttpServer(name="echo", url=own_echo_http.url, protocol=protocol, call_timeout=60)
    with anyio.fail_after(30):
        async with Bridge([server]) as bridge:
            graph = tool_graph(bridge.tools)
            killed, answered_in = await kill_during_slow_call(graph, own_echo_http, run_config())
            with anyio.fail_after(10):
                after = await run_tool_calls(graph, [call("whoami", "after")], run_config())
        children.assert_none_left()

    assert_killed_call_reported(killed, answered_in)
    assert after["after"].status == "error"


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_http_server_restarted_mid_run_is_reconnected(
    protocol: Protocol, own_echo_http: HttpServerProcess, children: ChildProcesses
) -> None:
    """The server dies mid-call and comes back on its port: the run's next call reconnects and succeeds."""
    records = own_echo_http.records
    server = HttpServer(name="echo", url=own_echo_http.url, protocol=protocol, call_timeout=60)
    with anyio.fail_after(60):
        async with Bridge([server]) as bridge:
            graph = tool_graph(bridge.tools)
            config = run_config()
            killed, answered_in = await kill_during_slow_call(graph, own_echo_http, config)
            own_echo_http.restart()
            children.expect(own_echo_http.process.pid)  # the fixture stops it
            with anyio.fail_after(20):
                after = await run_tool_calls(graph, [call("whoami", "after")], config)
                again = await run_tool_calls(graph, [call("add", "again", a=2, b=2)], config)
            assert bridge.protocol_version("echo") == PROTOCOL_VERSIONS[protocol]
            assert list(bridge.connected) == ["echo"]
        children.assert_none_left()

    assert_killed_call_reported(killed, answered_in)
    assert after["after"].status == "success", text_of(after["after"])
    assert again["again"].status == "success" and text_of(again["again"]) == "4.0"
    # The restarted process answered, with the run's identity, in the era of the first.
    [slow_entry] = records.entries(tool="slow", thread_id=thread_of(config))
    [after_entry] = records.entries(tool="whoami", thread_id=thread_of(config))
    assert after_entry["pid"] == own_echo_http.process.pid != slow_entry["pid"]
    assert after_entry["protocol"] == PROTOCOL_VERSIONS[protocol]
    assert after["after"].artifact["meta"][RUN_KEY] == str(config["run_id"])  # pyright: ignore[reportTypedDictNotRequiredAccess]


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_http_server_restarted_without_reconnects_stays_gone(
    protocol: Protocol, own_echo_http: HttpServerProcess, children: ChildProcesses
) -> None:
    """With ``reconnect=0`` a run does not reconnect, even to a server that is back: calls say it is gone."""
    records = own_echo_http.records
    server = HttpServer(name="echo", url=own_echo_http.url, protocol=protocol, call_timeout=60, reconnect=0)
    with anyio.fail_after(60):
        async with Bridge([server]) as bridge:
            graph = tool_graph(bridge.tools)
            config = run_config()
            killed, answered_in = await kill_during_slow_call(graph, own_echo_http, config)
            own_echo_http.restart()
            children.expect(own_echo_http.process.pid)  # the fixture stops it
            with anyio.fail_after(10):
                after = await run_tool_calls(graph, [call("whoami", "after")], config)
            assert list(bridge.connected) == []
        children.assert_none_left()

    assert_killed_call_reported(killed, answered_in)
    gone = text_of(after["after"])
    assert after["after"].status == "error"
    assert "MCP server 'echo' is not connected" in gone
    assert "closed the connection" in gone or "disconnected" in gone, gone
    assert records.entries(tool="whoami") == []  # the restarted server never saw the call


# --- timeouts ----------------------------------------------------------------------------------


async def test_call_timeout_cancels_the_call_on_the_server(
    echo: ExampleServer, children: ChildProcesses
) -> None:
    config = run_config()
    started = time.monotonic()
    with anyio.fail_after(30):
        async with Bridge([echo.config(call_timeout=0.5)]) as bridge:
            graph = tool_graph(bridge.tools)
            with anyio.fail_after(10):
                answers = await run_tool_calls(graph, [call("slow", "slow", seconds=30)], config)
            # The server saw the cancellation: its `slow` tool records it.
            cancelled = await echo.records.wait_for(
                tool="slow", phase="cancelled", thread_id=thread_of(config), within=10
            )
            # The session is still usable afterwards.
            fine = await run_tool_calls(graph, [call("add", "add", a=2, b=3)], run_config())
        children.assert_none_left()

    assert time.monotonic() - started < 20
    timed_out = answers["slow"]
    assert timed_out.status == "error"
    assert "call_timeout=0.5s" in text_of(timed_out)
    assert cancelled["protocol"] == PROTOCOL_VERSIONS[echo.protocol]
    assert fine["add"].status == "success" and text_of(fine["add"]) == "5.0"


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_stdio_server_that_stops_reading_cannot_hold_a_call(
    protocol: Protocol, record_file: RecordFile, children: ChildProcesses
) -> None:
    """A frozen server fills its stdin pipe; every later call still ends within its call_timeout."""
    big = "x" * 1_000_000  # far past a pipe's buffer: its write cannot finish while the server is frozen
    server = echo_stdio(
        protocol=protocol, call_timeout=1, env={"MCPBRIDGE_RECORD": str(record_file.path), "ECHO_FREEZE": "1"}
    )
    with anyio.fail_after(60):
        async with Bridge([server]) as bridge:
            graph = tool_graph(bridge.tools)
            frozen = await run_tool_calls(graph, [call("freeze", "freeze", seconds=40)], run_config())
            stuck = await run_tool_calls(graph, [call("fail", "big", message=big)], run_config())
            held = await run_tool_calls(graph, [call("add", "add", a=1, b=2)], run_config())
    children.assert_none_left()

    assert record_file.entries(tool="freeze"), "the server never froze"
    for answer in (frozen["freeze"], stuck["big"], held["add"]):
        assert answer.status == "error"
        assert "call_timeout=1s" in text_of(answer), text_of(answer)


# --- servers that cannot be connected ----------------------------------------------------------


async def test_required_http_server_unreachable(children: ChildProcesses) -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    error = await connect_error([HttpServer(name="gone", url=url, connect_timeout=5)])
    assert set(error.failures) == {"gone"}
    assert error.failures["gone"].required
    assert "gone" in str(error) and url in str(error)
    children.assert_none_left()


async def test_missing_stdio_command_has_a_clear_message(children: ChildProcesses) -> None:
    error = await connect_error([StdioServer(name="ghost", command="mcpbridge-no-such-command")])
    reason = error.failures["ghost"].reason
    assert "'mcpbridge-no-such-command'" in reason and "not found" in reason
    assert reason in str(error)
    children.assert_none_left()


async def test_stdio_server_exiting_at_start_reports_its_stderr(children: ChildProcesses) -> None:
    broken = StdioServer(
        name="broken",
        command=sys.executable,
        args=("-c", "import sys; print('config file missing: /etc/nowhere', file=sys.stderr); sys.exit(2)"),
    )
    error = await connect_error([broken])
    assert "config file missing: /etc/nowhere" in error.failures["broken"].reason
    children.assert_none_left()


async def test_stdio_server_that_never_answers_times_out(children: ChildProcesses) -> None:
    mute = StdioServer(name="mute", command=sys.executable, args=NEVER_ANSWERS, connect_timeout=2)
    started = time.monotonic()
    error = await connect_error([mute])
    assert time.monotonic() - started < 10
    reason = error.failures["mute"].reason
    assert "connect_timeout=2s" in reason
    assert reason.endswith("its stderr ends with:\nwaiting for a licence server"), reason
    children.assert_none_left()


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_http_handshake_that_never_completes(protocol: Protocol, children: ChildProcesses) -> None:
    """A listener that takes the request and never answers fails a required server within connect_timeout."""
    with SilentListener() as listener:
        started = time.monotonic()
        error = await connect_error(
            [HttpServer(name="silent", url=listener.url, protocol=protocol, connect_timeout=1)]
        )
        took = time.monotonic() - started
        request = listener.received()
    assert took < 5, f"connecting took {took:.1f}s with connect_timeout=1s"
    assert request.startswith(b"POST /mcp ")  # the handshake was sent, and never answered
    first_method = b"server/discover" if protocol == "auto" else b'"method":"initialize"'
    assert first_method in request
    assert set(error.failures) == {"silent"}
    reason = error.failures["silent"].reason
    assert "did not finish connecting within connect_timeout=1s" in reason
    assert "silent: " + reason in str(error)
    children.assert_none_left()


async def test_optional_http_server_that_never_answers_is_skipped(
    echo: ExampleServer, children: ChildProcesses
) -> None:
    with SilentListener() as listener, anyio.fail_after(30):
        servers = [
            HttpServer(name="silent", url=listener.url, required=False, connect_timeout=1),
            echo.config(),
        ]
        started = time.monotonic()
        async with Bridge(servers) as bridge:
            entered_in = time.monotonic() - started
            assert list(bridge.connected) == ["echo"]
            assert set(bridge.failures) == {"silent"}
            assert {t.server for t in bridge.tools} == {"echo"}
            answers = await run_tool_calls(
                tool_graph(bridge.tools), [call("add", "add", a=1, b=1)], run_config()
            )
        children.assert_none_left()
    failure = bridge.failures["silent"]
    assert not failure.required
    assert "connect_timeout=1s" in failure.reason
    assert entered_in < 10
    assert answers["add"].status == "success"


async def test_optional_servers_are_skipped_and_recorded(
    echo: ExampleServer, children: ChildProcesses
) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/mcp"
    servers = [
        echo.config(),
        HttpServer(name="gone", url=unreachable, required=False, connect_timeout=5),
        StdioServer(name="ghost", command="mcpbridge-no-such-command", required=False),
    ]
    with anyio.fail_after(30):
        async with Bridge(servers) as bridge:
            assert list(bridge.connected) == ["echo"]
            assert set(bridge.failures) == {"gone", "ghost"}
            assert not any(f.required for f in bridge.failures.values())
            assert "not found" in bridge.failures["ghost"].reason
            assert {t.server for t in bridge.tools} == {"echo"}
            answers = await run_tool_calls(
                tool_graph(bridge.tools), [call("add", "add", a=1, b=1)], run_config()
            )
        children.assert_none_left()
    assert answers["add"].status == "success"


async def test_required_failure_stops_the_servers_that_did_start(children: ChildProcesses) -> None:
    servers: list[ServerConfig] = [
        echo_stdio("first"),
        echo_stdio("second"),
        StdioServer(name="ghost", command="mcpbridge-no-such-command"),
    ]
    error = await connect_error(servers)
    assert set(error.failures) == {"ghost"}
    children.assert_none_left()


# --- cancellation and errors inside the block --------------------------------------------------


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_cancelling_a_task_inside_the_bridge(protocol: Protocol, children: ChildProcesses) -> None:
    inside = anyio.Event()
    exited = anyio.Event()

    async def run() -> None:
        try:
            async with Bridge([echo_stdio(protocol=protocol), echo_stdio("other", protocol=protocol)]):
                inside.set()
                await anyio.sleep_forever()
        finally:
            exited.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run)
            await inside.wait()
            assert len(children.new()) == 2
            tasks.cancel_scope.cancel()
    assert exited.is_set()
    children.assert_none_left()


async def test_cancelling_a_graph_run_during_a_call(
    record_file: RecordFile, children: ChildProcesses
) -> None:
    config = run_config()
    server = echo_stdio(env={"MCPBRIDGE_RECORD": str(record_file.path)})
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:

            async def run() -> None:
                async with Bridge([server]) as bridge:
                    await run_tool_calls(tool_graph(bridge.tools), [call("slow", seconds=60)], config)

            tasks.start_soon(run)
            await record_file.wait_for(tool="slow", phase="start", thread_id=thread_of(config))
            tasks.cancel_scope.cancel()
    children.assert_none_left()


async def test_cancelling_while_connecting(children: ChildProcesses) -> None:
    mute = StdioServer(name="mute", command=sys.executable, args=NEVER_ANSWERS, connect_timeout=60)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:

            async def run() -> None:
                async with Bridge([mute, echo_stdio()]):
                    pytest.fail("the Bridge cannot connect to a server that never answers")

            tasks.start_soon(run)
            await poll_until(lambda: len(children.new()) == 2, within=10)  # both servers started
            tasks.cancel_scope.cancel()
    children.assert_none_left()


async def test_error_inside_the_block_propagates_unchanged_and_stops_servers(
    children: ChildProcesses,
) -> None:
    with anyio.fail_after(30), pytest.raises(KeyError, match="raised by the caller"):
        async with Bridge([echo_stdio()]):
            assert children.new()
            raise KeyError("raised by the caller")
    children.assert_none_left()


async def test_bridge_cannot_be_used_after_exit(children: ChildProcesses) -> None:
    with anyio.fail_after(30):
        async with Bridge([echo_stdio()]) as bridge:
            [add] = [t for t in bridge.tools if t.name == "add"]
    children.assert_none_left()
    message = await add.ainvoke({"type": "tool_call", "id": "late", "name": "add", "args": {"a": 1, "b": 2}})
    assert message.status == "error"
    assert "not connected" in text_of(message)
    with pytest.raises(RuntimeError, match="not open"):
        _ = bridge.tools
