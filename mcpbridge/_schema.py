"""Tool input schemas: checked once at listing, used to validate every call.

The schema the model sees is the server's ``inputSchema`` as sent (``$defs``,
``$ref``, ``anyOf`` included), made a complete object schema. A schema that is
not valid JSON Schema is refused, so the tool is skipped with a warning.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import typing
from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import exceptions as jsonschema_exceptions
from jsonschema import validators
from jsonschema.protocols import Validator

from mcpbridge.errors import MCPBridgeError

logger = logging.getLogger("mcpbridge")

__all__ = ["InvalidSchemaError", "ArgumentsValidator", "normalize_input_schema"]


class InvalidSchemaError(MCPBridgeError, ValueError):
    """A tool's input schema is not a usable JSON Schema."""


def normalize_input_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a complete object schema, or raise `InvalidSchemaError`.

    A missing ``type`` becomes ``"object"`` and missing ``properties`` become ``{}``
    (providers require both); everything else is kept as the server sent it.
    """
    if schema is None:
        return {"type": "object", "properties": {}}
    if not isinstance(schema, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise InvalidSchemaError(f"input schema must be a JSON object, got {type(schema).__name__}")
    try:
        key = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):  # not JSON data: check it afresh
        return _normalize(schema)
    # Checking a schema costs ~0.5 ms; the same tools come back on every run.
    return copy.deepcopy(_normalized(key))


@functools.lru_cache(maxsize=1024)
def _normalized(key: str) -> dict[str, Any]:
    return _normalize(json.loads(key))


def _normalize(schema: Mapping[str, Any]) -> dict[str, Any]:
    normalized = copy.deepcopy(dict(schema))
    kind = normalized.setdefault("type", "object")
    if kind != "object":
        raise InvalidSchemaError(f'input schema must have "type": "object" at the root, got {kind!r}')
    properties = normalized.setdefault("properties", {})
    if not isinstance(properties, Mapping):
        raise InvalidSchemaError('input schema "properties" must be an object')
    cls = validators.validator_for(normalized, default=validators.Draft202012Validator)
    try:
        cls.check_schema(normalized)
    except jsonschema_exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "root"
        raise InvalidSchemaError(f"input schema is not valid JSON Schema at {where}: {exc.message}") from None
    return normalized


class ArgumentsValidator:
    """Validates tool-call arguments against an input schema before anything is sent."""

    __slots__ = ("_fast", "_validator")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        cls = validators.validator_for(schema, default=validators.Draft202012Validator)
        self._validator: Validator = cls(schema)
        self._fast = _flat_check(schema)

    def errors(self, arguments: Mapping[str, Any]) -> list[str]:
        """Readable problems with ``arguments``; empty when they are valid."""
        if self._fast is not None and self._fast(arguments):
            return []
        problems: list[str] = []
        try:
            found = sorted(self._validator.iter_errors(arguments), key=lambda e: list(e.path))  # pyright: ignore[reportUnknownMemberType, reportUnknownLambdaType, reportUnknownArgumentType]
        except Exception as exc:
            logger.warning("input schema cannot be applied (%s); arguments go to the server unchecked", exc)
            return []
        for error in found[:10]:
            where = "/".join(str(p) for p in error.path)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
            problems.append(f"{where or 'arguments'}: {error.message}")  # pyright: ignore[reportUnknownMemberType]
        return problems


_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"}
)
_FLAT_ROOT = _ANNOTATIONS | {"type", "properties", "required", "additionalProperties", "$schema"}
_FLAT_PROPERTY = _ANNOTATIONS | {"type"}
_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "null": lambda v: v is None,
    # Bare: a property of these types has no other keyword (`_FLAT_PROPERTY`) to check inside.
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def _type_check(kind: Any) -> Callable[[Any], bool] | None:
    """The check of a ``type`` keyword: one type's name or a list of them (any may match)."""
    if isinstance(kind, str):
        return _TYPE_CHECKS.get(kind)
    if not isinstance(kind, list) or not kind:
        return None
    checks: list[Callable[[Any], bool]] = []
    for one in typing.cast(list[Any], kind):
        check = _TYPE_CHECKS.get(one) if isinstance(one, str) else None
        if check is None:
            return None
        checks.append(check)
    if len(checks) == 1:
        return checks[0]
    return lambda value: any(check(value) for check in checks)


def _flat_check(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool] | None:
    """A quick check for the common flat schema (scalar properties, ``required``), or ``None``.

    It answers ``True`` only for arguments the full validator accepts, so a call
    with valid arguments skips jsonschema (~7 us); anything else is left to it,
    which also words the problems.
    """
    if not set(schema) <= _FLAT_ROOT:
        return None
    if "draft-03" in str(schema.get("$schema", "")):  # `required` meant something else there
        return None
    properties: Any = schema.get("properties", {})
    required: Any = schema.get("required", [])
    extra: Any = schema.get("additionalProperties", True)
    if schema.get("type") != "object" or not isinstance(properties, Mapping) or not isinstance(extra, bool):
        return None
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):  # pyright: ignore[reportUnknownVariableType]
        return None
    checks: dict[str, Callable[[Any], bool]] = {}
    for name, sub in typing.cast(Mapping[str, Any], properties).items():
        if not isinstance(sub, Mapping) or not set(typing.cast(Mapping[str, Any], sub)) <= _FLAT_PROPERTY:
            return None
        check_type = _type_check(typing.cast(Mapping[str, Any], sub).get("type"))
        if check_type is None:
            return None
        checks[name] = check_type
    needed = tuple(typing.cast(list[str], required))

    def check(arguments: Mapping[str, Any]) -> bool:
        for name, value in arguments.items():
            is_valid = checks.get(name)
            if is_valid is None:
                if not extra:
                    return False
            elif not is_valid(value):
                return False
        for name in needed:  # a loop, not all(): no generator made on every call
            if name not in arguments:
                return False
        return True

    return check
