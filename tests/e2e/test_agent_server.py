"""The example agent on the real Agent Server: MCP connections for runs only, identity, progress, resume.

Every assertion about MCP traffic comes from the example servers' own records
(tool calls with their ``_meta``, process starts, inbound requests) and from
/proc: a read that connected anywhere, or a run that connected twice, shows up
there whatever the client was told.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from langgraph_sdk.errors import NotFoundError, PermissionDeniedError

from tests.e2e.agent_server import GRAPH_ID, AgentServer, alive, identity, message_text
from tests.support.history import model_inputs, provider_problems

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(300)]

NODES = {
    "__start__",
    "BridgeMiddleware.before_model",
    "model",
    "tools",
    "HumanInTheLoopMiddleware.after_model",
    "__end__",
}
RUN_TIMEOUT = 60.0
"""Seconds one run may take: a hung run fails its test, saying so."""
REQUEST_TIMEOUT = 20.0
"""Seconds a request that runs nothing may take."""


async def run_wait(
    client: Any, thread_id: str | None, content: str, **kwargs: Any
) -> tuple[str, dict[str, Any]]:
    """Run the agent to the end (or an interrupt); return the run id and the final state."""
    created: list[Any] = []
    if content:
        kwargs["input"] = {"messages": [{"role": "user", "content": content}]}
    with anyio.fail_after(RUN_TIMEOUT, reason=f"the run ({content!r}) did not finish in {RUN_TIMEOUT:g} s"):
        state = await client.runs.wait(thread_id, GRAPH_ID, on_run_created=created.append, **kwargs)
    assert len(created) == 1
    return created[0]["run_id"], state


def assert_one_connection_set(server: AgentServer, activity: Any, *, remote: bool = True) -> int:
    """The run started exactly one stdio server, connected to it once, and to the HTTP server once (or not).

    Returns the stdio server's pid.
    """
    starts = activity.starts("stdio")
    assert len(starts) == 1, f"expected one stdio server process for the run, got {starts}"
    stdio_pid = starts[0]["pid"]
    assert len(activity.connections(stdio_pid)) == 1
    assert len(activity.connections(server.http_echo_pid)) == (1 if remote else 0)
    assert len(activity.connections()) == (2 if remote else 1)
    return stdio_pid


async def test_bearer_tokens_are_required(agent_server: AgentServer) -> None:
    async with httpx.AsyncClient(base_url=agent_server.url, timeout=30) as http:
        assert (await http.get("/ok")).status_code == 200
        for headers in (
            {},
            {"Authorization": "Bearer nobody-token"},
            {"Authorization": "Basic alice-token"},
            {"Authorization": "alice-token"},
            # The Studio shortcut of `langgraph dev` is disabled in langgraph.json.
            {"x-auth-scheme": "langsmith"},
        ):
            response = await http.post("/threads/search", json={}, headers=headers)
            assert response.status_code == 401, (headers, response.text)
            response = await http.get(f"/assistants/{GRAPH_ID}/graph", headers=headers)
            assert response.status_code == 401, (headers, response.text)
        ok = await http.post("/threads/search", json={}, headers={"Authorization": "Bearer alice-token"})
        assert ok.status_code == 200


async def test_crons_are_refused(alice: Any) -> None:
    with pytest.raises(PermissionDeniedError):
        await alice.crons.create(GRAPH_ID, schedule="0 0 * * *", input={"messages": []})
    with pytest.raises(PermissionDeniedError):
        await alice.crons.search()


async def test_reads_updates_and_schemas_connect_to_nothing(agent_server: AgentServer, alice: Any) -> None:
    thread = await alice.threads.create()
    thread_id = thread["thread_id"]
    assert thread["metadata"]["owner"] == "alice"
    # A run first, so the reads below have checkpoints, tasks and messages to format.
    await run_wait(alice, thread_id, 'call local_add {"a": 2, "b": 3}')
    mark = await agent_server.settle()
    assistant = (await alice.assistants.search(graph_id=GRAPH_ID))[0]

    graphs = [
        await alice.assistants.get_graph(GRAPH_ID),
        await alice.assistants.get_graph(GRAPH_ID, xray=True),
        await alice.assistants.get_graph(assistant["assistant_id"]),
    ]
    schemas = await alice.assistants.get_schemas(assistant["assistant_id"])
    await alice.assistants.get_subgraphs(assistant["assistant_id"])
    fresh = await alice.threads.create()
    await alice.threads.get(thread_id)
    state = await alice.threads.get_state(thread_id)
    history = await alice.threads.get_history(thread_id)
    await alice.threads.get_state(fresh["thread_id"])
    await alice.threads.update_state(
        thread_id, {"messages": [{"role": "ai", "content": "noted"}]}, as_node="model"
    )
    updated = await alice.threads.get_state(thread_id)
    await alice.threads.get_history(thread_id, limit=2)

    activity = agent_server.records.since(mark)
    assert activity.quiet, f"reads and updates reached MCP servers: {activity}"
    assert agent_server.children() == set()
    # The reads really read: the run's messages, its checkpoints, the update and the graph.
    assert message_text(state["values"]["messages"]) == "local_add returned: 5.0"
    assert len(history) >= 4
    assert message_text(updated["values"]["messages"]) == "noted"
    assert graphs == [agent_server.graph_before_runs, agent_server.graph_xray_before_runs, graphs[0]]
    assert {node["id"] for node in graphs[0]["nodes"]} == NODES
    assert schemas["input_schema"] == agent_server.schemas_before_runs["input_schema"]
    assert "messages" in schemas["input_schema"]["properties"]


async def test_run_wait_calls_the_stdio_server_with_the_runs_identity(
    agent_server: AgentServer, alice: Any
) -> None:
    thread_id = (await alice.threads.create())["thread_id"]
    mark = await agent_server.settle()
    run_id, state = await run_wait(alice, thread_id, "call local_whoami {}")
    await agent_server.settle()
    activity = agent_server.records.since(mark)

    [call] = activity.calls
    assert call["tool"] == "whoami"
    [assistant] = await alice.assistants.search(graph_id=GRAPH_ID)
    assert identity(call) == {
        "thread_id": thread_id,
        "run_id": run_id,
        "user_id": "alice",
        "assistant_id": assistant["assistant_id"],
        "graph_id": GRAPH_ID,
    }
    stdio_pid = assert_one_connection_set(agent_server, activity)
    assert call["pid"] == stdio_pid
    assert not activity.calls_to("count")
    assert not alive(stdio_pid)
    # What the model was told is what the server recorded.
    tool_message = next(m for m in state["messages"] if m["type"] == "tool")
    assert json.loads(tool_message["content"][0]["text"])["meta"] == call["meta"]
    assert message_text(state["messages"]).startswith("local_whoami returned: ")


@pytest.mark.parametrize("server", ["remote", "local"])
async def test_run_stream_reports_progress(agent_server: AgentServer, alice: Any, server: str) -> None:
    thread_id = (await alice.threads.create())["thread_id"]
    mark = await agent_server.settle()
    parts: list[tuple[str, Any]] = []
    with anyio.fail_after(RUN_TIMEOUT, reason=f"the streamed run did not finish in {RUN_TIMEOUT:g} s"):
        async for part in alice.runs.stream(
            thread_id,
            GRAPH_ID,
            input={"messages": [{"role": "user", "content": f'call {server}_count {{"to": 3}}'}]},
            stream_mode=["updates", "custom"],
        ):
            parts.append((part.event, part.data))
    await agent_server.settle()
    activity = agent_server.records.since(mark)

    run_id = next(data["run_id"] for event, data in parts if event == "metadata")
    tool_call = next(
        data["model"]["messages"][-1]["tool_calls"][0]
        for event, data in parts
        if event == "updates" and data.get("model")
    )
    progress = [data for event, data in parts if event == "custom" and data.get("type") == "mcp_progress"]
    assert progress == [
        {
            "type": "mcp_progress",
            "server": server,
            "tool": f"{server}_count",
            "tool_call_id": tool_call["id"],
            "progress": float(step),
            "total": 3.0,
            "message": f"step {step} of 3",
        }
        for step in (1, 2, 3)
    ]
    [call] = activity.calls
    assert (call["tool"], call["arguments"]) == ("count", {"to": 3})
    stdio_pid = assert_one_connection_set(agent_server, activity)
    assert call["pid"] == (agent_server.http_echo_pid if server == "remote" else stdio_pid)
    assert identity(call)["thread_id"] == thread_id
    assert identity(call)["run_id"] == run_id
    assert identity(call)["user_id"] == "alice"
    # The progress streamed while the tool ran: before the tools node's update.
    first_progress = next(i for i, (event, _) in enumerate(parts) if event == "custom")
    tools_update = next(i for i, (event, data) in enumerate(parts) if event == "updates" and "tools" in data)
    assert first_progress < tools_update


async def test_each_user_has_their_identity_permissions_and_threads(
    agent_server: AgentServer, alice: Any, bob: Any
) -> None:
    alice_thread = (await alice.threads.create())["thread_id"]
    bob_thread = (await bob.threads.create())["thread_id"]
    mark = await agent_server.settle()
    alice_run, _ = await run_wait(alice, alice_thread, "call local_whoami {}")
    mark_bob = await agent_server.settle()
    # Bob lacks `mcp:remote`: his runs are not even connected to the HTTP server.
    bob_run, bob_state = await run_wait(bob, bob_thread, "call local_whoami {} then remote_whoami {}")
    await agent_server.settle()

    alice_call, bob_call = agent_server.records.since(mark).calls
    assert identity(alice_call) | {"assistant_id": None} == {
        "thread_id": alice_thread,
        "run_id": alice_run,
        "user_id": "alice",
        "assistant_id": None,
        "graph_id": GRAPH_ID,
    }
    assert (identity(bob_call)["thread_id"], identity(bob_call)["run_id"]) == (bob_thread, bob_run)
    assert identity(bob_call)["user_id"] == "bob"
    assert bob_call["tool"] == "whoami"
    bob_activity = agent_server.records.since(mark_bob)
    assert_one_connection_set(agent_server, bob_activity, remote=False)
    called = [c["name"] for m in bob_state["messages"] if m["type"] == "ai" for c in m["tool_calls"]]
    assert called == ["local_whoami"]

    # Threads belong to whoever created them.
    with anyio.fail_after(REQUEST_TIMEOUT, reason="a read of another user's thread did not answer"):
        with pytest.raises(NotFoundError):
            await bob.threads.get(alice_thread)
        with pytest.raises(NotFoundError):
            await alice.threads.get_state(bob_thread)
        bob_sees = {t["thread_id"] for t in await bob.threads.search(limit=100)}
    assert bob_thread in bob_sees
    assert alice_thread not in bob_sees


async def test_graph_is_the_same_before_and_after_runs(agent_server: AgentServer, alice: Any) -> None:
    before = agent_server.graph_before_runs
    await run_wait(alice, None, 'call local_add {"a": 1, "b": 1}')  # a stateless run
    for _ in range(2):
        assert await alice.assistants.get_graph(GRAPH_ID) == before
        assert await alice.assistants.get_graph(GRAPH_ID, xray=True) == agent_server.graph_xray_before_runs
    edges = {(e["source"], e["target"], bool(e.get("conditional"))) for e in before["edges"]}
    assert ("model", "HumanInTheLoopMiddleware.after_model", False) in edges
    assert ("HumanInTheLoopMiddleware.after_model", "tools", True) in edges
    assert ("tools", "BridgeMiddleware.before_model", True) in edges  # the history is repaired each time
    assert ("BridgeMiddleware.before_model", "model", False) in edges


async def test_the_curl_example_runs(agent_server: AgentServer) -> None:
    payload = {
        "assistant_id": GRAPH_ID,
        "input": {"messages": [{"role": "user", "content": "call local_whoami {}"}]},
    }
    mark = await agent_server.settle()
    async with httpx.AsyncClient(base_url=agent_server.url, timeout=60) as http:
        response = await http.post("/runs/wait", json=payload, headers={"Authorization": "Bearer bob-token"})
    assert response.status_code == 200, response.text
    assert message_text(response.json()["messages"]).startswith("local_whoami returned: ")
    await agent_server.settle()
    [call] = agent_server.records.since(mark).calls
    assert identity(call)["user_id"] == "bob"


async def test_an_interrupted_run_resumes_on_new_connections(agent_server: AgentServer, alice: Any) -> None:
    thread_id = (await alice.threads.create())["thread_id"]
    mark = await agent_server.settle()
    first_run, state = await run_wait(alice, thread_id, 'call local_slow {"seconds": 0.1}')
    after_interrupt = await agent_server.settle()

    [interrupt] = state["__interrupt__"]
    [request] = interrupt["value"]["action_requests"]
    assert (request["name"], request["args"]) == ("local_slow", {"seconds": 0.1})
    paused = agent_server.records.since(mark)
    assert paused.calls == []  # the tool waits for approval
    first_pid = assert_one_connection_set(agent_server, paused)
    snapshot = await alice.threads.get_state(thread_id)
    assert snapshot["next"] == ["HumanInTheLoopMiddleware.after_model"]
    assert [i["id"] for i in snapshot["interrupts"]] == [interrupt["id"]]

    second_run, final = await run_wait(
        alice, thread_id, "", command={"resume": {"decisions": [{"type": "approve"}]}}
    )
    await agent_server.settle()
    resumed = agent_server.records.since(after_interrupt)

    assert second_run != first_run
    [call] = resumed.calls
    assert call["tool"] == "slow"
    assert call["arguments"] == {"seconds": 0.1}
    assert identity(call)["run_id"] == second_run
    assert identity(call)["thread_id"] == thread_id
    second_pid = assert_one_connection_set(agent_server, resumed)
    assert second_pid != first_pid
    assert call["pid"] == second_pid
    assert message_text(final["messages"]) == "local_slow returned: slept 0.1s"
    assert (await alice.threads.get_state(thread_id))["next"] == []


async def test_cancelling_a_run_mid_call_stops_its_server_and_the_thread_goes_on(
    agent_server: AgentServer, alice: Any
) -> None:
    thread_id = (await alice.threads.create())["thread_id"]
    await run_wait(alice, thread_id, 'call local_slow {"seconds": 60}')  # stops for approval
    mark = await agent_server.settle()
    run = await alice.runs.create(
        thread_id, GRAPH_ID, command={"resume": {"decisions": [{"type": "approve"}]}}
    )
    with anyio.fail_after(30):  # until the tool is running in the run's stdio server
        while not agent_server.records.since(mark).calls:  # noqa: ASYNC110 - another process's file
            await anyio.sleep(0.05)
    [started] = agent_server.records.since(mark).calls
    assert (started["tool"], started["phase"]) == ("slow", "start")
    assert identity(started)["run_id"] == run["run_id"]
    assert alive(started["pid"])

    with anyio.fail_after(RUN_TIMEOUT, reason="the cancelled run did not stop"):
        await alice.runs.cancel(thread_id, run["run_id"], wait=True)
    await agent_server.settle()  # the run's stdio server is gone
    assert not alive(started["pid"])
    # The call was cancelled in the server, not left running.
    assert [c.get("phase") for c in agent_server.records.since(mark).calls] == ["start", "cancelled"]
    assert (await alice.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"

    # The next run on the thread gives its model a history that model providers accept.
    _, final = await run_wait(alice, thread_id, "call local_whoami")
    assert message_text(final["messages"]).startswith("local_whoami returned: ")
    assert agent_server.records.models_path is not None
    first_input = model_inputs(agent_server.records.models_path, thread_id)[-2]
    assert provider_problems(first_input) == []
    unfinished = first_input[-2]  # the answer to the cancelled local_slow, before the new message
    assert (unfinished["type"], unfinished["tool_call_id"], unfinished["status"]) == (
        "tool",
        "call_1",
        "error",
    )
    assert provider_problems(final["messages"]) == []  # the thread keeps the repaired history
