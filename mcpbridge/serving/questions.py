"""A served graph's interrupts as questions to the MCP client, and the client's answers as resume values.

An interrupt becomes a form: a form it already is (an ``interrupt(...)`` with an object
``response_schema``, or a value ``{"message"?, "schema" | "requested_schema" | "requestedSchema"}``)
passes through, and its answer (the form's content) is the resume value; a request of
LangChain's human-in-the-loop middleware becomes a decision per tool call, answered as the
middleware expects; any other value becomes a form with one free-text ``answer``, whose
text is the resume value. What an
interrupted call leaves for its retry (`PendingInput`) is sealed by the MCP SDK's
``RequestStateBoundary`` under the deployment's keys (`request_state_security`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import mcp_types as types
from mcp.server.request_state import RequestStateSecurity
from pydantic_core import to_jsonable_python

from mcpbridge._schema import ArgumentsValidator
from mcpbridge.errors import ConfigError

__all__ = [
    "ANSWER_KEY",
    "KEYS_ENV",
    "MAX_FORM",
    "PendingInput",
    "Question",
    "question_for",
    "questions_of",
    "request_state_security",
]

logger = logging.getLogger("mcpbridge")

KEYS_ENV = "MCPBRIDGE_REQUEST_STATE_KEYS"
"""Comma-separated secrets (32 characters or more each) sealing ``requestState``; the first seals."""

ANSWER_KEY = "answer"
"""The one field of the form a value that is not a form becomes."""

MAX_FORM = 32_768
"""Characters of JSON an interrupt's form may take; a larger one is asked as free text (and logged)."""

_SCHEMA_KEYS = ("schema", "requested_schema", "requestedSchema")
_MAX_MESSAGE = 2000
_DEFAULT_MESSAGE = "The agent needs your input to go on."


@dataclass(frozen=True, slots=True)
class Question:
    """One interrupt as an MCP form.

    Attributes:
        interrupt_id: The LangGraph interrupt it stands for (the resume map's key).
        message: What the client shows.
        schema: The form (an object JSON schema).
        free_text: The form is the one-``answer`` form of a value that was not a form.
        value: The interrupt's value.
        review: For LangChain's human-in-the-loop middleware: how many tool calls a batched
            request reviews (answered ``{"decisions": [...]}``), or 0 for one per-call
            approval (answered with one decision); ``None`` for other interrupts.
    """

    interrupt_id: str
    message: str
    schema: dict[str, Any]
    free_text: bool
    value: Any = None
    review: int | None = None

    def request(self) -> types.ElicitRequest:
        """The ``elicitation/create`` request (form mode) that asks it."""
        return types.ElicitRequest(
            params=types.ElicitRequestFormParams(message=self.message, requested_schema=self.schema)
        )

    def answer(self, content: Any) -> tuple[Any, str | None]:
        """The resume value for an accepted form's ``content``, or a reason it does not fit."""
        if not isinstance(content, Mapping):
            return None, "the answer must be an object with the form's fields"
        values = dict(cast(Mapping[str, Any], content))
        problems = ArgumentsValidator(self.schema).errors(values)
        if problems:
            return None, "; ".join(problems)
        if self.review is not None:
            return _decisions(values, self.review, self.value)
        return (values[ANSWER_KEY] if self.free_text else values), None

    def resume(self, value: Any) -> tuple[Any, str | None]:
        """The resume value for a ``resume`` argument (the text, or the form's content)."""
        if self.free_text:
            if not isinstance(value, str):
                return None, "the answer must be a string (free text)"
            return value, None
        return self.answer(value)

    def expects(self) -> str:
        """What a ``resume`` argument must hold, in a few words."""
        if self.free_text:
            return "a string"
        return "an object matching " + json.dumps(self.schema, ensure_ascii=False, default=str)


