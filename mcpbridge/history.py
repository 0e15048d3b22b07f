"""Thread histories that model providers accept after a cancelled or failed tool call.

A run cancelled or failed during its tool calls leaves an AI message whose tool
calls have no `ToolMessage`; OpenAI and Anthropic refuse such a conversation, so
the thread's next run would fail at its first model call. `repair_tool_calls`
mends a history: every tool call answered right after its AI message, and no
answer without a call. `BridgeMiddleware` applies it before each model call.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, RemoveMessage, ToolMessage
from langgraph.graph.message import REMOVE_ALL_MESSAGES

__all__ = ["UNFINISHED_CALL", "repair_tool_calls", "repaired_messages_update"]

UNFINISHED_CALL = (
    "The call to {name} was cancelled or did not finish: the run stopped before the tool "
    "returned, so it has no result."
)
"""The text of the error `ToolMessage` that answers a tool call left without a result."""


def repair_tool_calls(messages: Sequence[BaseMessage]) -> list[BaseMessage] | None:
    """``messages`` as a model provider accepts them, or ``None`` when they already are.

    - A tool call without a `ToolMessage` gets one, right after its AI message, with
      ``status="error"`` and `UNFINISHED_CALL` as its text.
    - A `ToolMessage` that comes later than the next other message is moved back to its call.
    - A `ToolMessage` that answers no earlier tool call, or one already answered, is dropped.

    Args:
        messages: A conversation, such as ``state["messages"]`` of a thread.

    Example:
        ```python
        async def call_model(state: MessagesState) -> dict[str, Any]:
            messages = repair_tool_calls(state["messages"]) or state["messages"]
            return {"messages": [await model.ainvoke(messages)]}
        ```
    """
    answers = _answers(messages)
    repaired: list[BaseMessage] = []
    for index, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            continue  # placed after its call, or an orphan
        repaired.append(message)
        if isinstance(message, AIMessage):
            found = answers.get(index, {})
            for position in sorted(found.values()):
                repaired.append(messages[position])
            answered = set(found)
            for call in message.tool_calls:
                if call["id"] and call["id"] not in answered:
                    answered.add(call["id"])
                    repaired.append(_unfinished(call["id"], call["name"]))
    if len(repaired) == len(messages) and all(a is b for a, b in zip(repaired, messages, strict=True)):
        return None
    return repaired


def repaired_messages_update(messages: Sequence[BaseMessage]) -> dict[str, Any] | None:
    """The state update that replaces ``messages`` with their repair (`repair_tool_calls`), if any.

    For a graph node before the model (``add_messages`` channels), so the thread keeps the
    repaired history; ``None`` when there is nothing to repair.
    """
    repaired = repair_tool_calls(messages)
    if repaired is None:
        return None
    replaced: list[AnyMessage] = [RemoveMessage(id=REMOVE_ALL_MESSAGES), *repaired]  # pyright: ignore[reportAssignmentType]
    return {"messages": replaced}


def _answers(messages: Sequence[BaseMessage]) -> dict[int, dict[str, int]]:
    """For each AI message (by index), the position of the first later answer to each of its calls."""
    positions: dict[str, deque[int]] = defaultdict(deque)
    for position, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            positions[message.tool_call_id].append(position)
    found: dict[int, dict[str, int]] = {}
    for index, message in enumerate(messages):
        if not isinstance(message, AIMessage) or not message.tool_calls:
            continue
        mine: dict[str, int] = {}
        for call in message.tool_calls:
            call_id = call["id"]
            queue = positions.get(call_id or "")
            if not call_id or call_id in mine or not queue:
                continue
            while queue and queue[0] < index:  # an answer before its call answers nothing
                queue.popleft()
            if queue:
                mine[call_id] = queue.popleft()
        found[index] = mine
    return found


def _unfinished(call_id: str, name: str) -> ToolMessage:
    return ToolMessage(
        content=UNFINISHED_CALL.format(name=name), tool_call_id=call_id, name=name, status="error"
    )
