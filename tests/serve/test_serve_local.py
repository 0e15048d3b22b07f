"""``mcpbridge serve`` with graphs of this repository, reached by real MCP clients over HTTP and stdio.

The served agents use the example echo server; what it recorded (its calls and
the ``_meta`` they carried) shows what reached it, whatever the client was told.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.integration.support import ROOT, RecordFile
from tests.support.processes import serve_command

from .conftest import GRAPHS, ServeProcess, http_client, serve_env, stdio_serve_client

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CALL_TIMEOUT = 60.0


def text(result: types.CallToolResult) -> str:
    """The answer: the first text block (the second carries the structured content as JSON)."""
    first = result.content[0] if result.content else None
    return first.text if isinstance(first, types.TextContent) else ""


def structured(result: types.CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, text(result)
    return dict(result.structured_content)


async def test_tools_are_the_graphs_with_mcp_friendly_schemas(served_tests: ServeProcess, mode: str) -> None:
    async with http_client(served_tests.url, mode=mode) as client:
        listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert list(tools) == list(GRAPHS)
    chat = tools["echo_agent"].input_schema
    assert chat["type"] == "object"
    assert set(chat["properties"]) == {"message", "thread_id", "resume"}
    assert "required" not in chat  # message is not, when resuming
    assert "$defs" not in chat  # no LangChain message schemas for the client to wade through
    repeat = tools["repeat"].input_schema
    assert repeat["type"] == "object"
    assert set(repeat["properties"]) == {"text", "times", "thread_id", "resume"}
    assert sorted(repeat["required"]) == ["text", "times"]
    for tool in tools.values():
        assert tool.description
        assert tool.output_schema is not None
        assert set(tool.output_schema["required"]) == {"thread_id", "run_id", "status"}


async def test_a_call_answers_with_text_and_structured_content(served_tests: ServeProcess, mode: str) -> None:
    async with http_client(served_tests.url, mode=mode) as client:
        with anyio.fail_after(CALL_TIMEOUT):
            result = await client.call_tool("echo_agent", {"message": 'call echo_add {"a": 2, "b": 40}'})
    assert not result.is_error, text(result)
    assert text(result) == "echo_add returned: 42.0"
    content = structured(result)
    assert content["status"] == "success"
    assert content["message"]["content"] == "echo_add returned: 42.0"
    assert content["message"]["role"] == "assistant"
    assert content["thread_id"] and content["run_id"]
    [call] = served_tests.records.entries(tool="add", thread_id=content["thread_id"])
    assert call["meta"]["dev.mcpbridge/run_id"] == content["run_id"]
    assert call["arguments"] == {"a": 2, "b": 40}


async def test_a_thread_id_continues_the_conversation(served_tests: ServeProcess, mode: str) -> None:
    async with http_client(served_tests.url, mode=mode) as client:
        with anyio.fail_after(CALL_TIMEOUT):
            first = await client.call_tool("memo", {"message": "one"})
            thread_id = structured(first)["thread_id"]
            second = await client.call_tool("memo", {"message": "two", "thread_id": thread_id})
            other = await client.call_tool("memo", {"message": "three"})
            unknown = await client.call_tool("memo", {"message": "four", "thread_id": "no-such-thread"})
    assert text(first) == "you said: one"
    assert text(second) == "you said: one | two"
    assert structured(second)["thread_id"] == thread_id
    assert structured(second)["run_id"] != structured(first)["run_id"]
    assert text(other) == "you said: three"
    assert structured(other)["thread_id"] != thread_id
    assert unknown.is_error
    assert "There is no thread no-such-thread" in text(unknown)


async def test_a_thread_belongs_to_its_graph(served_tests: ServeProcess) -> None:
    async with http_client(served_tests.url) as client:
        with anyio.fail_after(CALL_TIMEOUT):
            memo = await client.call_tool("memo", {"message": "hello"})
            elsewhere = await client.call_tool(
                "echo_agent", {"message": "hello", "thread_id": structured(memo)["thread_id"]}
            )
    assert elsewhere.is_error
    assert "There is no thread" in text(elsewhere)


async def test_progress_reports_nodes_and_the_mcp_tools_progress(
    served_tests: ServeProcess, mode: str
) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with http_client(served_tests.url, mode=mode) as client:
        with anyio.fail_after(CALL_TIMEOUT):
            result = await client.call_tool(
                "echo_agent", {"message": 'call echo_count {"to": 3}'}, progress_callback=on_progress
            )
    assert text(result) == "echo_count returned: counted to 3"
    messages = [message for _, _, message in seen]
    assert messages == [
        "model: calls echo_count",
        "echo_count: step 1 of 3 (1/3)",
        "echo_count: step 2 of 3 (2/3)",
        "echo_count: step 3 of 3 (3/3)",
        "tools: echo_count returned",
        "model done",
    ]
    assert [progress for progress, _, _ in seen] == [1, 2, 3, 4, 5, 6]


async def test_a_graph_with_its_own_schema_gets_its_output(served_tests: ServeProcess, mode: str) -> None:
    seen: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    async with http_client(served_tests.url, mode=mode) as client:
        with anyio.fail_after(CALL_TIMEOUT):
            result = await client.call_tool(
                "repeat", {"text": "ab", "times": 2}, progress_callback=on_progress
            )
            refused = await client.call_tool("repeat", {"text": "ab", "times": "twice"})
    assert not result.is_error, text(result)
    assert structured(result)["output"] == {"result": "abab"}
    assert structured(result)["message"] is None
    assert text(result) == '{"result": "abab"}'
    assert seen == ["repeat 1 of 2", "repeat 2 of 2", "repeat done"]
    assert refused.is_error
    assert text(refused).startswith("Invalid arguments: times: 'twice' is not of type 'integer'")


async def test_mcp_param_headers_must_match_the_arguments(served_tests: ServeProcess) -> None:
    async def tamper(request: httpx2.Request) -> None:
        if "mcp-param-region" in request.headers:
            request.headers["Mcp-Param-Region"] = "us"

    async with http_client(served_tests.url) as client:  # 2026-07-28: the client mirrors `region`
        with anyio.fail_after(CALL_TIMEOUT):
            result = await client.call_tool("routed", {"region": "eu", "text": "hi"})
    assert structured(result)["output"] == {"region": "eu", "text": "eu: hi"}
    async with (
        httpx2.AsyncClient(event_hooks={"request": [tamper]}, timeout=CALL_TIMEOUT) as http,
        Client(streamable_http_client(served_tests.url, http_client=http)) as client,
    ):
        with anyio.fail_after(CALL_TIMEOUT), pytest.raises(MCPError) as refused:
            await client.call_tool("routed", {"region": "eu", "text": "hi"})
    assert "Mcp-Param-Region header does not match" in refused.value.message


async def test_a_failing_run_is_a_readable_error(served_tests: ServeProcess) -> None:
    async with http_client(served_tests.url) as client:
        with anyio.fail_after(CALL_TIMEOUT):
            result = await client.call_tool("broken", {"message": "go"})
            with pytest.raises(MCPError) as unknown:
                await client.call_tool("nope", {})
    assert result.is_error
    message = text(result)
    assert message.startswith("The run of 'broken' failed (thread ")
    assert message.endswith("ValueError: the disk is full")
    assert "Traceback" not in message and "messages" not in message
    assert result.structured_content is None
    assert unknown.value.code == types.INVALID_PARAMS
    assert "unknown tool 'nope'" in unknown.value.message


async def test_a_plain_factory_is_built_for_the_run(served_tests: ServeProcess) -> None:
    async with http_client(served_tests.url) as client:
        with anyio.fail_after(CALL_TIMEOUT):
            result = await client.call_tool("plain_factory", {"message": "who?"})
    assert text(result) == "built for nobody (threads.create_run)"


async def test_cancelling_a_call_cancels_the_run_and_its_mcp_call(
    served_tests: ServeProcess, mode: str
) -> None:
    records = served_tests.records.view()
    async with http_client(served_tests.url, mode=mode) as client:
        with anyio.fail_after(CALL_TIMEOUT), anyio.CancelScope() as scope:

            async def cancel_once_started() -> None:
                await records.wait_for(tool="slow", phase="start", within=CALL_TIMEOUT)
                scope.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel_once_started)
                await client.call_tool("echo_agent", {"message": 'call echo_slow {"seconds": 60}'})
        assert scope.cancelled_caught
        start = await records.wait_for(tool="slow", phase="start")
        cancelled = await records.wait_for(tool="slow", phase="cancelled", within=20)
        assert cancelled["pid"] == start["pid"]
        # The server goes on serving, on the same session.
        with anyio.fail_after(CALL_TIMEOUT):
            after = await client.call_tool("memo", {"message": "still there?"})
    assert text(after) == "you said: still there?"


async def test_stdio_lists_calls_and_continues_threads(tmp_path: Path, mode: str) -> None:
    records = RecordFile(tmp_path / "calls.jsonl")
    args = ["tests.serve.graphs:memo", "tests.serve.graphs:echo_agent"]
    seen: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    with anyio.fail_after(CALL_TIMEOUT * 2):
        async with stdio_serve_client(args, serve_env(records), mode=mode) as client:
            listed = await client.list_tools()
            first = await client.call_tool("memo", {"message": "one"})
            second = await client.call_tool(
                "memo", {"message": "two", "thread_id": structured(first)["thread_id"]}
            )
            whoami = await client.call_tool(
                "echo_agent", {"message": "call echo_whoami"}, progress_callback=on_progress
            )
    assert [tool.name for tool in listed.tools] == ["memo", "echo_agent"]
    assert text(second) == "you said: one | two"
    assert "model: calls echo_whoami" in seen
    [call] = records.entries(tool="whoami")
    assert call["meta"]["dev.mcpbridge/thread_id"] == structured(whoami)["thread_id"]
    assert "dev.mcpbridge/user_id" not in call["meta"]  # stdio has no users


async def test_stdio_cancellation_reaches_the_bridged_server(tmp_path: Path) -> None:
    records = RecordFile(tmp_path / "calls.jsonl")
    with anyio.fail_after(CALL_TIMEOUT * 2):
        async with stdio_serve_client(
            ["tests.serve.graphs:echo_agent"], serve_env(records), mode="legacy"
        ) as client:
            with anyio.CancelScope() as scope:

                async def cancel_once_started() -> None:
                    await records.wait_for(tool="slow", phase="start", within=CALL_TIMEOUT)
                    scope.cancel()

                async with anyio.create_task_group() as group:
                    group.start_soon(cancel_once_started)
                    await client.call_tool("echo_agent", {"message": 'call echo_slow {"seconds": 60}'})
            assert scope.cancelled_caught
            await records.wait_for(tool="slow", phase="cancelled", within=20)


async def test_sqlite_threads_outlive_the_server(tmp_path: Path) -> None:
    records = RecordFile(tmp_path / "calls.jsonl")
    database = tmp_path / "threads.db"
    args = ["tests.serve.graphs:memo", "--checkpointer", f"sqlite:{database}"]
    with anyio.fail_after(CALL_TIMEOUT * 2):
        async with stdio_serve_client(args, serve_env(records)) as client:
            first = await client.call_tool("memo", {"message": "remember me"})
        thread_id = structured(first)["thread_id"]
        assert database.stat().st_size > 0
        async with stdio_serve_client(args, serve_env(records)) as client:
            again = await client.call_tool("memo", {"message": "and me", "thread_id": thread_id})
    assert text(again) == "you said: remember me | and me"


async def test_over_stdio_threads_outlive_a_process_per_call_by_default(tmp_path: Path) -> None:
    records = RecordFile(tmp_path / "calls.jsonl")
    env = serve_env(records)
    args = ["tests.serve.graphs:memo"]  # no --checkpointer
    with anyio.fail_after(CALL_TIMEOUT * 2):
        async with stdio_serve_client(args, env) as client:
            first = await client.call_tool("memo", {"message": "remember me"})
        async with stdio_serve_client(args, env) as client:
            again = await client.call_tool(
                "memo", {"message": "and me", "thread_id": structured(first)["thread_id"]}
            )
    assert text(again) == "you said: remember me | and me"
    assert (Path(env["MCPBRIDGE_STATE_DIR"]) / "threads.sqlite").stat().st_size > 0


def _thread_id_in_text(result: types.CallToolResult) -> str:
    """What a client that reads only text blocks finds as the thread id."""
    for block in result.content:
        if isinstance(block, types.TextContent) and block.text.startswith("{"):
            return json.loads(block.text)["thread_id"]
    raise AssertionError(f"no thread id in the text of {result.content!r}")


async def test_a_text_only_reader_continues_the_thread_over_http(served_tests: ServeProcess) -> None:
    async with http_client(served_tests.url) as client:
        with anyio.fail_after(CALL_TIMEOUT):
            first = await client.call_tool("memo", {"message": "one"})
            thread_id = _thread_id_in_text(first)
            second = await client.call_tool("memo", {"message": "two", "thread_id": thread_id})
    assert thread_id == structured(first)["thread_id"]
    assert text(second) == "you said: one | two"


async def test_a_text_only_reader_finds_the_thread_over_stdio(tmp_path: Path) -> None:
    records = RecordFile(tmp_path / "calls.jsonl")
    with anyio.fail_after(CALL_TIMEOUT * 2):
        async with stdio_serve_client(["tests.serve.graphs:memo"], serve_env(records)) as client:
            first = await client.call_tool("memo", {"message": "one"})
            second = await client.call_tool(
                "memo", {"message": "two", "thread_id": _thread_id_in_text(first)}
            )
    assert text(second) == "you said: one | two"


async def test_a_long_answer_is_sent_once_in_full(served_tests: ServeProcess) -> None:
    said = "y" * 300_000
    async with http_client(served_tests.url) as client:
        with anyio.fail_after(CALL_TIMEOUT):
            result = await client.call_tool("memo", {"message": said})
    assert text(result) == f"you said: {said}"
    assert structured(result)["message"]["truncated"] is True
    size = len(result.model_dump_json(by_alias=True))
    assert size < len(said) + 10_000  # the answer once, not three times


@pytest.mark.parametrize(
    "body",
    [
        [],
        [{"jsonrpc": "2.0", "id": 1, "method": "ping"}],
        {"hello": "world"},
        {"jsonrpc": "1.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "method": 7},
        "just a string",
    ],
)
async def test_an_http_post_that_is_no_json_rpc_message_is_an_invalid_request(
    served_tests: ServeProcess, body: Any
) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with httpx2.AsyncClient(timeout=CALL_TIMEOUT) as http:
        response = await http.post(served_tests.url, json=body, headers=headers)
        not_json = await http.post(served_tests.url, content=b"{bad", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600
    assert response.json()["id"] is None
    assert not_json.json()["error"]["code"] == -32700


async def test_a_malformed_stdio_line_gets_an_error_answer(tmp_path: Path) -> None:
    records = RecordFile(tmp_path / "calls.jsonl")
    command = [*serve_command(), "serve", "tests.serve.graphs:memo"]
    ping = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    lines = f'{{bad\n{{"hello": "world"}}\n{ping}\n'.encode()
    with anyio.fail_after(CALL_TIMEOUT):
        process = await anyio.open_process(command, cwd=ROOT, env=serve_env(records))
        async with process:
            assert process.stdin is not None and process.stdout is not None
            await process.stdin.send(lines)
            output = b""
            async for chunk in process.stdout:  # stdin stays open until the ping is answered
                output += chunk
                if output.count(b"\n") >= 3:
                    break
            await process.stdin.aclose()
            await process.wait()
    answers = [json.loads(line) for line in output.decode().splitlines()]
    assert [answer.get("error", {}).get("code") for answer in answers[:2]] == [-32700, -32600]
    assert answers[2]["id"] == 1 and "result" in answers[2]  # the server goes on
