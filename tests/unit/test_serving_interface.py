"""A served graph's MCP tool interface: arguments, schemas, results (``mcpbridge.serving.interface``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mcpbridge.serving.interface import interface_for


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
