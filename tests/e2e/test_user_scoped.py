"""User-scoped MCP servers on the real Agent Server: each user's tools, own servers and credentials.

The deployment is ``examples/agent.py`` behind ``examples/auth.py``: alice holds
``mcp:local``, ``mcp:remote`` and ``mcp:admin``, bob only ``mcp:local``. What a run
was offered is read from the offline model's tool list (its answer to a message
naming no tool); what it did, from the MCP servers' own records (calls with the
identity they carried and verified, and a fingerprint of the ``Authorization``
header), never from the answer alone.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
from langgraph_sdk.schema import StreamMode

from tests.e2e.agent_server import GRAPH_ID, AgentServer, identity, message_text
from tests.e2e.isolation import EchoServer, help_tools, read_jsonl
from tests.support.servers.common import fingerprint

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(300)]

RUN_TIMEOUT = 60.0
"""Seconds one run may take: a hung run fails its test."""

ECHO = ("whoami", "add", "count", "slow", "fail")
"""The echo server's tools, but ``crash``."""
BOB_TOOLS = {f"local_{t}" for t in ECHO}
ALICE_TOOLS = {f"{server}_{t}" for server in ("local", "remote") for t in (*ECHO, "crash")}
OWN_TOOLS = {*ECHO, "crash"}
"""A registered server has no prefix: its tools keep their names on the server."""
REMOTE_SECRET = "alice-remote-secret"
OWN_TOKEN = "alice-own-token"
ALL_STREAM_MODES: list[StreamMode] = [
    "values",
    "updates",
    "custom",
    "messages",
    "messages-tuple",
    "debug",
    "events",
    "tasks",
    "checkpoints",
]
"""Every stream mode the Agent Server accepts for a run."""
SLOW_RUN = 'call local_slow {"seconds": 0.1} then local_local_slow {"seconds": 0.1}'
"""The deployment's slow tool, by its name and by the name a clash gives it."""
CREDENTIALS_RUN = 'call remote_whoami {} then whoami {} then remote_count {"to": 2}'
"""Calls with each stored credential, and progress for the ``custom`` stream."""


async def run_wait(client: Any, content: str) -> tuple[str, str, dict[str, Any]]:
    """Run the agent on a fresh thread to its end; return the thread id, the run id and the final state."""
    thread_id = (await client.threads.create())["thread_id"]
    created: list[Any] = []
    with anyio.fail_after(RUN_TIMEOUT):
        state = await client.runs.wait(
            thread_id,
            GRAPH_ID,
            input={"messages": [{"role": "user", "content": content}]},
            on_run_created=created.append,
        )
    [run] = created
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"
    return thread_id, run["run_id"], state


async def offered_tools(client: Any) -> set[str]:
    """The tools a run of this user is offered: the offline model lists them when asked for none."""
    _, _, state = await run_wait(client, "Which tools are there?")
    assert tool_calls(state) == []
    return set(help_tools(message_text(state["messages"])))


def tool_calls(state: dict[str, Any]) -> list[str]:
    """The names of the tools the run's model called, in order."""
    return [c["name"] for m in state["messages"] if m["type"] == "ai" for c in m.get("tool_calls") or []]


def own_activity(server: EchoServer, calls: int, events: int) -> tuple[list[Any], list[Any]]:
    """The calls and requests the user's own server recorded after the given line counts."""
    assert server.events is not None
    return read_jsonl(server.records, calls), read_jsonl(server.events, events)


def own_marks(server: EchoServer) -> tuple[int, int]:
    assert server.events is not None
    return len(read_jsonl(server.records)), len(read_jsonl(server.events))


