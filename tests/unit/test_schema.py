from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from mcpbridge._schema import ArgumentsValidator, InvalidSchemaError, _flat_check, normalize_input_schema  # pyright: ignore[reportPrivateUsage]

REF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "$defs": {
        "Point": {
            "type": "object",
            "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
            "required": ["x", "y"],
        }
    },
    "properties": {
        "at": {"$ref": "#/$defs/Point"},
        "label": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "mode": {"enum": ["fast", "slow"]},
    },
    "required": ["at"],
    "additionalProperties": False,
}


def test_missing_schema_becomes_an_empty_object_schema() -> None:
    assert normalize_input_schema(None) == {"type": "object", "properties": {}}


def test_missing_type_and_properties_are_added_without_mutating_input() -> None:
    given: dict[str, Any] = {"required": []}
    assert normalize_input_schema(given) == {"type": "object", "properties": {}, "required": []}
    assert given == {"required": []}


def test_refs_defs_and_any_of_pass_through_unchanged() -> None:
    original = copy.deepcopy(REF_SCHEMA)
    normalized = normalize_input_schema(REF_SCHEMA)
    assert normalized == original
    assert normalized is not REF_SCHEMA
    normalized["$defs"]["Point"]["required"].append("z")
    assert REF_SCHEMA == original


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "array"}, '"type": "object" at the root'),
        ({"type": ["object", "null"]}, '"type": "object" at the root'),
        ({"type": "object", "properties": []}, '"properties" must be an object'),
        ({"type": "object", "properties": {"x": {"type": "nonsense"}}}, "properties/x/type"),
        ({"type": "object", "required": "x"}, "not valid JSON Schema"),
        ({"type": "object", "properties": {"x": {"minLength": -1}}}, "not valid JSON Schema"),
        (["type", "object"], "must be a JSON object"),
    ],
)
def test_invalid_schemas_are_refused(schema: Any, fragment: str) -> None:
    with pytest.raises(InvalidSchemaError) as info:
        normalize_input_schema(schema)
    assert fragment in str(info.value)


def test_declared_draft_is_respected() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "definitions": {"N": {"type": "integer"}},
        "properties": {"n": {"$ref": "#/definitions/N"}},
    }
    normalized = normalize_input_schema(schema)
    assert ArgumentsValidator(normalized).errors({"n": 1}) == []
    assert ArgumentsValidator(normalized).errors({"n": "one"})


def test_valid_arguments_have_no_errors() -> None:
    validator = ArgumentsValidator(normalize_input_schema(REF_SCHEMA))
    assert validator.errors({"at": {"x": 1, "y": 2.5}}) == []
    assert validator.errors({"at": {"x": 1, "y": 2}, "label": None, "mode": "slow"}) == []


def test_errors_name_the_path_and_follow_refs() -> None:
    validator = ArgumentsValidator(normalize_input_schema(REF_SCHEMA))
    assert validator.errors({}) == ["arguments: 'at' is a required property"]
    [problem] = validator.errors({"at": {"x": "left", "y": 0}})
    assert problem.startswith("at/x: ")
    assert "'left' is not of type 'number'" in problem
    assert validator.errors({"at": {"x": 0, "y": 0}, "extra": 1})
    assert validator.errors({"at": {"x": 0, "y": 0}, "mode": "medium"})


def test_errors_are_capped() -> None:
    schema = normalize_input_schema({"properties": {f"p{i}": {"type": "integer"} for i in range(30)}})
    assert len(ArgumentsValidator(schema).errors({f"p{i}": "x" for i in range(30)})) == 10


def test_unusable_schema_lets_arguments_through_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    schema = normalize_input_schema({"properties": {"x": {"$ref": "#/$defs/Missing"}}})
    with caplog.at_level(logging.WARNING, logger="mcpbridge"):
        assert ArgumentsValidator(schema).errors({"x": 1}) == []
    assert "cannot be applied" in caplog.text


FLAT_SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"text": {"type": "string", "title": "Text"}}, "required": ["text"]},
    {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "default": 3},
            "x": {"type": "number"},
            "on": {"type": "boolean", "description": "switch"},
            "none": {"type": "null"},
        },
        "required": ["n"],
        "additionalProperties": False,
    },
    {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {"n": {"type": "integer"}},
    },
    {"type": "object", "properties": {}},
    {  # lists of types, bare objects and arrays (a served graph's tool takes such a `resume`)
        "type": "object",
        "properties": {
            "text": {"type": ["string", "null"]},
            "resume": {"type": ["string", "object"], "description": "an answer"},
            "o": {"type": "object"},
            "a": {"type": ["array"]},
        },
        "additionalProperties": False,
    },
]
ARGUMENTS: list[dict[str, Any]] = [
    {},
    {"text": "hi"},
    {"text": 1},
    {"text": None},
    {"n": 1},
    {"n": True},
    {"n": 1.0},
    {"n": 1.5},
    {"n": "1"},
    {"n": 2, "x": 1},
    {"n": 2, "x": 1.5, "on": False, "none": None},
    {"n": 2, "x": False},
    {"n": 2, "on": 0},
    {"n": 2, "none": 0},
    {"n": 2, "extra": "x"},
    {"text": "hi", "extra": [1, {"a": None}]},
    {"resume": "yes"},
    {"resume": {"ok": True}},
    {"resume": ["no"]},
    {"resume": None},
    {"o": {}, "a": []},
    {"o": [], "a": {}},
    {"a": [1, "x"], "text": None},
]


@pytest.mark.parametrize("schema", FLAT_SCHEMAS)
def test_flat_schemas_take_the_quick_check_and_agree_with_jsonschema(schema: dict[str, Any]) -> None:
    validator = ArgumentsValidator(normalize_input_schema(schema))
    assert validator._fast is not None  # pyright: ignore[reportPrivateUsage]
    full = ArgumentsValidator(normalize_input_schema(schema))
    full._fast = None  # pyright: ignore[reportPrivateUsage]
    for arguments in ARGUMENTS:
        assert validator.errors(arguments) == full.errors(arguments), arguments


@pytest.mark.parametrize(
    "schema",
    [
        REF_SCHEMA,
        {"type": "object", "properties": {"s": {"type": "string", "minLength": 2}}},
        {"type": "object", "properties": {"s": {"type": ["string", "integer"], "maxLength": 3}}},
        {"type": "object", "properties": {"s": {"enum": ["a"]}}},
        {"type": "object", "properties": {"s": {}}},
        {
            "type": "object",
            "properties": {"s": {"type": "string"}},
            "additionalProperties": {"type": "integer"},
        },
        {"type": "object", "properties": {"s": {"type": "string"}}, "minProperties": 1},
        {"type": "object", "properties": {"s": {"type": "object", "properties": {}}}},
    ],
)
def test_other_schemas_are_left_to_jsonschema(schema: dict[str, Any]) -> None:
    assert ArgumentsValidator(normalize_input_schema(schema))._fast is None  # pyright: ignore[reportPrivateUsage]


@pytest.mark.parametrize("kind", [["string", "color"], [], [1], "color", None])
def test_types_the_quick_check_does_not_know_are_left_to_jsonschema(kind: Any) -> None:
    schema = {"type": "object", "properties": {"s": {"type": kind}}}
    assert _flat_check(schema) is None