def question_for(interrupt_id: str, value: Any, response_schema: Any = None) -> Question:
    """The form that asks for interrupt ``interrupt_id`` (its value, its ``response_schema``)."""
    review = _review(interrupt_id, value, response_schema)
    if review is not None:
        return review
    schema = _object_schema(response_schema)
    if schema is not None:
        return Question(interrupt_id, _message(value), schema, False, value)
    if isinstance(value, Mapping):
        item = cast(Mapping[str, Any], value)
        for key in _SCHEMA_KEYS:
            schema = _object_schema(item.get(key))
            if schema is not None:
                message = item.get("message")
                text = message if isinstance(message, str) and message.strip() else _DEFAULT_MESSAGE
                return Question(interrupt_id, _cut(text), schema, False, value)
    schema = {
        "type": "object",
        "properties": {ANSWER_KEY: {"type": "string", "title": "Answer"}},
        "required": [ANSWER_KEY],
    }
    return Question(interrupt_id, _message(value), schema, True, value)


_DECISIONS = ("approve", "edit", "reject", "respond")
"""The human-in-the-loop decisions a form carries (an edit's arguments come as a JSON object in text)."""
_MAX_ARGUMENTS = 500
"""Characters of a reviewed call's arguments the form's description quotes."""


def _review(interrupt_id: str, value: Any, response_schema: Any) -> Question | None:
    """A form for LangChain's human-in-the-loop middleware: a decision per tool call, and a message."""
    if not isinstance(value, Mapping):
        return None
    item = cast(Mapping[str, Any], value)
    if item.get("type") == "tool_approval":  # per-call mode: one decision, of the response_schema's types
        allowed = [d for d in _DECISIONS if d in _decision_types(response_schema)] or ["approve", "reject"]
        lines = [str(item.get("description") or f"{item.get('name')} wants to run")]
        fields = {"decision": _decision_field(allowed, str(item.get("name")))}
        if "edit" in allowed:
            fields["arguments"] = _arguments_field(str(item.get("name")), item.get("args"))
        return _review_form(interrupt_id, value, lines, fields, 0)
    requests: Any = item.get("action_requests")
    configs: Any = item.get("review_configs")
    if not isinstance(requests, Sequence) or not requests or not isinstance(configs, Sequence):
        return None
    allowed_by_name: dict[str, list[str]] = {}
    for config in cast(Sequence[Any], configs):
        if isinstance(config, Mapping):
            entry = cast(Mapping[str, Any], config)
            found: Any = entry.get("allowed_decisions") or []
            allowed_by_name[str(entry.get("action_name"))] = [d for d in _DECISIONS if d in found]
    lines: list[str] = []
    fields: dict[str, Any] = {}
    for index, request in enumerate(cast(Sequence[Any], requests)):
        action: Mapping[str, Any] = cast(Mapping[str, Any], request) if isinstance(request, Mapping) else {}
        name = str(action.get("name"))
        lines.append(str(action.get("description") or f"{name} wants to run"))
        allowed = allowed_by_name.get(name) or ["approve"]
        fields[f"decision_{index + 1}"] = _decision_field(allowed, name)
        if "edit" in allowed:
            fields[f"arguments_{index + 1}"] = _arguments_field(name, action.get("args"))
    return _review_form(interrupt_id, value, lines, fields, len(lines))


def _decision_types(schema: Any) -> set[str]:
    """The decision ``type`` values a per-call ``response_schema`` (one object, or a union) admits."""
    if not isinstance(schema, Mapping):
        return set()
    item = cast(Mapping[str, Any], schema)
    found: set[str] = set()
    for key in ("anyOf", "oneOf"):
        branches: Any = item.get(key)
        if isinstance(branches, Sequence):
            for branch in cast(Sequence[Any], branches):
                found |= _decision_types(branch)
    for definition in cast(Mapping[str, Any], item.get("$defs") or {}).values():
        found |= _decision_types(definition)
    kind: Any = cast(Mapping[str, Any], item.get("properties") or {}).get("type")
    if isinstance(kind, Mapping):
        spec = cast(Mapping[str, Any], kind)
        if isinstance(spec.get("const"), str):
            found.add(spec["const"])
        found.update(str(v) for v in cast(Sequence[Any], spec.get("enum") or []))
    return found


