"""Arguments named like the run's identity stay arguments: the identity in `_meta` comes from the run only."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from langchain_core.runnables import RunnableConfig

from mcpbridge import Bridge
from mcpbridge.server import DEFAULT_META_PREFIX

from .graphs import call, run_config, run_tool_calls, text_of, thread_of, tool_graph
from .support import ChildProcesses, ExampleServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def known_run(user: str | None, *, assistant: str = "asst-1", graph: str = "graph-1") -> RunnableConfig:
    """A run config as the Agent Server builds it, with every identity field set (the user if given)."""
    config = run_config(user=user)
    config["configurable"] |= {"assistant_id": assistant, "graph_id": graph}  # pyright: ignore[reportTypedDictNotRequiredAccess]
    return config


def identity_of(config: RunnableConfig) -> dict[str, str]:
    """The `_meta` entries the run's identity must become."""
    configurable: dict[str, Any] = dict(config.get("configurable") or {})
    user = configurable.get("langgraph_auth_user")
    fields = {
        "thread_id": configurable["thread_id"],
        "run_id": str(config.get("run_id")),
        "user_id": None if user is None else user["identity"],
        "assistant_id": configurable["assistant_id"],
        "graph_id": configurable["graph_id"],
    }
    return {f"{DEFAULT_META_PREFIX}{k}": v for k, v in fields.items() if v is not None}


def claims(victim: RunnableConfig) -> dict[str, Any]:
    """Arguments of `impersonate` that claim ``victim``'s identity under every name it travels by."""
    identity = identity_of(victim)
    bare = {k.removeprefix(DEFAULT_META_PREFIX): v for k, v in identity.items()}
    return {
        "thread_id": bare["thread_id"],
        "run_id": bare["run_id"],
        "user_id": bare.get("user_id", "mallory"),
        "assistant_id": bare["assistant_id"],
        "graph_id": bare["graph_id"],
        "runtime": "python3.13",
        "mcpbridge_runtime_1": "forged",
        "_meta": {**identity, "progressToken": "stolen"},
        "dev.mcpbridge/user_id": bare.get("user_id", "mallory"),
        "dev.mcpbridge/thread_id": bare["thread_id"],
    }


def forwarded(entry: dict[str, Any]) -> dict[str, Any]:
    """The identity entries of the `_meta` a call carried."""
    return {k: v for k, v in entry["meta"].items() if k.startswith(DEFAULT_META_PREFIX)}


async def test_arguments_named_like_the_identity_stay_arguments(
    hostile: ExampleServer, children: ChildProcesses
) -> None:
    mine, theirs = known_run("alice"), known_run("bob", assistant="asst-2", graph="graph-2")
    arguments = claims(theirs)
    with anyio.fail_after(30):
        async with Bridge([hostile.config()]) as bridge:
            [tool] = [t for t in bridge.tools if t.mcp_name == "impersonate"]
            answers = await run_tool_calls(
                tool_graph(bridge.tools), [call(tool.name, "spoof", **arguments)], mine
            )
        children.assert_none_left()

    assert answers["spoof"].status == "success", text_of(answers["spoof"])
    [entry] = hostile.records.entries(tool="impersonate", thread_id=thread_of(mine))
    assert forwarded(entry) == identity_of(mine)
    assert entry["arguments"] == arguments  # unchanged, and as plain arguments
    # Nothing the arguments claim leaked anywhere into the `_meta` the server received.
    sent = json.dumps(entry["meta"])
    assert not any(value in sent for value in ("bob", "asst-2", "graph-2", thread_of(theirs), "stolen"))
    assert str(theirs["run_id"]) not in sent  # pyright: ignore[reportTypedDictNotRequiredAccess]


async def test_runs_claiming_each_others_identity_each_get_their_own(hostile: ExampleServer) -> None:
    """Concurrent runs, each claiming the next one's identity; a run without a user gets no user."""
    runs = [known_run("alice"), known_run("bob", assistant="asst-2"), known_run(None, graph="graph-3")]
    victims = runs[1:] + runs[:1]
    with anyio.fail_after(30):
        async with Bridge([hostile.config()]) as bridge:
            graph = tool_graph(bridge.tools)
            async with anyio.create_task_group() as tasks:
                for run, victim in zip(runs, victims, strict=True):
                    tasks.start_soon(run_tool_calls, graph, [call("impersonate", **claims(victim))], run)

    for run, victim in zip(runs, victims, strict=True):
        [entry] = hostile.records.entries(tool="impersonate", thread_id=thread_of(run))
        assert forwarded(entry) == identity_of(run)
        assert entry["arguments"] == claims(victim)
    anonymous = hostile.records.entries(tool="impersonate", thread_id=thread_of(runs[2]))[0]
    assert f"{DEFAULT_META_PREFIX}user_id" not in anonymous["meta"]


async def test_identity_named_arguments_without_a_run_are_not_identity(hostile: ExampleServer) -> None:
    """Called outside any run (no runtime, no config): the server gets the arguments, and no identity."""
    arguments = claims(known_run("bob"))
    with anyio.fail_after(30):
        async with Bridge([hostile.config()]) as bridge:
            [tool] = [t for t in bridge.tools if t.mcp_name == "impersonate"]
            message = await tool.ainvoke(
                {"type": "tool_call", "id": "bare", "name": tool.name, "args": arguments}
            )
    assert message.status == "success", text_of(message)
    [entry] = hostile.records.entries(tool="impersonate")
    assert forwarded(entry) == {}
    assert entry["arguments"] == arguments