@contextmanager
def tripwire() -> Generator[tuple[int, socket.socket], None, None]:
    """A listening socket on 127.0.0.1 that accepts nothing: a connection attempt stays in its backlog."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        yield listener.getsockname()[1], listener


def connected(listener: socket.socket) -> bool:
    """Whether anything connected to ``listener`` (a completed handshake waits to be accepted)."""
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.mark.usefixtures("clean_store")
async def test_each_user_is_offered_only_their_tools(agent_server: AgentServer, alice: Any, bob: Any) -> None:
    mark = await agent_server.settle()
    alice_tools = await offered_tools(alice)
    bob_mark = await agent_server.settle()
    bob_tools = await offered_tools(bob)
    await agent_server.settle()

    assert alice_tools == ALICE_TOOLS
    assert {"local_crash", "remote_whoami", "remote_crash"} <= alice_tools
    assert bob_tools == BOB_TOOLS
    assert "local_crash" not in bob_tools
    assert not [t for t in bob_tools if t.startswith("remote_")]
    # Listing is not calling; and bob's run did not even connect to the remote server.
    assert agent_server.records.since(mark).calls == []
    assert len(agent_server.records.since(mark).connections(agent_server.http_echo_pid)) == 1
    assert agent_server.records.since(bob_mark).connections(agent_server.http_echo_pid) == []


@pytest.mark.usefixtures("clean_store")
async def test_bob_asking_for_alices_tools_gets_no_call(
    agent_server: AgentServer, alice: Any, bob: Any
) -> None:
    mark = await agent_server.settle()
    bob_thread, bob_run, bob_state = await run_wait(
        bob, "call remote_whoami {} then local_crash {} then local_whoami {}"
    )
    after_bob = await agent_server.settle()
    bob_activity = agent_server.records.since(mark)

    assert tool_calls(bob_state) == ["local_whoami"]
    [call] = bob_activity.calls  # neither remote_whoami nor local_crash reached a server
    assert call["tool"] == "whoami"
    assert identity(call) | {"assistant_id": None} == {
        "user_id": "bob",
        "thread_id": bob_thread,
        "run_id": bob_run,
        "assistant_id": None,
        "graph_id": GRAPH_ID,
    }
    assert call["verified"] == {"user_id": "bob", "thread_id": bob_thread, "run_id": bob_run}
    [start] = bob_activity.starts("stdio")
    assert call["pid"] == start["pid"]
    assert bob_activity.connections(agent_server.http_echo_pid) == []
    assert message_text(bob_state["messages"]).startswith("local_whoami returned: ")

    # The same request from alice reaches both servers, the crash included.
    alice_thread, alice_run, alice_state = await run_wait(alice, "call remote_whoami {} then local_crash {}")
    await agent_server.settle()
    alice_activity = agent_server.records.since(after_bob)
    assert tool_calls(alice_state) == ["remote_whoami", "local_crash"]
    calls = {c["tool"]: c for c in alice_activity.calls}
    assert set(calls) == {"whoami", "crash"}
    assert calls["whoami"]["pid"] == agent_server.http_echo_pid
    [start] = alice_activity.starts("stdio")
    assert calls["crash"]["pid"] == start["pid"]
    for call in calls.values():
        assert call["verified"] == {"user_id": "alice", "thread_id": alice_thread, "run_id": alice_run}


@pytest.mark.usefixtures("clean_store")
async def test_a_registered_server_loads_for_its_owner_only(
    agent_server: AgentServer, own_server: EchoServer, alice: Any, bob: Any
) -> None:
    registration = {"url": own_server.url, "headers": {"Authorization": f"Bearer {OWN_TOKEN}"}}
    await alice.store.put_item(["mcp_servers"], "mine", registration)

    # Bob can neither read alice's registration nor write into her namespace.
    assert (await bob.store.search_items(["mcp_servers"]))["items"] == []
    assert (await bob.store.search_items(["alice", "mcp_servers"]))["items"] == []
    assert (await bob.store.search_items([]))["items"] == []
    # (The in-memory store may still list bob's own emptied namespaces; never anyone else's.)
    assert all(ns[0] == "bob" for ns in (await bob.store.list_namespaces())["namespaces"])
    assert (await bob.store.list_namespaces(prefix=["alice"]))["namespaces"] == []
    assert await bob.store.get_item(["alice", "mcp_servers"], "mine") is None
    hijack = {"url": own_server.url, "headers": {"Authorization": "Bearer bob-own-token"}}
    await bob.store.put_item(["alice", "mcp_servers"], "mine", hijack)
    assert [i["namespace"] for i in (await bob.store.search_items([]))["items"]] == [
        ["bob", "alice", "mcp_servers"]
    ]
    assert (await alice.store.get_item(["mcp_servers"], "mine"))["value"] == registration

    calls, events = own_marks(own_server)
    assert await offered_tools(alice) == ALICE_TOOLS | OWN_TOOLS
    thread_id, run_id, state = await run_wait(alice, "call whoami {}")
    after_alice = own_marks(own_server)
    [call], alice_events = own_activity(own_server, calls, events)

    assert tool_calls(state) == ["whoami"]
    assert call["tool"] == "whoami"
    assert call["pid"] == own_server.pid
    assert identity(call)["user_id"] == "alice"
    assert (identity(call)["thread_id"], identity(call)["run_id"]) == (thread_id, run_id)
    assert call["verified"] == {"user_id": "alice", "thread_id": thread_id, "run_id": run_id}
    assert call["authorization"] == fingerprint(f"Bearer {OWN_TOKEN}")
    assert call["identity_header"] is True
    [result] = [m for m in state["messages"] if m["type"] == "tool"]
    assert json.loads(result["content"][0]["text"])["authorization"] == call["authorization"]
    assert [e["method"] for e in alice_events].count("tools/call") == 1

    # Bob's runs neither see nor reach alice's server (nor his stray item under "alice").
    assert await offered_tools(bob) == BOB_TOOLS
    _, _, bob_state = await run_wait(bob, "call whoami {}")
    assert tool_calls(bob_state) == []
    assert help_tools(message_text(bob_state["messages"])) == BOB_TOOLS
    assert own_activity(own_server, *after_alice) == ([], [])


@pytest.mark.usefixtures("clean_store")
async def test_a_registered_server_cannot_rename_the_deployments_tools(
    agent_server: AgentServer, own_server: EchoServer, bob: Any
) -> None:
    clashing = {
        "url": own_server.url,
        "prefix": "local",
        "headers": {"Authorization": "Bearer bob-own-token"},
    }
    await bob.store.put_item(["mcp_servers"], "mine", clashing)
    thread_id = (await bob.threads.create())["thread_id"]
    mark = await agent_server.settle()
    with anyio.fail_after(RUN_TIMEOUT):
        state = await bob.runs.wait(
            thread_id, GRAPH_ID, input={"messages": [{"role": "user", "content": SLOW_RUN}]}
        )
    await agent_server.settle()

    # The deployment's slow tool waits for a person's approval, whatever the user registered.
    ran = [(c["tool"], c["pid"]) for c in agent_server.records.since(mark).calls_to("slow")]
    assert ran == [], f"the deployment's slow tool ran without approval, called as {tool_calls(state)}"
    assert state.get("__interrupt__"), "the run did not stop for approval"


@pytest.mark.usefixtures("clean_store")
async def test_disallowed_urls_are_refused_with_their_reason(agent_server: AgentServer, bob: Any) -> None:
    with tripwire() as (port, listener):
        refused = {
            "internal": "https://10.1.2.3/mcp",
            "metadata": "http://169.254.169.254/mcp",
            "metadata-tls": "https://169.254.169.254/latest/mcp",
            "tripwire": f"http://localhost:{port}/mcp",  # not allow-listed: only 127.0.0.1 is
        }
        for name, url in refused.items():
            await bob.store.put_item(["mcp_servers"], name, {"url": url})
        thread_id = (await bob.threads.create())["thread_id"]
        mark = await agent_server.settle()
        parts: list[tuple[str, Any]] = []
        with anyio.fail_after(RUN_TIMEOUT):
            async for part in bob.runs.stream(
                thread_id,
                GRAPH_ID,
                input={"messages": [{"role": "user", "content": "call local_whoami {}"}]},
                stream_mode=["updates", "custom"],
            ):
                parts.append((part.event, part.data))
        await agent_server.settle()
        assert not connected(listener)

    run_id = next(data["run_id"] for event, data in parts if event == "metadata")
    assert (await bob.runs.get(thread_id, run_id))["status"] == "success"
    assert not [data for event, data in parts if event == "error"]
    [skipped] = [data for event, data in parts if event == "custom" and data["type"] == "mcp_servers_skipped"]
    reasons = {s["server"]: s["reason"] for s in skipped["servers"]}
    assert sorted(reasons) == sorted(refused)
    assert "10.1.2.3, a private address" in reasons["internal"]
    assert "uses http://; only https:// is allowed" in reasons["metadata"]
    assert "169.254.169.254, a link-local (cloud metadata) address" in reasons["metadata-tls"]
    assert "uses http://; only https:// is allowed" in reasons["tripwire"]
    assert all("register a public https:// server" in r for r in reasons.values())
    # The run went on with its own tools.
    [call] = agent_server.records.since(mark).calls
    assert (call["tool"], identity(call)["user_id"], identity(call)["run_id"]) == ("whoami", "bob", run_id)
    state = await bob.threads.get_state(thread_id)
    assert message_text(state["values"]["messages"]).startswith("local_whoami returned: ")


async def run_logged(agent_server: AgentServer, run_id: str) -> str:
    """The Agent Server's log, once it has logged the end of the run ``run_id`` (bounded wait)."""

    def ended(log: str) -> bool:
        return any("Background run succeeded" in line and run_id in line for line in log.splitlines())

    with anyio.fail_after(20):
        while True:
            log = agent_server.log.read_text(encoding="utf-8", errors="replace")
            if ended(log):
                return log
            await anyio.sleep(0.05)  # another process's file: poll it


