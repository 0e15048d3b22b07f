"""The sealed bookkeeping of input exchanges, and the mapping of resume values to answers."""

from __future__ import annotations

import mcp_types as types
import pytest

from mcpbridge import _input
from mcpbridge.interrupts import INPUT_REQUEST, INPUT_SECRET_ENV

KEY = b"k" * 32


def test_a_sealed_entry_opens_with_its_key_only() -> None:
    sealed = _input._seal(KEY, {"round": 1, "state": "s"})  # pyright: ignore[reportPrivateUsage]
    assert _input._open(KEY, sealed) == {"round": 1, "state": "s"}  # pyright: ignore[reportPrivateUsage]
    with pytest.raises(_input.TamperedStateError, match="altered"):
        _input._open(b"x" * 32, sealed)  # pyright: ignore[reportPrivateUsage]
    body, mac = sealed.rsplit(".", 1)
    with pytest.raises(_input.TamperedStateError, match="altered"):
        _input._open(KEY, f"{body[:-2]}AA.{mac}")  # pyright: ignore[reportPrivateUsage]
    with pytest.raises(_input.TamperedStateError, match="malformed"):
        _input._open(KEY, None)  # pyright: ignore[reportPrivateUsage]


def test_the_key_comes_from_the_environment_else_the_signer_else_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(INPUT_SECRET_ENV, raising=False)
    assert _input.seal_key(None) == _input.seal_key(None)
    from_signer = _input.seal_key("a-signer-secret")
    assert from_signer not in (_input.seal_key(None), b"a-signer-secret")
    monkeypatch.setenv(INPUT_SECRET_ENV, "deployment secret")
    assert _input.seal_key("a-signer-secret") != from_signer  # the deployment secret wins


def test_resume_values_become_elicitation_results() -> None:
    requests = {"a": {}, "b": {}, "c": {}, "d": {}}
    resume = {
        "a": {"action": "accept", "content": {"name": "Ada"}},
        "b": {"action": "decline", "content": {"ignored": True}},
        "c": {"action": "nonsense"},
    }
    answers, refused = _input.responses(requests, resume)
    assert answers == {
        "a": types.ElicitResult(action="accept", content={"name": "Ada"}),
        "b": types.ElicitResult(action="decline"),
        "c": types.ElicitResult(action="cancel"),
        "d": types.ElicitResult(action="cancel"),  # not answered
    }
    assert refused == []


def test_a_form_answer_off_its_schema_is_declined_and_a_url_answer_sends_no_content() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    requests = {
        "ok": {"kind": "elicitation", "mode": "form", "schema": schema},
        "off": {"kind": "elicitation", "mode": "form", "schema": schema},
        "empty": {"kind": "elicitation", "mode": "form", "schema": schema},
        "url": {"kind": "elicitation", "mode": "url", "schema": None, "url": "https://example.com/x"},
    }
    resume = {
        "ok": {"action": "accept", "content": {"name": "Ada"}},
        "off": {"action": "accept", "content": {"name": 7}},
        "empty": {"action": "accept"},
        "url": {"action": "accept", "content": {"name": "Ada"}},
    }
    answers, refused = _input.responses(requests, resume)
    assert answers == {
        "ok": types.ElicitResult(action="accept", content={"name": "Ada"}),
        "off": types.ElicitResult(action="decline"),
        "empty": types.ElicitResult(action="decline"),
        "url": types.ElicitResult(action="accept"),
    }
    assert refused == ["off", "empty"]


def test_the_interrupt_type_is_documented() -> None:
    assert INPUT_REQUEST == "mcp_input_request"


def test_the_policys_sealed_answers_are_restored_as_their_kinds() -> None:
    sampled = types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="hi"), model="m"
    )
    answers = {
        "s": sampled,
        "r": types.ListRootsResult(roots=[types.Root(uri="file:///srv")]),  # pyright: ignore[reportArgumentType]
        "d": types.ElicitResult(action="decline"),
    }
    sealed = {k: v.model_dump(mode="json", by_alias=True, exclude_none=True) for k, v in answers.items()}
    assert _input._restored(sealed) == answers  # pyright: ignore[reportPrivateUsage]
