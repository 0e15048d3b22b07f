"""``mcpbridge serve --remote``: the Agent Server's assistants over MCP, with threads, progress and auth.

The front forwards each caller's bearer token to the Agent Server (``langgraph
dev`` serving the example agent and ``tests/serve/graphs.py:echo_agent``, with
``examples/auth.py``), so its auth applies per call: threads belong to their
users there, and ``--auth remote`` refuses tokens it refuses. The last test shows
what the Agent Server's own ``/mcp`` endpoint answers, for comparison.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from langgraph_sdk import get_client
from mcp import MCPError
from mcp.client.context import ClientRequestContext

from .conftest import AgentServer, ServeProcess, http_client, raw_session

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(300)]

CALL_TIMEOUT = 90.0
META = "dev.mcpbridge/"
ALICE = {"Authorization": "Bearer alice-token"}


def text(result: types.CallToolResult) -> str:
    """The answer: the first text block (the second carries the structured content as JSON)."""
    first = result.content[0] if result.content else None
    return first.text if isinstance(first, types.TextContent) else ""


def structured(result: types.CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, text(result)
    return dict(result.structured_content)


async def test_the_assistants_are_tools(served_remote: ServeProcess, mode: str) -> None:
    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(served_remote.url, token="alice-token", mode=mode) as alice:
            listed = await alice.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert sorted(tools) == ["agent", "ask", "echo_agent"]
    for tool in tools.values():
        assert set(tool.input_schema["properties"]) == {"message", "thread_id", "resume"}
        assert tool.output_schema is not None


async def test_calls_run_on_agent_server_threads_as_the_caller(
    served_remote: ServeProcess, agent_server: AgentServer, mode: str
) -> None:
    records = agent_server.records.view()
    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(served_remote.url, token="alice-token", mode=mode) as alice:
            first = await alice.call_tool("agent", {"message": "call local_whoami"})
            thread_id = structured(first)["thread_id"]
            second = await alice.call_tool(
                "agent", {"message": 'call local_add {"a": 1, "b": 2}', "thread_id": thread_id}
            )
    assert not first.is_error, text(first)
    assert text(second) == "local_add returned: 3.0"
    assert structured(second)["thread_id"] == thread_id
    [whoami] = records.entries(tool="whoami", thread_id=thread_id)
    assert whoami["meta"][f"{META}user_id"] == "alice"
    assert whoami["meta"][f"{META}thread_id"] == thread_id
    assert whoami["meta"][f"{META}run_id"] == structured(first)["run_id"]
    async with get_client(url=agent_server.url, api_key=None, headers=ALICE) as sdk:
        thread = await sdk.threads.get(thread_id)
        runs = await sdk.runs.list(thread_id)
    assert (thread["metadata"] or {})["owner"] == "alice"  # created with alice's token, as alice
    assert {run["run_id"] for run in runs} == {structured(first)["run_id"], structured(second)["run_id"]}


async def test_progress_streams_from_the_agent_server(served_remote: ServeProcess) -> None:
    seen: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(served_remote.url, token="alice-token") as alice:
            result = await alice.call_tool(
                "agent", {"message": 'call remote_count {"to": 3}'}, progress_callback=on_progress
            )
    assert text(result) == "remote_count returned: counted to 3"
    counted = [message for message in seen if message and message.startswith("remote_count:")]
    assert counted == [f"remote_count: step {i} of 3 ({i}/3)" for i in (1, 2, 3)]
    assert "model: calls remote_count" in seen


async def test_tokens_the_agent_server_refuses_are_refused(served_remote: ServeProcess) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx2.AsyncClient(timeout=30) as http:
        for auth in ({}, {"Authorization": "Bearer nobody-token"}):
            response = await http.post(served_remote.url, json=message, headers={**headers, **auth})
            assert response.status_code == 401, response.text


async def test_another_users_thread_is_not_found(served_remote: ServeProcess) -> None:
    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(served_remote.url, token="alice-token") as alice:
            mine = await alice.call_tool("agent", {"message": "hello"})
        async with http_client(served_remote.url, token="bob-token") as bob:
            theirs = await bob.call_tool(
                "agent", {"message": "hello", "thread_id": structured(mine)["thread_id"]}
            )
    assert theirs.is_error
    assert text(theirs).startswith(f"There is no thread {structured(mine)['thread_id']}")


async def test_cancelling_a_call_cancels_the_agent_server_run(
    served_remote: ServeProcess, agent_server: AgentServer
) -> None:
    records = agent_server.records.view()
    with anyio.fail_after(CALL_TIMEOUT), anyio.CancelScope() as scope:
        async with http_client(served_remote.url, token="alice-token") as alice:

            async def cancel_once_started() -> None:
                await records.wait_for(tool="slow", phase="start", within=CALL_TIMEOUT)
                scope.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel_once_started)
                await alice.call_tool("echo_agent", {"message": 'call echo_slow {"seconds": 60}'})
    assert scope.cancelled_caught
    start = await records.wait_for(tool="slow", phase="start")
    cancelled = await records.wait_for(tool="slow", phase="cancelled", within=30)
    assert cancelled["pid"] == start["pid"]
    thread_id = start["meta"][f"{META}thread_id"]
    async with get_client(url=agent_server.url, api_key=None, headers=ALICE) as sdk:
        [run] = await sdk.runs.list(thread_id)
    assert run["run_id"] == start["meta"][f"{META}run_id"]
    assert run["status"] == "interrupted"  # cancelled (action "interrupt"), not run to its end


async def test_closing_the_response_stream_cancels_the_agent_server_run(
    served_remote: ServeProcess, agent_server: AgentServer
) -> None:
    """A 2025-era client cancels by closing the POST's response stream; the thread takes the next call."""
    records = agent_server.records.view()
    with anyio.fail_after(CALL_TIMEOUT):
        async with raw_session(served_remote.url, token="alice-token") as session:
            async with session.call("echo_agent", {"message": 'call echo_slow {"seconds": 60}'}):
                start = await records.wait_for(tool="slow", phase="start", within=CALL_TIMEOUT)
        thread_id = start["meta"][f"{META}thread_id"]
        cancelled = await records.wait_for(tool="slow", phase="cancelled", thread_id=thread_id, within=30)
        assert cancelled["pid"] == start["pid"]
        async with http_client(served_remote.url, token="alice-token", mode="legacy") as alice:
            after = await alice.call_tool(
                "echo_agent", {"message": "call echo_whoami", "thread_id": thread_id}
            )
    assert not after.is_error, text(after)  # not busy: the cancelled run is over
    assert structured(after)["thread_id"] == thread_id


