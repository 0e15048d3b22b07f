"""Cancelling a served call over HTTP as 2025-era clients do it, on the wire (raw HTTP).

mcp 1.x clients, FastMCP 3 and langchain-mcp-adapters cancel a call by closing its
POST's response stream (their task is cancelled), and end a session with ``DELETE``.
Either stops the run and its own MCP call (the echo server records the cancellation),
and the thread takes the next call at once, whose model gets a history that model
providers accept (the cancelled tool call answered as such).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.support.history import model_inputs, provider_problems

from .conftest import ServeProcess, http_client, model_record, raw_session
from .test_serve_local import CALL_TIMEOUT, structured, text

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

SLOW = 'call echo_slow {"seconds": 60}'


THREAD = "dev.mcpbridge/thread_id"


async def _thread_takes_a_call(served: ServeProcess, thread_id: str) -> None:
    """The next call on the thread runs (it is not "busy"), on a history model providers accept."""
    async with http_client(served.url, mode="legacy") as client:
        after = await client.call_tool("echo_agent", {"message": "call echo_whoami", "thread_id": thread_id})
    assert not after.is_error, text(after)
    assert structured(after)["thread_id"] == thread_id
    assert text(after).startswith("echo_whoami returned: ")
    first_input = model_inputs(model_record(served.records), thread_id)[-2]
    assert provider_problems(first_input) == []
    cancelled = first_input[-2]  # the answer to the cancelled echo_slow, before the new message
    assert (cancelled["type"], cancelled["status"]) == ("tool", "error")
    assert "was cancelled or did not finish" in cancelled["content"]


async def test_closing_the_response_stream_cancels_the_run(served_tests: ServeProcess) -> None:
    records = served_tests.records.view()
    with anyio.fail_after(CALL_TIMEOUT):
        async with raw_session(served_tests.url) as session:
            async with session.call("echo_agent", {"message": SLOW}):
                start = await records.wait_for(tool="slow", phase="start", within=CALL_TIMEOUT)
            thread_id = start["meta"][THREAD]
            # The response is closed; the session stays open.
            cancelled = await records.wait_for(tool="slow", phase="cancelled", thread_id=thread_id, within=20)
            assert cancelled["pid"] == start["pid"]
            await _thread_takes_a_call(served_tests, thread_id)


async def test_deleting_the_session_cancels_its_runs(served_tests: ServeProcess) -> None:
    records = served_tests.records.view()
    start: dict[str, Any] = {}
    with anyio.fail_after(CALL_TIMEOUT):
        async with raw_session(served_tests.url) as session, anyio.create_task_group() as group:

            async def call() -> None:
                async with session.call("echo_agent", {"message": SLOW}) as response:
                    async for _ in response.aiter_bytes():
                        pass

            group.start_soon(call)
            start = await records.wait_for(tool="slow", phase="start", within=CALL_TIMEOUT)
            assert (await session.delete()).status_code == 200
            cancelled = await records.wait_for(tool="slow", phase="cancelled", within=20)
            assert cancelled["pid"] == start["pid"]
        # The call's response ended with the session; the thread takes the next call.
        await _thread_takes_a_call(served_tests, start["meta"][THREAD])
