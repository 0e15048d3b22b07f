"""The tool-call rules of model providers, and an offline model that records what it is given.

OpenAI and Anthropic refuse a conversation in which an assistant message's tool call is
not answered by exactly one tool message among the tool messages right after it (before
any other user or assistant message), or in which a tool message answers no tool call of
the assistant message it follows. `provider_problems` says what breaks these rules.

`RecordingChatModel` is the offline model that appends each input it gets (the thread
and the messages) to the JSON-lines file ``$MCPBRIDGE_RECORD_MODEL``, so a test can
check what a model in another process (``mcpbridge serve``, ``langgraph dev``) was sent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import anyio
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langgraph.config import get_config

from mcpbridge.testing import OfflineChatModel

MODEL_RECORD_ENV = "MCPBRIDGE_RECORD_MODEL"


def as_record(message: BaseMessage | Mapping[str, Any]) -> dict[str, Any]:
    """What the rules look at in a message (a LangChain message or its dict, as the Agent Server gives it)."""
    data: Mapping[str, Any] = message.model_dump() if isinstance(message, BaseMessage) else message
    calls = cast(Sequence[Mapping[str, Any]], data.get("tool_calls") or [])
    return {
        "type": data["type"],
        "tool_calls": [{"id": call["id"], "name": call["name"]} for call in calls],
        "tool_call_id": data.get("tool_call_id"),
        "status": data.get("status"),
        "content": data.get("content"),
    }


def provider_problems(messages: Sequence[BaseMessage | Mapping[str, Any]]) -> list[str]:
    """Each breach of the providers' tool-call rules in ``messages``; empty when they accept it."""
    problems: list[str] = []
    open_calls: set[str] | None = None  # the calls the tool messages being read must answer
    answered: set[str] = set()
    opened_at = 0
    for index, raw in enumerate(messages):
        message = as_record(raw)
        if message["type"] == "tool":
            call_id = message["tool_call_id"]
            if open_calls is None:
                problems.append(f"message {index}: tool message {call_id} follows no assistant tool call")
            elif call_id not in open_calls:
                problems.append(
                    f"message {index}: tool message {call_id} answers no call of message {opened_at}"
                )
            elif call_id in answered:
                problems.append(f"message {index}: tool call {call_id} is answered twice")
            else:
                answered.add(call_id)
            continue
        if open_calls is not None and open_calls - answered:
            problems.append(
                f"message {index} ({message['type']}): the tool calls {sorted(open_calls - answered)} of "
                f"message {opened_at} have no answer"
            )
        open_calls = None
        if message["type"] == "ai" and message["tool_calls"]:
            open_calls = {call["id"] for call in message["tool_calls"]}
            answered, opened_at = set(), index
    if open_calls is not None and open_calls - answered:
        problems.append(
            f"the end: the tool calls {sorted(open_calls - answered)} of message {opened_at} have no answer"
        )
    return problems


def model_inputs(path: Path, thread_id: str) -> list[list[dict[str, Any]]]:
    """The inputs `RecordingChatModel` recorded for ``thread_id``, in order."""
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [entry["messages"] for entry in entries if entry["thread_id"] == thread_id]


class RecordingChatModel(OfflineChatModel):
    """`OfflineChatModel` appending each input to ``$MCPBRIDGE_RECORD_MODEL`` (when set) before answering."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        _record(_entry(messages))
        return super()._generate(messages, stop, run_manager, **kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Off the event loop: the Agent Server refuses blocking calls on it.
        await anyio.to_thread.run_sync(_record, _entry(messages))
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


def _entry(messages: Sequence[BaseMessage]) -> dict[str, Any]:
    try:
        thread_id = (get_config().get("configurable") or {}).get("thread_id")
    except RuntimeError:  # called outside a graph
        thread_id = None
    return {
        "thread_id": None if thread_id is None else str(thread_id),
        "messages": [as_record(m) for m in messages],
    }


def _record(entry: dict[str, Any]) -> None:
    path = os.environ.get(MODEL_RECORD_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry, default=str) + "\n")
