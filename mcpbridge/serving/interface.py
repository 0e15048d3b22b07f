"""How a graph looks as an MCP tool: its input schema, its arguments as graph input, its result.

A message-based agent (its state has ``messages``) takes a ``message`` string
and an optional ``thread_id``; any other graph takes its own input schema (an
object, ``$defs`` kept at the root so every ``$ref`` stays valid) plus an
optional ``thread_id``. Both take ``resume`` (``mcpbridge_resume`` when the graph's
input has a ``resume``): the answer that resumes an interrupted thread. The
result's first text block is the final assistant message (or the output as
JSON); ``structuredContent`` holds ``thread_id``, ``run_id``, ``status``, the final
``message`` (its content cut at `MAX_MESSAGE_CHARS`) and, for other graphs, the
``output``; a second text block carries it as JSON, for clients that read text only.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import mcp_types as types
from langchain_core.messages import AIMessage, BaseMessage
from mcp.shared.inbound import X_MCP_HEADER_KEY
from pydantic_core import to_jsonable_python

from mcpbridge._schema import ArgumentsValidator, InvalidSchemaError, normalize_input_schema
from mcpbridge.errors import MCPBridgeError
from mcpbridge.serving.questions import Question

__all__ = [
    "MAX_INTERRUPT_CHARS",
    "MAX_MESSAGE_CHARS",
    "CallInput",
    "RunOutcome",
    "ToolInterface",
    "describe_error",
    "error_result",
    "final_message",
    "interface_for",
    "jsonable",
    "message_text",
]

THREAD_ID = "thread_id"
_ALT_THREAD_ID = "mcpbridge_thread_id"
RESUME = "resume"
_ALT_RESUME = "mcpbridge_resume"
_MAX_SUMMARY = 300

MAX_MESSAGE_CHARS = 2000
"""How much of the answer ``structuredContent.message.content`` repeats; the first text block has it all."""

MAX_INTERRUPT_CHARS = 20_000
"""The JSON size past which an interrupt value in ``structuredContent.interrupts`` becomes a cut summary."""

_THREAD_PROPERTY: dict[str, Any] = {
    "type": "string",
    "description": "Continue this conversation thread (the thread_id of an earlier result); "
    "leave it out to start a new thread.",
}

_ANY_JSON = ["object", "array", "string", "number", "boolean", "null"]

_RESUME_PROPERTY: dict[str, Any] = {
    "type": ["string", "object"],
    "description": "Resume an interrupted run: its answer (text, or an object with the fields of its "
    "form; with several questions, an object of answers by interrupt id), together with the thread_id. "
    "The other arguments are ignored then.",
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "thread_id": {"type": "string", "description": "The thread the run belongs to; pass it to continue."},
        "run_id": {"type": "string", "description": "The run."},
        "status": {
            "type": "string",
            "enum": ["success", "interrupted"],
            "description": "'interrupted' when the run waits for input (see interrupts).",
        },
        "message": {
            "type": ["object", "null"],
            "description": "The final assistant message: role, content (text, cut past "
            f"{MAX_MESSAGE_CHARS} characters; the first text block has it all) and id.",
            "properties": {
                "role": {"type": "string"},
                "content": {"type": "string"},
                "id": {"type": "string"},
                "truncated": {"type": "boolean", "description": "Whether content was cut."},
            },
        },
        "output": {
            "type": _ANY_JSON,
            "description": "The graph's output, for graphs that are not message-based.",
        },
        "interrupts": {
            "type": "array",
            "items": {"type": _ANY_JSON},
            "description": "What an interrupted run waits for.",
        },
        "interrupt_ids": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The interrupts an interrupted run waits for, in order.",
        },
        "questions": {
            "type": "array",
            "description": "What an interrupted run asks: answer with the resume argument.",
            "items": {
                "type": "object",
                "properties": {
                    "interrupt_id": {"type": "string"},
                    "message": {"type": "string"},
                    "schema": {"type": "object", "description": "The form the answer fills."},
                    "free_text": {"type": "boolean", "description": "The answer is a string."},
                },
            },
        },
    },
    "required": ["thread_id", "run_id", "status"],
}
"""The ``outputSchema`` of every served graph's tool."""


