"""A run's stream as MCP progress notifications.

Every ``updates`` chunk (a node finished) and every ``custom`` event (among them
the ``mcp_progress`` events of the agent's own MCP tools) becomes one
``notifications/progress`` with a readable message. Notifications go out only
when the client sent a progress token; otherwise reporting is free.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

from langchain_core.messages import AIMessage, ToolMessage

from mcpbridge.events import PROGRESS_EVENT, SKIPPED_EVENT
from mcpbridge.serving.interface import summarize

__all__ = ["ProgressReporter", "ProgressSink", "describe_custom", "describe_update"]

logger = logging.getLogger("mcpbridge")


class ProgressSink(Protocol):
    """Sends one progress notification for the call (the MCP session's ``report_progress``)."""

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        """Send ``progress`` (increasing), ``total`` (if known) and a message."""
        ...


class ProgressReporter:
    """Numbers a call's events 1, 2, 3... and sends each as a progress notification."""

    def __init__(self, sink: ProgressSink | None) -> None:
        self._sink = sink
        self.count = 0

    @property
    def active(self) -> bool:
        """Whether anyone listens: without a sink, a run need not stream what only progress reports."""
        return self._sink is not None

    async def report(self, message: str | None) -> None:
        """Send one event; a client that stopped listening gets no more (the run goes on)."""
        if self._sink is None or message is None:
            return
        self.count += 1
        try:
            await self._sink(float(self.count), None, message)
        except Exception as exc:  # the notification is a courtesy: never fail the run for it
            logger.debug("stopped sending progress: %s", exc)
            self._sink = None

    async def update(self, chunk: Any) -> None:
        """Report an ``updates`` chunk: one notification per node that finished."""
        if self._sink is None:
            return
        for line in describe_update(chunk):
            await self.report(line)

    async def custom(self, chunk: Any) -> None:
        """Report a ``custom`` stream event."""
        await self.report(describe_custom(chunk))


def describe_update(chunk: Any) -> list[str]:
    """One line per node that updated the state in an ``updates`` chunk, naming the tools it called or ran."""
    if not isinstance(chunk, Mapping):
        return []
    lines: list[str] = []
    for node, update in cast(Mapping[str, Any], chunk).items():
        if node == "__interrupt__":
            lines.append("the run waits for input")
            continue
        if update is None:  # a node that changed nothing, such as a middleware hook with nothing to do
            continue
        detail = _describe_messages(update)
        lines.append(f"{node}: {detail}" if detail else f"{node} done")
    return lines


def _describe_messages(update: Any) -> str:
    messages: Any = cast(Mapping[str, Any], update).get("messages") if isinstance(update, Mapping) else None
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        return ""
    calls: list[str] = []
    results: list[str] = []
    for message in cast(Sequence[Any], messages):
        if isinstance(message, AIMessage):
            calls.extend(call["name"] for call in message.tool_calls)
        elif isinstance(message, ToolMessage):
            results.append(f"{message.name} {'failed' if message.status == 'error' else 'returned'}")
        elif isinstance(message, Mapping):
            item = cast(Mapping[str, Any], message)
            if item.get("type") == "ai":
                raw: Any = item.get("tool_calls") or []
                calls.extend(str(cast(Mapping[str, Any], c).get("name")) for c in cast(Sequence[Any], raw))
            elif item.get("type") == "tool":
                verb = "failed" if item.get("status") == "error" else "returned"
                results.append(f"{item.get('name')} {verb}")
    if calls:
        return "calls " + ", ".join(calls)
    return ", ".join(results)


def describe_custom(chunk: Any) -> str | None:
    """A line for a ``custom`` stream event (``None`` for an empty one)."""
    if isinstance(chunk, str):
        return chunk or None
    if not isinstance(chunk, Mapping):
        return summarize(chunk) if chunk is not None else None
    event = cast(Mapping[str, Any], chunk)
    kind = event.get("type")
    if kind == PROGRESS_EVENT:
        step = _number(event.get("progress"))
        total = event.get("total")
        if isinstance(total, int | float):
            step += f"/{_number(total)}"
        message = event.get("message")
        return f"{event.get('tool')}: {message} ({step})" if message else f"{event.get('tool')}: {step}"
    if kind == SKIPPED_EVENT:
        servers: Any = event.get("servers") or []
        names = ", ".join(str(cast(Mapping[str, Any], s).get("server")) for s in cast(Sequence[Any], servers))
        return f"going on without optional MCP servers: {names}"
    message = event.get("message")
    if isinstance(message, str) and message:
        return message
    return summarize(event)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)
