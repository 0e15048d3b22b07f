"""Repairing a thread's history after a cancelled or failed tool call, as model providers need it."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from mcpbridge.factory import BridgeMiddleware
from mcpbridge.history import UNFINISHED_CALL, repair_tool_calls, repaired_messages_update
from mcpbridge.testing import OfflineChatModel
from tests.support.history import provider_problems

pytestmark = pytest.mark.anyio


def ai(*calls: str) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"id": c, "name": f"tool_{c}", "args": {}} for c in calls])


def answer(call_id: str) -> ToolMessage:
    return ToolMessage(content=f"result {call_id}", tool_call_id=call_id)


def shape(messages: list[BaseMessage]) -> list[str]:
    """``human``, ``ai:a,b``, ``tool:a`` (``tool:a!`` for an error), per message."""
    shown: list[str] = []
    for message in messages:
        if isinstance(message, AIMessage) and message.tool_calls:
            shown.append("ai:" + ",".join(str(c["id"]) for c in message.tool_calls))
        elif isinstance(message, ToolMessage):
            shown.append(f"tool:{message.tool_call_id}{'!' if message.status == 'error' else ''}")
        else:
            shown.append(message.type)
    return shown


def test_a_valid_history_needs_no_repair() -> None:
    messages = [
        HumanMessage("hi"),
        ai("a", "b"),
        answer("b"),
        answer("a"),
        AIMessage("done"),
        HumanMessage("x"),
    ]
    assert provider_problems(messages) == []
    assert repair_tool_calls(messages) is None
    assert repaired_messages_update(messages) is None


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        # cancelled during its tool calls, then a new message
        ([HumanMessage("hi"), ai("a"), HumanMessage("again")], ["human", "ai:a", "tool:a!", "human"]),
        # one of two parallel calls finished
        ([ai("a", "b"), answer("b"), HumanMessage("x")], ["ai:a,b", "tool:b", "tool:a!", "human"]),
        # the history ends with the calls
        ([HumanMessage("hi"), ai("a")], ["human", "ai:a", "tool:a!"]),
        # an answer without a call, before any call, and a second answer
        ([answer("z"), ai("a"), answer("a"), answer("a"), answer("q")], ["ai:a", "tool:a"]),
        # an answer that came after another message is moved back to its call
        ([ai("a"), HumanMessage("x"), answer("a")], ["ai:a", "tool:a", "human"]),
        # an answer before its call answers nothing
        ([answer("a"), ai("a"), HumanMessage("x")], ["ai:a", "tool:a!", "human"]),
    ],
)
def test_every_call_is_answered_right_after_it_and_no_answer_is_orphaned(
    messages: list[BaseMessage], expected: list[str]
) -> None:
    assert provider_problems(messages)  # what the providers refuse
    repaired = repair_tool_calls(messages)
    assert repaired is not None
    assert shape(repaired) == expected
    assert provider_problems(repaired) == []
    update = repaired_messages_update(messages)
    assert update is not None and update["messages"][1:] == repaired


def test_the_answer_of_an_unfinished_call_says_so() -> None:
    repaired = repair_tool_calls([ai("a"), HumanMessage("x")])
    assert repaired is not None
    made = repaired[1]
    assert isinstance(made, ToolMessage)
    assert (made.tool_call_id, made.name, made.status) == ("a", "tool_a", "error")
    assert made.text == UNFINISHED_CALL.format(name="tool_a")
    assert "cancelled" in made.text


class Recording(OfflineChatModel):
    """The offline model, keeping each input it gets."""

    inputs: list[list[BaseMessage]] = []  # pydantic copies it per instance

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.inputs.append(list(messages))
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


async def _cancel_mid_call_then_continue(middleware: list[Any]) -> tuple[Recording, dict[str, Any]]:
    """Run an agent until its tool runs, cancel the run there, then run again on the thread."""
    started = anyio.Event()

    @tool
    async def wait() -> str:
        """Wait for ever."""
        started.set()
        await anyio.sleep_forever()
        return "never"

    model = Recording(inputs=[])
    agent: Any = create_agent(model, tools=[wait], middleware=middleware, checkpointer=InMemorySaver())
    config: dict[str, Any] = {"configurable": {"thread_id": "t"}}
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:

            async def cancel_once_started() -> None:
                await started.wait()
                group.cancel_scope.cancel()

            group.start_soon(cancel_once_started)
            await agent.ainvoke({"messages": [("user", "call wait")]}, config)
        result = await agent.ainvoke({"messages": [("user", "hello again")]}, config)
    return model, result


async def test_an_agent_with_the_middleware_sends_a_valid_history_after_a_cancelled_call() -> None:
    model, result = await _cancel_mid_call_then_continue([BridgeMiddleware()])
    first, second = model.inputs
    assert shape(first) == ["human"]
    assert shape(second) == ["human", "ai:call_1", "tool:call_1!", "human"]
    assert provider_problems(second) == []
    assert provider_problems(result["messages"]) == []  # the thread keeps the repaired history
    assert result["messages"][2].text == UNFINISHED_CALL.format(name="wait")


async def test_without_the_repair_the_next_input_is_one_providers_refuse() -> None:
    model, _ = await _cancel_mid_call_then_continue([])
    assert provider_problems(model.inputs[-1])