async def test_the_agent_servers_own_mcp_endpoint_for_comparison(agent_server: AgentServer) -> None:
    """The baseline: no thread, a JSON answer only, and the whole final state as repr()."""
    headers = {"Authorization": "Bearer alice-token", "Accept": "application/json, text/event-stream"}
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "agent", "arguments": {"messages": 'call local_add {"a": 1, "b": 2}'}},
        "_meta": {"progressToken": 1},
    }
    async with httpx2.AsyncClient(base_url=agent_server.url, timeout=CALL_TIMEOUT) as http:
        response = await http.post("/mcp", json=call, headers=headers)
    assert response.headers["content-type"].startswith("application/json")  # no event stream, no progress
    result = json.loads(response.text)["result"]
    assert "structuredContent" not in result
    assert result["content"][0]["text"].startswith("{'messages': [{'content':")  # repr() of the state


class _Human:
    """Answers the ``ask`` graph's two forms."""

    async def __call__(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        assert isinstance(params, types.ElicitRequestFormParams)
        [field] = params.requested_schema["properties"]
        return types.ElicitResult(action="accept", content={field: {"answer": "Ada", "city": "Oslo"}[field]})


async def test_an_interrupted_assistant_run_is_resumed_through_mcp(
    served_remote: ServeProcess, agent_server: AgentServer
) -> None:
    """2026-07-28: ``input_required`` rounds; any era: the ``resume`` argument; a replay resumes nothing."""
    records = agent_server.records.view()
    with anyio.fail_after(CALL_TIMEOUT * 2):
        async with http_client(
            served_remote.url, token="alice-token", elicitation_callback=_Human()
        ) as alice:
            asked = await alice.call_tool("ask", {"message": "hi"})
            first = await alice.session.call_tool("ask", {"message": "hi"}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult) and first.input_requests
            [key] = first.input_requests
            answer: dict[str, types.InputResponse] = {
                key: types.ElicitResult(action="accept", content={"answer": "Bob"})
            }
            second = await alice.session.call_tool(
                "ask",
                {"message": "hi"},
                input_responses=answer,
                request_state=first.request_state,
                allow_input_required=True,
            )
            assert isinstance(second, types.InputRequiredResult)
            with pytest.raises(MCPError) as replayed:
                await alice.session.call_tool(
                    "ask",
                    {"message": "hi"},
                    input_responses=answer,
                    request_state=first.request_state,
                    allow_input_required=True,
                )
        async with http_client(served_remote.url, token="alice-token", mode="legacy") as plain:
            waiting = await plain.call_tool("ask", {"message": "hi"})
            thread_id = structured(waiting)["thread_id"]
            refused = await plain.call_tool("ask", {"message": "hello?", "thread_id": thread_id})
            await plain.call_tool("ask", {"thread_id": thread_id, "resume": "Cy"})
            done = await plain.call_tool("ask", {"thread_id": thread_id, "resume": {"city": "Rome"}})
    assert text(asked) == "Ada lives in Oslo"
    assert "already answered or is no longer pending" in replayed.value.message
    assert structured(waiting)["status"] == "interrupted"
    assert refused.is_error and f"Thread {thread_id} waits for input" in text(refused)
    assert text(done) == "Cy lives in Rome"
    assert [e["answer"] for e in records.entries(tool="ask") if e["question"] == "name"].count("Bob") == 1
