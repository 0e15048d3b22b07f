"""OfflineChatModel: real tool calls through create_agent, deterministic answers; load_chat_model."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableBinding
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

import mcpbridge.testing._model as models
from mcpbridge.testing import MODEL_ENV, OfflineChatModel, load_chat_model

calls: list[tuple[str, dict[str, Any]]] = []


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    calls.append(("add", {"a": a, "b": b}))
    return a + b


@tool
def whoami() -> str:
    """Say who the user is."""
    calls.append(("whoami", {}))
    return "alice"


@tool
def shout(text: str) -> str:
    """Shout text back."""
    calls.append(("shout", {"text": text}))
    return text.upper()


@pytest.fixture(autouse=True)
def _reset_calls():
    calls.clear()


def _tool_calls(messages: list[Any]) -> list[list[Any]]:
    return [list(m.tool_calls) for m in messages if isinstance(m, AIMessage) and m.tool_calls]


def test_bind_tools_returns_a_runnable_that_knows_the_tools():
    bound = OfflineChatModel().bind_tools([add, whoami], tool_choice="auto")
    assert isinstance(bound, RunnableBinding)
    tools = bound.kwargs["tools"]
    assert [t["function"]["name"] for t in tools] == ["add", "whoami"]
    parameters = tools[0]["function"]["parameters"]
    assert parameters["properties"] == {"a": {"type": "integer"}, "b": {"type": "integer"}}
    assert parameters["required"] == ["a", "b"]
    assert tools[0]["function"]["description"] == "Add two numbers."
    assert bound.kwargs["tool_choice"] == "auto"


def test_agent_calls_the_named_tool_and_answers():
    agent = create_agent(OfflineChatModel(), tools=[add, whoami])
    result = agent.invoke({"messages": [HumanMessage('please call add with {"a": 1, "b": 2}')]})
    messages = result["messages"]
    assert calls == [("add", {"a": 1, "b": 2})]
    assert _tool_calls(messages) == [
        [{"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1", "type": "tool_call"}]
    ]
    assert isinstance(messages[2], ToolMessage)
    assert isinstance(messages[-1], AIMessage)
    assert messages[-1].text == "add returned: 3"
    assert not messages[-1].tool_calls


def test_agent_works_async():
    agent = create_agent(OfflineChatModel(), tools=[add])

    async def run() -> dict[str, Any]:
        return await agent.ainvoke({"messages": [HumanMessage('add {"a": 40, "b": 2}')]})

    result = anyio.run(run)
    assert calls == [("add", {"a": 40, "b": 2})]
    assert result["messages"][-1].text == "add returned: 42"


def test_several_named_tools_are_called_in_parallel_in_mention_order():
    agent = create_agent(OfflineChatModel(), tools=[add, whoami, shout])
    text = 'first whoami, then shout with {"text": "add"} and add with {"a": 2, "b": 3}; whoami again'
    result = agent.invoke({"messages": [HumanMessage(text)]})
    (batch,) = _tool_calls(result["messages"])
    assert [(c["name"], c["args"], c["id"]) for c in batch] == [
        ("whoami", {}, "call_1"),
        ("shout", {"text": "add"}, "call_2"),  # "add" inside the JSON is not a mention
        ("add", {"a": 2, "b": 3}, "call_3"),
    ]
    assert result["messages"][-1].text == "whoami returned: alice\nshout returned: ADD\nadd returned: 5"


def test_arguments_may_come_before_the_tool_name():
    agent = create_agent(OfflineChatModel(), tools=[add])
    result = agent.invoke({"messages": [HumanMessage('with {"a": 5, "b": 6} please use add')]})
    assert calls == [("add", {"a": 5, "b": 6})]
    assert result["messages"][-1].text == "add returned: 11"


def test_names_match_whole_words_only():
    agent = create_agent(OfflineChatModel(), tools=[add])
    result = agent.invoke({"messages": [HumanMessage("call echo_add or adder or add-on, not the tool")]})
    assert calls == []
    assert "add(a, b): Add two numbers." in result["messages"][-1].text


def test_a_failing_tool_is_reported_as_failed():
    agent = create_agent(OfflineChatModel(), tools=[add])
    result = agent.invoke({"messages": [HumanMessage('call add with {"a": 1}')]})
    assert calls == []
    tool_message = result["messages"][2]
    assert isinstance(tool_message, ToolMessage)
    assert tool_message.status == "error"
    answer = result["messages"][-1].text
    assert answer.startswith("add failed: ")
    assert "\n" not in answer


def test_without_a_named_tool_it_explains_what_it_can_do():
    agent = create_agent(OfflineChatModel(), tools=[add, whoami])
    result = agent.invoke({"messages": [HumanMessage("hello, what can you do?")]})
    answer = result["messages"][-1].text
    assert calls == []
    assert "- add(a, b): Add two numbers." in answer
    assert "- whoami(): Say who the user is." in answer
    assert 'call add with {"a": 1, "b": 1}' in answer


def test_without_tools_it_says_so():
    answer = OfflineChatModel().invoke("call add with {}")
    assert isinstance(answer, AIMessage)
    assert not answer.tool_calls
    assert "No tools are bound" in answer.text
    assert MODEL_ENV in answer.text


def test_tool_choice_none_calls_nothing():
    answer = OfflineChatModel().bind_tools([add], tool_choice="none").invoke('call add with {"a": 1, "b": 2}')
    assert isinstance(answer, AIMessage)
    assert not answer.tool_calls


def test_long_results_are_cut():
    model = OfflineChatModel(max_result_chars=10)
    messages = [
        HumanMessage("call shout"),
        AIMessage("", tool_calls=[{"name": "shout", "args": {}, "id": "call_1"}]),
        ToolMessage("x" * 50, tool_call_id="call_1", name="shout"),
    ]
    assert model.invoke(messages).text == "shout returned: xxxxxxxxx…"


def test_json_results_are_answered_on_one_line():
    messages = [
        HumanMessage("call whoami"),
        AIMessage("", tool_calls=[{"name": "whoami", "args": {}, "id": "call_1"}]),
        ToolMessage(
            [{"type": "text", "text": '{\n  "meta": {"k": "v"}\n}'}], tool_call_id="call_1", name="whoami"
        ),
    ]
    assert OfflineChatModel().invoke(messages).text == 'whoami returned: {"meta": {"k": "v"}}'


def test_answers_are_deterministic_and_ids_continue_across_turns():
    def run() -> list[Any]:
        agent = create_agent(OfflineChatModel(), tools=[add, whoami], checkpointer=InMemorySaver())
        config: Any = {"configurable": {"thread_id": "t1"}}
        agent.invoke({"messages": [HumanMessage('call add with {"a": 1, "b": 2}')]}, config)
        result = agent.invoke({"messages": [HumanMessage("now whoami")]}, config)
        return [(type(m).__name__, m.content, getattr(m, "tool_calls", None)) for m in result["messages"]]

    first, second = run(), run()
    assert first == second
    ids = [call["id"] for _, _, tool_calls in first if tool_calls for call in tool_calls]
    assert ids == ["call_1", "call_2"]


def test_identifying_params_and_type():
    model = OfflineChatModel()
    assert model._llm_type == "mcpbridge-offline"
    assert model._identifying_params == {"max_result_chars": 2000}


def test_load_chat_model_is_offline_without_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert isinstance(load_chat_model(), OfflineChatModel)
    monkeypatch.setenv(MODEL_ENV, "  ")
    assert isinstance(load_chat_model(), OfflineChatModel)


def test_load_chat_model_uses_init_chat_model(monkeypatch: pytest.MonkeyPatch):
    seen: list[str] = []
    real = OfflineChatModel(max_result_chars=7)

    def fake_init_chat_model(spec: str) -> BaseChatModel:
        seen.append(spec)
        return real

    monkeypatch.setattr(models, "init_chat_model", fake_init_chat_model)
    monkeypatch.setenv(MODEL_ENV, "anthropic:claude-sonnet-4-5")
    assert load_chat_model() is real
    assert seen == ["anthropic:claude-sonnet-4-5"]
