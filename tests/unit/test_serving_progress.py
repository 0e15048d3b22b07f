"""Progress notifications of served calls (``mcpbridge.serving.progress``)."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from mcpbridge.serving.progress import ProgressReporter, describe_custom, describe_update

pytestmark = pytest.mark.anyio


def test_updates_name_the_tools_a_step_called_or_ran() -> None:
    called = AIMessage(content="", tool_calls=[{"name": "add", "args": {}, "id": "1"}])
    ran = ToolMessage(content="3", name="add", tool_call_id="1")
    failed = ToolMessage(content="x", name="div", tool_call_id="2", status="error")
    assert describe_update({"model": {"messages": [called]}}) == ["model: calls add"]
    assert describe_update({"tools": {"messages": [ran, failed]}}) == ["tools: add returned, div failed"]
    assert describe_update({"tools": {"messages": [{"type": "tool", "name": "add"}]}}) == [
        "tools: add returned"
    ]
    assert describe_update({"plan": {"step": 1}}) == ["plan done"]
    assert describe_update({"BridgeMiddleware.before_model": None, "plan": {}}) == ["plan done"]
    assert describe_update({"__interrupt__": ()}) == ["the run waits for input"]
    assert describe_update("not a mapping") == []


def test_custom_events() -> None:
    assert describe_custom("half way") == "half way"
    assert describe_custom("") is None and describe_custom(None) is None
    assert describe_custom({"message": "indexing"}) == "indexing"
    assert describe_custom({"type": "mcp_progress", "tool": "count", "progress": 1.0}) == "count: 1"
    assert describe_custom({"type": "mcp_progress", "tool": "t", "progress": 1, "message": "m"}) == "t: m (1)"


async def test_events_are_numbered_and_a_failing_sink_stops_them() -> None:
    sent: list[tuple[float, float | None, str | None]] = []

    async def sink(progress: float, total: float | None, message: str | None) -> None:
        sent.append((progress, total, message))
        if len(sent) == 2:
            raise ConnectionError("the client went away")

    reporter = ProgressReporter(sink)
    await reporter.update({"a": {}, "b": {}})
    await reporter.custom("after the failure")
    await reporter.report(None)
    assert sent == [(1.0, None, "a done"), (2.0, None, "b done")]  # the run went on, unreported


async def test_without_a_sink_nothing_is_sent() -> None:
    reporter = ProgressReporter(None)
    await reporter.report("x")
    assert reporter.count == 0


async def test_a_reporter_is_active_while_its_sink_listens() -> None:
    async def gone(progress: float, total: float | None, message: str | None) -> None:
        raise ConnectionError("the client went away")

    reporter = ProgressReporter(gone)
    assert reporter.active and not ProgressReporter(None).active
    await reporter.report("x")
    assert not reporter.active
