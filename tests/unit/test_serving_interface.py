"""A served graph's MCP tool interface: arguments, schemas, results (``mcpbridge.serving.interface``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import mcp_types as types
from jsonschema import Draft202012Validator
from langchain_core.messages import AIMessage
from pydantic import BaseModel, Field

from mcpbridge.serving.interface import (
    MAX_INTERRUPT_CHARS,
    MAX_MESSAGE_CHARS,
    OUTPUT_SCHEMA,
    RunOutcome,
    interface_for,
)
from mcpbridge.serving.questions import question_for


class Inner(BaseModel):
    x: int


class Outer(BaseModel):
    inner: Inner
    thread_id: str


class Routed(BaseModel):
    region: str = Field(json_schema_extra={"x-mcp-header": "Region"})


def test_a_graph_schema_keeps_its_defs_and_gets_a_thread_argument() -> None:
    interface = interface_for(Outer.model_json_schema())
    schema = interface.input_schema
    assert "$defs" in schema and schema["properties"]["inner"] == {"$ref": "#/$defs/Inner"}
    assert interface.thread_key == "mcpbridge_thread_id"  # the graph has its own thread_id field
    parsed = interface.parse({"inner": {"x": 1}, "thread_id": "mine", "mcpbridge_thread_id": "t-1"})
    assert not isinstance(parsed, str)
    assert parsed.thread_id == "t-1"
    assert parsed.input == {"inner": {"x": 1}, "thread_id": "mine"}
    refused = interface.parse({"inner": {"x": "one"}, "thread_id": "mine"})
    assert isinstance(refused, str) and "inner/x" in refused


def test_an_unknown_schema_takes_any_object() -> None:
    interface = interface_for(None)
    assert not interface.chat
    assert interface.input_schema["type"] == "object"
    parsed = interface.parse({"anything": [1, 2], "thread_id": "t-1"})
    assert not isinstance(parsed, str)
    assert (parsed.input, parsed.thread_id) == ({"anything": [1, 2]}, "t-1")


def test_only_a_schema_that_declares_headers_is_offered_for_checking_them() -> None:
    routed = interface_for(Routed.model_json_schema())
    assert routed.header_schema is routed.input_schema
    assert routed.input_schema["properties"]["region"]["x-mcp-header"] == "Region"
    chat = interface_for({"properties": {"messages": {"type": "array"}}})
    assert chat.chat and chat.header_schema is None
    assert interface_for(Outer.model_json_schema()).header_schema is None


def _properties(schema: Any) -> Iterator[tuple[str, Any]]:
    """Every property schema of ``schema``, nested ones and array items included."""
    for name, sub in (schema.get("properties") or {}).items():
        yield name, sub
        yield from _properties(sub)
    if isinstance(schema.get("items"), dict):
        yield from _properties(schema["items"])


def test_the_output_schema_is_valid_draft_2020_12_with_every_property_typed() -> None:
    Draft202012Validator.check_schema(OUTPUT_SCHEMA)
    untyped = [name for name, sub in _properties(OUTPUT_SCHEMA) if "type" not in sub]
    assert untyped == []
    chat = interface_for({"properties": {"messages": {}}})
    result = chat.result(RunOutcome("t-1", "r-1", {"messages": [AIMessage("hi", id="m-1")]}))
    Draft202012Validator(OUTPUT_SCHEMA).validate(result.structured_content)
    other = interface_for(None)
    stopped = other.result(RunOutcome("t-1", "r-1", {"x": 1}, interrupts=[{"question": "go on?"}]))
    Draft202012Validator(OUTPUT_SCHEMA).validate(stopped.structured_content)
    asking = RunOutcome("t-1", "r-1", {"x": 1}, ["go on?"], questions=[question_for("i-1", "go on?")])
    asked = other.result(asking).structured_content
    Draft202012Validator(OUTPUT_SCHEMA).validate(asked)
    assert asked is not None and asked["interrupt_ids"] == ["i-1"]
    assert [name for name, sub in _properties(chat.input_schema) if "type" not in sub] == []


class WithResume(BaseModel):
    resume: bool
    text: str


def test_resume_is_an_argument_of_its_own_and_needs_the_thread() -> None:
    interface = interface_for(WithResume.model_json_schema())
    assert interface.resume_key == "mcpbridge_resume"  # the graph has its own resume field
    parsed = interface.parse({"mcpbridge_resume": "yes", "thread_id": "t-1"})
    assert not isinstance(parsed, str) and parsed.resuming and parsed.resume == "yes"
    assert parsed.input == {}  # the graph input is not used when resuming
    plain = interface.parse({"resume": True, "text": "go"})
    assert not isinstance(plain, str) and not plain.resuming and plain.input == {"resume": True, "text": "go"}
    orphan = interface.parse({"mcpbridge_resume": "yes"})
    assert isinstance(orphan, str) and "give its thread_id too" in orphan


def test_the_second_text_block_carries_the_structured_content() -> None:
    chat = interface_for({"properties": {"messages": {}}})
    result = chat.result(RunOutcome("t-1", "r-1", {"messages": [AIMessage("hi", id="m-1")]}))
    first, second = result.content
    assert isinstance(first, types.TextContent) and first.text == "hi"
    assert isinstance(second, types.TextContent)
    assert json.loads(second.text) == result.structured_content
    assert json.loads(second.text)["thread_id"] == "t-1"


def test_a_long_answer_is_cut_in_the_structured_content_only() -> None:
    answer = "x" * (MAX_MESSAGE_CHARS * 50)
    chat = interface_for({"properties": {"messages": {}}})
    result = chat.result(RunOutcome("t-1", "r-1", {"messages": [AIMessage(answer)]}))
    first, second = result.content
    assert isinstance(first, types.TextContent) and first.text == answer
    assert result.structured_content is not None
    message = result.structured_content["message"]
    assert message["truncated"] is True
    assert message["content"].startswith("x" * MAX_MESSAGE_CHARS)
    assert len(message["content"]) < MAX_MESSAGE_CHARS + 100
    assert isinstance(second, types.TextContent) and len(second.text) < MAX_MESSAGE_CHARS + 300


def test_a_huge_interrupt_value_is_cut_in_the_structured_content() -> None:
    huge = {"action_requests": [{"name": "write", "args": {"text": "z" * (MAX_INTERRUPT_CHARS * 5)}}]}
    other = interface_for(None)
    result = other.result(RunOutcome("t-1", "r-1", {}, [huge, {"question": "go on?"}]))
    assert result.structured_content is not None
    cut, small = result.structured_content["interrupts"]
    assert isinstance(cut, str) and len(cut) == MAX_INTERRUPT_CHARS and cut.endswith("…")
    assert small == {"question": "go on?"}
    assert len(result.model_dump_json()) < 3 * MAX_INTERRUPT_CHARS
