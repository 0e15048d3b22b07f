"""What a serving backend is given and must provide (``mcpbridge.serving.backend``)."""

from __future__ import annotations

import dataclasses

import pytest
from langgraph.graph import START, MessagesState, StateGraph

from mcpbridge.serving import LocalGraphs, RemoteAssistants, ServedGraph
from mcpbridge.serving.backend import Backend, Caller
from mcpbridge.serving.users import ServedUser


def test_a_caller_is_anonymous_by_default_and_immutable() -> None:
    caller = Caller()
    assert caller.user is None and caller.authorization is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        caller.user = ServedUser("mallory")  # pyright: ignore[reportAttributeAccessIssue]


def test_both_backends_satisfy_the_protocol() -> None:
    builder = StateGraph(MessagesState)
    builder.add_node("noop", lambda state: {})  # pyright: ignore[reportUnknownLambdaType, reportUnknownArgumentType]
    builder.add_edge(START, "noop")
    local = LocalGraphs([ServedGraph("noop", builder)])
    backends: list[Backend] = [local, RemoteAssistants("http://127.0.0.1:2024/")]
    assert all(callable(backend.running) for backend in backends)
