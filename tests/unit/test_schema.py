from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from mcpbridge._schema import ArgumentsValidator, InvalidSchemaError, normalize_input_schema

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