def _decision_field(allowed: Sequence[str], name: str) -> dict[str, Any]:
    return {"type": "string", "title": f"Decision on {name}", "enum": list(allowed)}


def _arguments_field(name: str, args: Any) -> dict[str, Any]:
    current = json.dumps(to_jsonable_python(args, fallback=str), ensure_ascii=False)
    return {
        "type": "string",
        "title": f"Arguments for {name} (edit)",
        "description": f"With an edit decision: the arguments to run {name} with, as a JSON object "
        f"(the model's: {_cut(current, _MAX_ARGUMENTS)}).",
    }


def _review_form(
    interrupt_id: str, value: Any, lines: Sequence[str], fields: dict[str, Any], review: int
) -> Question:
    fields["message"] = {
        "type": "string",
        "title": "Message",
        "description": "Why you reject, or what to answer instead of the tool (respond).",
    }
    required = [k for k in fields if k.startswith("decision")]
    schema = {"type": "object", "properties": fields, "required": required}
    return Question(interrupt_id, _cut(" / ".join(lines)), schema, False, value, review)


def _decisions(values: Mapping[str, Any], review: int, value: Any) -> tuple[Any, str | None]:
    """The middleware's answer: one decision (per-call), or ``{"decisions": [...]}`` (batched)."""
    message = values.get("message")
    keys = (
        [("decision", "arguments")]
        if review == 0
        else [(f"decision_{i}", f"arguments_{i}") for i in range(1, review + 1)]
    )
    names = _reviewed_names(value, review)
    decisions: list[dict[str, Any]] = []
    for (key, arguments_key), name in zip(keys, names, strict=True):
        decision: dict[str, Any] = {"type": values[key]}
        if values[key] == "respond" and not message:
            return None, "a respond decision needs the message to answer with"
        if values[key] in ("reject", "respond") and message:
            decision["message"] = message
        if values[key] == "edit":
            args, problem = _edited_arguments(values.get(arguments_key), arguments_key)
            if problem is not None:
                return None, problem
            decision["edited_action"] = {"name": name, "args": args}
        decisions.append(decision)
    return (decisions[0] if review == 0 else {"decisions": decisions}), None


def _reviewed_names(value: Any, review: int) -> list[str]:
    item: Mapping[str, Any] = cast(Mapping[str, Any], value) if isinstance(value, Mapping) else {}
    if review == 0:
        return [str(item.get("name"))]
    names: list[str] = []
    for request in cast(Sequence[Any], item.get("action_requests") or []):
        names.append(
            str(cast(Mapping[str, Any], request).get("name")) if isinstance(request, Mapping) else ""
        )
    return names


def _edited_arguments(text: Any, key: str) -> tuple[dict[str, Any], str | None]:
    if not isinstance(text, str) or not text.strip():
        return {}, f"an edit decision needs {key}: the tool's arguments as a JSON object"
    try:
        args: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, f"{key} is not JSON ({exc.msg}); give the tool's arguments as a JSON object"
    if not isinstance(args, dict):
        return {}, f"{key} must be a JSON object of the tool's arguments"
    return cast(dict[str, Any], args), None


def questions_of(interrupts: Sequence[Any]) -> list[Question]:
    """LangGraph interrupts (objects, or the Agent Server's JSON) as forms; none if one has no id."""
    found: list[Question] = []
    for item in interrupts:
        fields: Mapping[str, Any] = (
            cast(Mapping[str, Any], item)
            if isinstance(item, Mapping)
            else {key: getattr(item, key, None) for key in ("id", "value", "response_schema")}
        )
        interrupt_id = fields.get("id")
        if not isinstance(interrupt_id, str) or not interrupt_id:
            return []  # it cannot be resumed by id
        found.append(question_for(interrupt_id, fields.get("value"), fields.get("response_schema")))
    return found


