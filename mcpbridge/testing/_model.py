"""Chat models for examples and tests: a deterministic offline model, or a real one.

`OfflineChatModel` needs no provider, key or network: it calls the tools a user
message names, with the JSON arguments the message gives, then reports what they
returned. It is enough to run an agent end to end, and its answers are the same
on every run. `load_chat_model` picks a real model instead when ``MCPBRIDGE_MODEL``
is set.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from langchain.chat_models import init_chat_model
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolCall, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

__all__ = ["MODEL_ENV", "OfflineChatModel", "load_chat_model"]

MODEL_ENV = "MCPBRIDGE_MODEL"
"""Environment variable naming the real chat model to use, as ``provider:model``."""

_NAME_CHARS = "A-Za-z0-9_-"


@dataclass(frozen=True, slots=True)
class _BoundTool:
    name: str
    description: str
    parameters: Mapping[str, Any]


class OfflineChatModel(BaseChatModel):
    """A deterministic chat model that calls the tools a message names; no provider needed.

    It answers the last message of the conversation:

    - A user message that names bound tools (by their exact name, as a whole word,
      outside any JSON) gets one AI message with a tool call to **each** named tool,
      as parallel calls in mention order; a tool named twice is called once. Each
      call's arguments are the first JSON object written between that tool's first
      mention and the next named tool's (for the first tool, from the start of the
      message), or ``{}`` when there is none.
    - Tool results (the conversation ends with tool messages) get a short text
      answer: one line per result, ``<tool> returned: <text>`` or
      ``<tool> failed: <text>``.
    - Anything else gets a help text listing the bound tools and how to ask for one.

    Tool call ids are ``call_<n>``, numbered on from the tool calls already in the
    conversation, so the same conversation always yields the same answer.

    Bind tools with `bind_tools` (``create_agent`` does it). ``tool_choice="none"``
    stops it from calling tools; other choices are accepted and otherwise ignored.

    Attributes:
        max_result_chars: The longest a tool result may be in an answer; longer
            results are cut and end with ``…``.

    Example:
        ```python
        from langchain.agents import create_agent
        from langchain_core.tools import tool


        @tool
        def add(a: int, b: int) -> int:
            \"\"\"Add two numbers.\"\"\"
            return a + b


        agent = create_agent(OfflineChatModel(), tools=[add])
        result = agent.invoke({"messages": [("user", 'call add with {"a": 1, "b": 2}')]})
        result["messages"][-1].text  # 'add returned: 3'
        ```
    """

    max_result_chars: int = Field(default=2000, gt=0)

    @property
    def _llm_type(self) -> str:
        return "mcpbridge-offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"max_result_chars": self.max_result_chars}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools to the model, as their OpenAI function schemas.

        Args:
            tools: LangChain tools, functions, Pydantic models or tool schemas.
            tool_choice: ``"none"`` to never call tools; any other value is accepted and ignored.
            **kwargs: Other arguments passed through to the model's generation.

        Returns:
            The model bound to ``tools=[...]`` (the tools' names, descriptions and JSON
            schemas, in OpenAI format): a Runnable whose ``kwargs["tools"]`` lists them.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._respond(messages, **kwargs))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._respond(messages, **kwargs))])

    def _respond(self, messages: Sequence[BaseMessage], **kwargs: Any) -> AIMessage:
        tools = _bound_tools(kwargs.get("tools"))
        last = messages[-1] if messages else None
        if isinstance(last, ToolMessage):
            return AIMessage(content=self._summarize(messages))
        if isinstance(last, HumanMessage) and kwargs.get("tool_choice") != "none":
            planned = _plan_calls(last.text, tools)
            if planned:
                first = _count_tool_calls(messages) + 1
                calls = [
                    ToolCall(name=name, args=args, id=f"call_{first + i}", type="tool_call")
                    for i, (name, args) in enumerate(planned)
                ]
                return AIMessage(content="", tool_calls=calls)
        return AIMessage(content=_help(tools))

    def _summarize(self, messages: Sequence[BaseMessage]) -> str:
        results: list[ToolMessage] = []
        for message in reversed(messages):
            if not isinstance(message, ToolMessage):
                break
            results.append(message)
        lines: list[str] = []
        for result in reversed(results):
            verb = "failed" if result.status == "error" else "returned"
            lines.append(f"{result.name or 'the tool'} {verb}: {self._result_text(result)}")
        return "\n".join(lines)

    def _result_text(self, result: ToolMessage) -> str:
        text = result.text.strip()
        try:
            text = json.dumps(json.loads(text), ensure_ascii=False)  # one line for JSON results
        except ValueError:
            text = " ".join(text.split())
        if not text:
            return "(no text)"
        if len(text) > self.max_result_chars:
            return text[: self.max_result_chars - 1] + "…"
        return text


def load_chat_model() -> BaseChatModel:
    """The chat model for examples and demos: a real one if configured, else `OfflineChatModel`.

    Returns:
        ``init_chat_model(os.environ["MCPBRIDGE_MODEL"])`` when ``MCPBRIDGE_MODEL`` is set to a
        ``provider:model`` string (such as ``anthropic:claude-sonnet-4-5``; the provider's
        LangChain package and key must be installed and set), else an `OfflineChatModel`.

    Example:
        ```python
        agent = create_agent(load_chat_model(), tools=bridge.tools)
        ```
    """
    spec = os.environ.get(MODEL_ENV, "").strip()
    if spec:
        return init_chat_model(spec)
    return OfflineChatModel()


def _bound_tools(raw: Any) -> list[_BoundTool]:
    tools: list[_BoundTool] = []
    seen: set[str] = set()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return tools
    for item in cast(Sequence[Any], raw):
        function = _mapping(_mapping(item).get("function"))
        name = function.get("name")
        if not isinstance(name, str) or not name or name in seen:
            continue  # provider built-in tools have no function to call
        seen.add(name)
        description = function.get("description")
        tools.append(
            _BoundTool(
                name=name,
                description=description if isinstance(description, str) else "",
                parameters=_mapping(function.get("parameters")),
            )
        )
    return tools


def _mapping(value: Any) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], value) if isinstance(value, Mapping) else {}


def _plan_calls(text: str, tools: Sequence[_BoundTool]) -> list[tuple[str, dict[str, Any]]]:
    """The tools ``text`` names, in order of first mention, each with its JSON arguments."""
    objects = _json_objects(text)

    def inside_json(position: int) -> bool:
        return any(start <= position < end for start, end, _ in objects)

    mentions: list[tuple[int, str]] = []
    for tool in tools:
        pattern = re.compile(rf"(?<![{_NAME_CHARS}]){re.escape(tool.name)}(?![{_NAME_CHARS}])")
        first = next((m.start() for m in pattern.finditer(text) if not inside_json(m.start())), None)
        if first is not None:
            mentions.append((first, tool.name))
    mentions.sort()
    planned: list[tuple[str, dict[str, Any]]] = []
    for i, (_, name) in enumerate(mentions):
        start = 0 if i == 0 else mentions[i][0]
        end = mentions[i + 1][0] if i + 1 < len(mentions) else len(text)
        args = next((obj for obj_start, _, obj in objects if start <= obj_start < end), None)
        planned.append((name, dict(args or {})))
    return planned


def _json_objects(text: str) -> list[tuple[int, int, dict[str, Any]]]:
    """Every top-level JSON object in ``text``, as ``(start, end, value)``."""
    decoder = json.JSONDecoder()
    found: list[tuple[int, int, dict[str, Any]]] = []
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError:
            position = text.find("{", position + 1)
            continue
        found.append((position, end, cast(dict[str, Any], value)))
        position = text.find("{", end)
    return found


def _count_tool_calls(messages: Sequence[BaseMessage]) -> int:
    return sum(len(m.tool_calls) for m in messages if isinstance(m, AIMessage))


def _help(tools: Sequence[_BoundTool]) -> str:
    intro = "I am mcpbridge's offline model: I call the tools you name and tell you what they return."
    if not tools:
        return (
            f"{intro} No tools are bound to me, so there is nothing I can do yet. "
            f"To talk to a real model, set {MODEL_ENV} to a provider:model string."
        )
    lines = [intro, "Tools I can call:"]
    for tool in tools:
        params = ", ".join(_mapping(tool.parameters.get("properties")))
        summary = tool.description.strip().splitlines()[0] if tool.description.strip() else ""
        lines.append(f"- {tool.name}({params})" + (f": {summary}" if summary else ""))
    example = tools[0]
    lines.append(
        "Name a tool and give its arguments as a JSON object, for example: "
        f"call {example.name} with {json.dumps(_example_arguments(example.parameters))}"
    )
    return "\n".join(lines)


_PLACEHOLDERS: Mapping[str, Any] = {
    "string": "text",
    "integer": 1,
    "number": 1,
    "boolean": True,
    "array": [],
    "object": {},
}


def _example_arguments(schema: Mapping[str, Any]) -> dict[str, Any]:
    properties = _mapping(schema.get("properties"))
    required_raw = schema.get("required")
    required = cast(list[Any], required_raw) if isinstance(required_raw, list) else []
    example: dict[str, Any] = {}
    for name in required:
        if not isinstance(name, str):
            continue
        kind = _mapping(properties.get(name)).get("type")
        example[name] = _PLACEHOLDERS.get(kind, "…") if isinstance(kind, str) else "…"
    return example
