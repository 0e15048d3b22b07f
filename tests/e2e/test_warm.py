"""The example agent as ``langgraph.json`` serves it (the factory's default): a user's later runs are warm.

A second Agent Server (``langgraph dev``) serves the repository's ``langgraph.json``
unchanged, so ``examples/agent.py`` keeps sessions in its factory's own pool. What
the tests observe comes from the echo servers' own records (process starts, inbound
MCP requests, tool calls) and from /proc: a user's second run starts no stdio
process and opens no MCP connection; another user's run gets a process of its
own; when the Agent Server stops, the pooled server processes stop with it.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from langgraph_sdk import get_client

from tests.e2e.agent_server import (
    CONFIG,
    GRAPH_ID,
    TOKENS,
    Activity,
    Records,
    alive,
    descendants,
    identity,
)
from tests.support.processes import DemoServers, demo_servers, free_port, portable_config

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(300)]

RUN_TIMEOUT = 60.0
"""Seconds one run may take: a hung run fails its test, saying so."""
STOP_TIMEOUT = 20.0
"""Seconds the pooled server processes may outlive the Agent Server's stop."""


@contextmanager
def warm_server(directory: Path) -> Generator[tuple[DemoServers, Records], None, None]:
    """``langgraph dev`` serving the repository's ``langgraph.json`` as is, with the HTTP echo server."""
    records = Records(directory / "calls.jsonl", directory / "events.jsonl")
    env = {
        "MCPBRIDGE_RECORD": str(records.calls_path),
        "MCPBRIDGE_RECORD_EVENTS": str(records.events_path),
        "MCPBRIDGE_MODEL": "",  # the offline model, whatever the environment says
        "PYTHONUNBUFFERED": "1",
    }
    config = portable_config(CONFIG, directory)
    port, mcp_port = free_port(), free_port()
    with demo_servers(
        port=port, mcp_port=mcp_port, workdir=directory, config=config, logs=directory, env=env
    ) as servers:
        yield servers, records


async def run_whoami(servers: DemoServers, user: str) -> None:
    """One run of ``user`` on a new thread that calls ``local_whoami``."""

    headers = {"Authorization": f"Bearer {TOKENS[user]}"}
    async with get_client(url=servers.url, api_key=None, headers=headers) as client:
        thread_id = (await client.threads.create())["thread_id"]
        with anyio.fail_after(RUN_TIMEOUT, reason=f"{user}'s run did not finish in {RUN_TIMEOUT:g} s"):
            await client.runs.wait(
                thread_id, GRAPH_ID, input={"messages": [{"role": "user", "content": "call local_whoami {}"}]}
            )


def connections(activity: Activity) -> list[int]:
    """The pids that MCP connections were opened to (their first request)."""
    return [e["pid"] for e in activity.connections()]


async def test_a_users_second_run_starts_no_server_and_the_pool_stops_with_the_agent_server(
    tmp_path: Path,
) -> None:
    with warm_server(tmp_path) as (servers, records):
        mark = records.mark()
        await run_whoami(servers, "alice")
        first = records.since(mark)
        [alice_start] = first.starts("stdio")
        alice_pid = alice_start["pid"]
        assert sorted(connections(first)) == sorted([alice_pid, servers.echo.pid])  # local and remote
        assert alice_pid in descendants(servers.agent.pid), "alice's session was not kept"

        mark = records.mark()
        await run_whoami(servers, "alice")
        second = records.since(mark)
        assert second.starts("stdio") == [], "alice's warm run started a server process"
        assert connections(second) == [], "alice's warm run opened an MCP connection"
        [call] = second.calls
        assert call["pid"] == alice_pid and identity(call)["user_id"] == "alice"

        mark = records.mark()
        await run_whoami(servers, "bob")
        third = records.since(mark)
        [bob_start] = third.starts("stdio")
        bob_pid = bob_start["pid"]
        assert bob_pid != alice_pid, "bob's run got alice's server process"
        assert connections(third) == [bob_pid]  # bob may not use remote
        [call] = third.calls
        assert call["pid"] == bob_pid and identity(call)["user_id"] == "bob"
    with anyio.fail_after(STOP_TIMEOUT, reason="a pooled server process outlived the Agent Server"):
        while alive(alice_pid) or alive(bob_pid):  # noqa: ASYNC110 - processes of another program: poll /proc
            await anyio.sleep(0.05)
