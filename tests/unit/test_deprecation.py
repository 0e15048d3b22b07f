"""Old import paths kept for one release (``mcpbridge._deprecation``): each warns and names the new home."""

from __future__ import annotations

import sys
import types

import pytest

from mcpbridge._deprecation import callable_module, moved


def test_a_moved_name_warns_naming_its_home_and_returns_the_new_object() -> None:
    getattr_ = moved("mcpbridge.old", {"dumps": "json"})
    with pytest.warns(DeprecationWarning, match=r"mcpbridge\.old\.dumps is deprecated; import it from json"):
        found = getattr_("dumps")
    import json

    assert found is json.dumps


def test_a_name_that_did_not_move_is_an_attribute_error() -> None:
    getattr_ = moved("mcpbridge.old", {"dumps": "json"})
    with pytest.raises(AttributeError, match="module 'mcpbridge.old' has no attribute 'loads'"):
        getattr_("loads")


def test_calling_a_module_named_as_its_function_warns_and_calls_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("mcpbridge_fake_module")
    monkeypatch.setitem(sys.modules, module.__name__, module)

    def mcpbridge_fake_module(x: int) -> int:
        return x + 1

    callable_module(module.__name__, mcpbridge_fake_module)
    with pytest.warns(DeprecationWarning, match=r"call mcpbridge_fake_module\.mcpbridge_fake_module"):
        assert module(41) == 42  # pyright: ignore[reportCallIssue]
    assert isinstance(module, types.ModuleType)