@pytest.mark.usefixtures("clean_store")
async def test_stored_credentials_reach_their_server_and_nowhere_else(
    agent_server: AgentServer, own_server: EchoServer, alice: Any
) -> None:
    await alice.store.put_item(["mcp_credentials"], "remote", {"bearer_token": REMOTE_SECRET})
    registration = {"url": own_server.url, "headers": {"Authorization": f"Bearer {OWN_TOKEN}"}}
    await alice.store.put_item(["mcp_servers"], "mine", registration)
    thread_id = (await alice.threads.create())["thread_id"]
    mark = await agent_server.settle()
    own_calls, _ = own_marks(own_server)
    parts: list[Any] = []
    with anyio.fail_after(RUN_TIMEOUT):
        async for part in alice.runs.stream(
            thread_id,
            GRAPH_ID,
            input={"messages": [{"role": "user", "content": CREDENTIALS_RUN}]},
            stream_mode=ALL_STREAM_MODES,
            stream_subgraphs=True,
        ):
            parts.append([part.event, part.data])
    await agent_server.settle()
    run_id = next(data["run_id"] for event, data in parts if event == "metadata")

    # The credentials reached their servers.
    [remote] = agent_server.records.since(mark).calls_to("whoami")
    assert remote["pid"] == agent_server.http_echo_pid
    assert remote["authorization"] == fingerprint(f"Bearer {REMOTE_SECRET}")
    assert remote["verified"] == {"user_id": "alice", "thread_id": thread_id, "run_id": run_id}
    [own] = read_jsonl(own_server.records, own_calls)
    assert own["authorization"] == fingerprint(f"Bearer {OWN_TOKEN}")
    assert own["verified"] == {"user_id": "alice", "thread_id": thread_id, "run_id": run_id}

    # Every stream mode was served, and the run's outputs hold the fingerprints but never the secrets.
    events = {event.split("|")[0].split("/")[0] for event, _ in parts}
    assert events == {"metadata", *ALL_STREAM_MODES} - {"messages-tuple"}  # its events are "messages"
    log = await run_logged(agent_server, run_id)
    outputs = {
        "stream": json.dumps(parts, default=str),
        "state": json.dumps(await alice.threads.get_state(thread_id), default=str),
        "history": json.dumps(await alice.threads.get_history(thread_id, limit=100), default=str),
        "thread": json.dumps(await alice.threads.get(thread_id), default=str),
        "run": json.dumps(await alice.runs.list(thread_id), default=str),
        "log": log,
    }
    assert remote["authorization"] in outputs["state"]
    assert own["authorization"] in outputs["stream"]
    for secret in (REMOTE_SECRET, OWN_TOKEN):
        leaked = [where for where, text in outputs.items() if secret in text]
        assert leaked == [], f"{secret!r} appears in {leaked}"