def _object_schema(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        return None
    schema = cast(Mapping[str, Any], value)
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), Mapping):
        return None
    size = len(json.dumps(to_jsonable_python(schema, fallback=str), ensure_ascii=False))
    if size > MAX_FORM:
        logger.warning(
            "an interrupt's form is %d characters of JSON schema (more than %d): asked as free text instead",
            size,
            MAX_FORM,
        )
        return None
    return dict(schema)


def _message(value: Any) -> str:
    if isinstance(value, str):
        return _cut(value) if value.strip() else _DEFAULT_MESSAGE
    if isinstance(value, Mapping):
        for key in ("message", "question", "description"):
            text = cast(Mapping[str, Any], value).get(key)
            if isinstance(text, str) and text.strip():
                return _cut(text)
    if value is None:
        return _DEFAULT_MESSAGE
    plain = to_jsonable_python(value, fallback=lambda v: f"<{type(v).__name__}>")
    return _cut(json.dumps(plain, ensure_ascii=False, default=str))


def _cut(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class PendingInput:
    """What an ``input_required`` result leaves for the retry, sealed: the client never reads or sets it.

    Attributes:
        graph: The served graph (tool).
        thread_id: The interrupted thread.
        run_id: The run that stopped.
        checkpoint_id: The checkpoint the run stopped at: a retry after the thread moved on is refused.
        interrupt_ids: The interrupts asked about, in order.
        owner: The identity of the caller who was asked (``None`` without auth).
    """

    graph: str
    thread_id: str
    run_id: str
    checkpoint_id: str
    interrupt_ids: tuple[str, ...]
    owner: str | None

    def dump(self) -> str:
        """The plaintext ``requestState`` (the SDK seals it on the way out)."""
        return json.dumps(
            {
                "v": 1,
                "graph": self.graph,
                "thread": self.thread_id,
                "run": self.run_id,
                "checkpoint": self.checkpoint_id,
                "interrupts": list(self.interrupt_ids),
                "owner": self.owner,
            },
            separators=(",", ":"),
        )

    @classmethod
    def load(cls, state: str) -> PendingInput | None:
        """The pending input a verified ``requestState`` names; ``None`` if it is not one of ours."""
        try:
            data: Any = json.loads(state)
            item = cast(Mapping[str, Any], data)
            ids = cast(Sequence[Any], item["interrupts"])
            owner = item["owner"]
            found = cls(
                graph=str(item["graph"]),
                thread_id=str(item["thread"]),
                run_id=str(item["run"]),
                checkpoint_id=str(item["checkpoint"]),
                interrupt_ids=tuple(str(i) for i in ids),
                owner=None if owner is None else str(owner),
            )
        except (ValueError, TypeError, KeyError):
            return None
        return found if item.get("v") == 1 else None


def request_state_security(keys: Sequence[str] | None = None, *, ttl: float = 3600.0) -> RequestStateSecurity:
    """How ``requestState`` is sealed: under ``keys``, else those of `KEYS_ENV`, else a key of this process.

    A key made per process suits one replica only: a retry that reaches another
    replica, or this one restarted, is refused. Replicas share keys through `KEYS_ENV`.
    """
    if keys is None:
        raw = os.environ.get(KEYS_ENV, "")
        keys = [key.strip() for key in raw.split(",") if key.strip()]
    if not keys:
        logger.info("requestState is sealed with a key of this process; set %s to share one", KEYS_ENV)
        return RequestStateSecurity(keys=[secrets.token_bytes(32)], ttl=ttl)
    short = [i for i, key in enumerate(keys) if len(key.encode()) < 32]
    if short:
        raise ConfigError(
            f"request-state key {short[0] + 1} is shorter than 32 characters; make each key in {KEYS_ENV} "
            'at least 32 random characters (python -c "import secrets; print(secrets.token_hex(32))")',
            field=KEYS_ENV,
        )
    return RequestStateSecurity(keys=list(keys), ttl=ttl)
