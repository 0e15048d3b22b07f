"""A served graph's MCP tool interface: arguments, schemas, results (``mcpbridge.serving.interface``)."""

from __future__ import annotations

from pydantic import BaseModel

from mcpbridge.serving.interface import interface_for


class Inner(BaseModel):
    x: int


class Outer(BaseModel):
    inner: Inner
    thread_id: str


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
