"""The example agent served over HTTP with bearer tokens: each caller runs it as their own user.

``examples/serve_auth.py`` maps ``alice-token`` and ``bob-token`` to their users;
``examples/agent.py`` connects its ``remote`` MCP server only for users holding
``mcp:remote`` (alice). The example echo servers record the identity each call
carried: the round trip MCP client -> ``mcpbridge serve`` -> agent -> MCP server.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest

from tests.integration.support import HttpServerProcess

from .conftest import ServeProcess, http_client

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CALL_TIMEOUT = 60.0
META = "dev.mcpbridge/"


def text(result: types.CallToolResult) -> str:
    """The answer: the first text block (the second carries the structured content as JSON)."""
    first = result.content[0] if result.content else None
    return first.text if isinstance(first, types.TextContent) else ""


def structured(result: types.CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, text(result)
    return dict(result.structured_content)


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}


async def test_requests_without_a_valid_token_are_refused_and_run_nothing(
    served_example: ServeProcess,
) -> None:
    records = served_example.records.view()
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "agent", "arguments": {}}}
    async with httpx2.AsyncClient(timeout=30) as http:
        for auth in ({}, {"Authorization": "Bearer nobody-token"}, {"Authorization": "Basic alice-token"}):
            for message in (INITIALIZE, call):
                response = await http.post(served_example.url, json=message, headers={**headers, **auth})
                assert response.status_code == 401, (auth, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer")
        accepted = await http.post(
            served_example.url, json=INITIALIZE, headers={**headers, "Authorization": "Bearer alice-token"}
        )
        assert accepted.status_code == 200
    with pytest.raises(Exception):  # noqa: B017 - the MCP client fails its handshake on 401
        async with http_client(served_example.url, token="nobody-token"):
            pass
    assert records.entries() == []


async def test_each_user_gets_their_own_tools(
    served_example: ServeProcess, echo_http: HttpServerProcess
) -> None:
    remote = echo_http.records.view()
    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(served_example.url, token="alice-token") as alice:
            alices = await alice.call_tool("agent", {"message": "call remote_whoami"})
        async with http_client(served_example.url, token="bob-token") as bob:
            bobs = await bob.call_tool("agent", {"message": "call remote_whoami"})
    assert text(alices).startswith("remote_whoami returned:"), text(alices)
    [call] = remote.entries(tool="whoami")
    assert call["meta"][f"{META}user_id"] == "alice"
    assert call["meta"][f"{META}thread_id"] == structured(alices)["thread_id"]
    # Bob's agent has no remote_* tools: the offline model lists the tools it has instead.
    assert not bobs.is_error
    assert "remote_" not in text(bobs)
    assert "local_whoami" in text(bobs)
    assert len(remote.entries()) == 1


async def test_the_bridged_server_sees_the_callers_user_and_thread(
    served_example: ServeProcess, mode: str
) -> None:
    records = served_example.records.view()
    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(served_example.url, token="bob-token", mode=mode) as bob:
            first = await bob.call_tool("agent", {"message": "call local_whoami"})
            thread_id = structured(first)["thread_id"]
            second = await bob.call_tool("agent", {"message": "call local_whoami", "thread_id": thread_id})
    assert not first.is_error and not second.is_error, (text(first), text(second))
    calls = records.entries(tool="whoami", thread_id=thread_id)
    assert [c["meta"][f"{META}user_id"] for c in calls] == ["bob", "bob"]
    assert [c["meta"][f"{META}run_id"] for c in calls] == [
        structured(first)["run_id"],
        structured(second)["run_id"],
    ]
    assert {c["meta"][f"{META}graph_id"] for c in calls} == {"agent"}


async def test_another_users_thread_does_not_exist_for_them(served_example: ServeProcess) -> None:
    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(served_example.url, token="alice-token") as alice:
            mine = await alice.call_tool("agent", {"message": "hello"})
        async with http_client(served_example.url, token="bob-token") as bob:
            theirs = await bob.call_tool(
                "agent", {"message": "hello", "thread_id": structured(mine)["thread_id"]}
            )
    assert theirs.is_error
    assert text(theirs).startswith(f"There is no thread {structured(mine)['thread_id']}")


async def test_an_interrupted_run_says_it_waits_and_keeps_its_thread(served_example: ServeProcess) -> None:
    records = served_example.records.view()
    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(served_example.url, token="alice-token") as alice:
            waiting = await alice.call_tool("agent", {"message": 'call local_slow {"seconds": 30}'})
            thread_id = structured(waiting)["thread_id"]
            again = await alice.call_tool("agent", {"message": "hello", "thread_id": thread_id})
    assert not waiting.is_error
    content = structured(waiting)
    assert content["status"] == "interrupted"
    assert content["interrupts"][0]["action_requests"][0]["name"] == "local_slow"
    assert text(waiting).startswith("The run stopped and waits for input: A slow tool wants to run")
    assert thread_id in text(waiting)
    assert again.is_error
    assert "waits for input" in text(again)
    assert records.entries(tool="slow") == []  # nothing ran without approval