@dataclass(frozen=True, slots=True)
class CallInput:
    """A tool call's arguments as graph input.

    Attributes:
        input: The graph input.
        thread_id: The thread to continue, or ``None`` for a new one.
        resume: The ``resume`` argument, when the call resumes an interrupted thread.
        resuming: Whether ``resume`` was given.
    """

    input: dict[str, Any]
    thread_id: str | None
    resume: Any = None
    resuming: bool = False


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended, for the tool result.

    Attributes:
        thread_id: The run's thread.
        run_id: The run.
        values: The final state, or ``None`` if unknown.
        interrupts: The values of the interrupts the run stopped at.
        output: The graph's output (its output channels); ``values`` when not given.
        questions: The interrupts as forms, when their ids are known.
        note: Said before the account of an interrupted run (why the client was not asked).
        checkpoint_id: The checkpoint an interrupted run stopped at.
    """

    thread_id: str
    run_id: str
    values: Mapping[str, Any] | None
    interrupts: Sequence[Any] = ()
    output: Any = None
    questions: Sequence[Question] = ()
    note: str = ""
    checkpoint_id: str = ""


@dataclass(frozen=True, slots=True)
class ToolInterface:
    """The MCP face of one graph.

    Attributes:
        chat: Whether the graph is message-based (takes ``message``).
        input_schema: The tool's ``inputSchema``.
        thread_key: The argument that carries the thread id.
        resume_key: The argument that carries the answer resuming an interrupted thread.
    """

    chat: bool
    input_schema: dict[str, Any]
    thread_key: str = THREAD_ID
    resume_key: str = RESUME
    _validator: ArgumentsValidator = field(init=False, repr=False, compare=False)
    _declares_headers: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_validator", ArgumentsValidator(self.input_schema))
        # A superset of the schemas with an annotated property: the SDK does the exact walk.
        declares = f'"{X_MCP_HEADER_KEY}"' in json.dumps(self.input_schema, default=str)
        object.__setattr__(self, "_declares_headers", declares)

    @property
    def header_schema(self) -> dict[str, Any] | None:
        """The input schema when it declares ``Mcp-Param-*`` headers (``x-mcp-header``), else ``None``.

        What the MCP SDK checks a 2026-era call's ``Mcp-Param-*`` headers against; without a
        declared header there is nothing to check.
        """
        return self.input_schema if self._declares_headers else None

    def tool(self, name: str, description: str, *, title: str | None = None) -> types.Tool:
        """The MCP tool."""
        return types.Tool(
            name=name,
            title=title,
            description=description,
            input_schema=self.input_schema,
            output_schema=OUTPUT_SCHEMA,
            annotations=types.ToolAnnotations(
                read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
            ),
        )

    def parse(self, arguments: Mapping[str, Any]) -> CallInput | str:
        """The graph input for ``arguments``, or a readable reason they are refused.

        With ``resume`` the graph input is ignored (the run goes on from its interrupt) and
        only ``thread_id`` is checked, which it needs.
        """
        values = dict(arguments)
        resuming = self.resume_key in values
        resume = values.pop(self.resume_key, None)
        if not resuming:
            problems = self._validator.errors(arguments)
            if problems:
                return (
                    "Invalid arguments: "
                    + "; ".join(problems)
                    + ". Nothing was run; correct them and call again."
                )
        thread_id = values.pop(self.thread_key, None)
        if thread_id is not None and (not isinstance(thread_id, str) or not thread_id.strip()):
            return f"Invalid arguments: {self.thread_key} must be a non-empty string. Nothing was run."
        if resuming:
            if thread_id is None:
                return (
                    f"Invalid arguments: {self.resume_key} answers an interrupted run; give its "
                    f"{self.thread_key} too. Nothing was run."
                )
            return CallInput({}, thread_id, resume, resuming=True)
        if self.chat:
            message = values.get("message")
            if not isinstance(message, str):
                return (
                    f"Invalid arguments: message is required (a string), unless {self.resume_key} "
                    "resumes an interrupted run. Nothing was run."
                )
            values = {"messages": [{"role": "user", "content": message}]}
        return CallInput(values, thread_id)

    def how_to_resume(self, thread_id: str, questions: Sequence[Question]) -> str:
        """How a client resumes ``thread_id`` with the ``resume`` argument."""
        call = f"call this tool again with {self.thread_key}={json.dumps(thread_id)} and {self.resume_key}"
        if len(questions) == 1:
            return f"To answer, {call} = {questions[0].expects()}."
        parts = [f"{json.dumps(q.interrupt_id)}: {q.expects()}" for q in questions]
        return f"To answer, {call} = an object with {{{', '.join(parts)}}}."

    def describe(self, graph_name: str) -> str:
        """A default tool description."""
        if self.chat:
            return (
                f"Talk to the LangGraph agent {graph_name!r}: send a message, get its answer. "
                f"The result has a {self.thread_key}; pass it back to continue the conversation."
            )
        return (
            f"Run the LangGraph graph {graph_name!r} on the given input and get its output. "
            f"The result has a {self.thread_key}; pass it back to run again on the same thread."
        )

    def result(self, outcome: RunOutcome) -> types.CallToolResult:
        """The tool result for a run that ended or stopped at an interrupt."""
        values = outcome.values or {}
        message = final_message(values.get("messages")) if "messages" in values else None
        text = message_text(message) if message is not None else ""
        structured: dict[str, Any] = {
            "thread_id": outcome.thread_id,
            "run_id": outcome.run_id,
            "status": "interrupted" if outcome.interrupts else "success",
            "message": _message_json(message) if message is not None else None,
        }
        if not self.chat:
            structured["output"] = jsonable(outcome.output if outcome.output is not None else values)
            if not text:
                text = json.dumps(structured["output"], ensure_ascii=False)
        if outcome.interrupts:
            structured["interrupts"] = [_bounded(jsonable(value)) for value in outcome.interrupts]
            waiting = "; ".join(_summarize_interrupt(value) for value in outcome.interrupts)
            text = (
                f"{outcome.note}The run stopped and waits for input: {waiting}. Its state is kept on thread "
                f"{outcome.thread_id}, where it can be resumed (a new message on this thread is refused "
                "while it waits)."
            )
            if outcome.questions:
                structured["interrupt_ids"] = [q.interrupt_id for q in outcome.questions]
                structured["questions"] = [
                    {
                        "interrupt_id": q.interrupt_id,
                        "message": q.message,
                        "schema": q.schema,
                        "free_text": q.free_text,
                    }
                    for q in outcome.questions
                ]
                text += " " + self.how_to_resume(outcome.thread_id, outcome.questions)
        return types.CallToolResult(
            content=[
                types.TextContent(type="text", text=text or "(the run ended without a message)"),
                # What the spec asks of structured content; for clients that read text only.
                types.TextContent(type="text", text=json.dumps(structured, ensure_ascii=False)),
            ],
            structured_content=structured,
        )


def interface_for(input_schema: Mapping[str, Any] | None) -> ToolInterface:
    """The MCP face of a graph whose input JSON schema is ``input_schema`` (``None``: unknown)."""
    properties = cast(Mapping[str, Any], (input_schema or {}).get("properties") or {})
    if "messages" in properties:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {
                "message": {
                    "type": "string",
                    "description": "Your message to the agent (required unless resuming).",
                },
                THREAD_ID: _THREAD_PROPERTY,
                RESUME: _RESUME_PROPERTY,
            },
            "additionalProperties": False,
        }
        return ToolInterface(True, schema)
    try:
        schema = normalize_input_schema(input_schema or {"type": "object", "additionalProperties": True})
    except InvalidSchemaError:
        schema = {"type": "object", "properties": {}, "additionalProperties": True}
    key = THREAD_ID if THREAD_ID not in schema["properties"] else _ALT_THREAD_ID
    resume_key = RESUME if RESUME not in schema["properties"] else _ALT_RESUME
    schema = copy.deepcopy(schema)
    schema["properties"][key] = _THREAD_PROPERTY
    schema["properties"][resume_key] = _RESUME_PROPERTY
    return ToolInterface(False, schema, key, resume_key)


def error_result(text: str) -> types.CallToolResult:
    """A failed call: ``isError`` with a readable message."""
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def describe_error(exc: BaseException) -> str:
    """A failure in one line or a few: the single error of a group, its type, its message."""
    error = _single(exc)
    if isinstance(error, MCPBridgeError):
        return str(error)
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _single(exc: BaseException) -> BaseException:
    """The one error inside nested groups of one (``exc`` itself otherwise)."""
    inner: tuple[BaseException, ...] = tuple(getattr(exc, "exceptions", ()))
    return _single(inner[0]) if len(inner) == 1 and isinstance(exc, BaseExceptionGroup) else exc


def final_message(messages: Any) -> Any | None:
    """The last assistant message of a state's ``messages`` (LangChain messages or their JSON)."""
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        return None
    for message in reversed(cast(Sequence[Any], messages)):
        if isinstance(message, AIMessage):
            return message
        if isinstance(message, Mapping) and cast(Mapping[str, Any], message).get("type") in (
            "ai",
            "assistant",
        ):
            return cast(Any, message)
    return None


def message_text(message: Any) -> str:
    """The text of a LangChain message or of its JSON form."""
    if isinstance(message, BaseMessage):
        return message.text
    content: Any = cast(Mapping[str, Any], message).get("content") if isinstance(message, Mapping) else None
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts: list[str] = []
        for part in cast(Sequence[Any], content):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and cast(Mapping[str, Any], part).get("type") == "text":
                parts.append(str(cast(Mapping[str, Any], part).get("text", "")))
        return "".join(parts)
    return ""


def _message_json(message: Any) -> dict[str, Any]:
    message_id: Any = (
        message.id if isinstance(message, BaseMessage) else cast(Mapping[str, Any], message).get("id")
    )
    content = message_text(message)
    found: dict[str, Any] = {"role": "assistant", "content": content}
    if len(content) > MAX_MESSAGE_CHARS:
        cut = len(content) - MAX_MESSAGE_CHARS
        found["content"] = content[:MAX_MESSAGE_CHARS] + f"… [{cut} more characters in the text block]"
        found["truncated"] = True
    if message_id:
        found["id"] = str(message_id)
    return found


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: messages as ``{role, content, ...}``, models as their fields."""
    if isinstance(value, BaseMessage):
        role = {"human": "user", "ai": "assistant"}.get(value.type, value.type)
        found: dict[str, Any] = {"role": role, "content": value.text}
        if value.id:
            found["id"] = value.id
        return found
    if isinstance(value, Mapping):
        items = cast(Mapping[Any, Any], value).items()
        return {str(k): jsonable(v) for k, v in items}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in cast(Sequence[Any], value)]
    return to_jsonable_python(value, fallback=lambda v: f"<{type(v).__name__}>")


def _bounded(value: Any) -> Any:
    """``value``, or past `MAX_INTERRUPT_CHARS` of JSON its summary cut to that size (a string)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return value if len(text) <= MAX_INTERRUPT_CHARS else summarize(text, MAX_INTERRUPT_CHARS)


def summarize(value: Any, limit: int = _MAX_SUMMARY) -> str:
    """A one-line account of a JSON-able value, at most ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(jsonable(value), ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _summarize_interrupt(value: Any) -> str:
    if isinstance(value, Mapping):
        requests: Any = cast(Mapping[str, Any], value).get("action_requests")
        if isinstance(requests, Sequence) and requests:
            lines: list[str] = []
            for request in cast(Sequence[Any], requests):
                if isinstance(request, Mapping):
                    item = cast(Mapping[str, Any], request)
                    lines.append(str(item.get("description") or f"approve {item.get('name')}"))
            if lines:
                return summarize(" / ".join(lines))
    return summarize(value)
