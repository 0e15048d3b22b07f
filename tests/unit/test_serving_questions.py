"""Interrupts as MCP forms, their answers, the sealed pending input (``mcpbridge.serving.questions``)."""

from __future__ import annotations

import logging

import pytest

from mcpbridge.errors import ConfigError
from mcpbridge.serving.questions import (
    KEYS_ENV,
    MAX_FORM,
    PendingInput,
    question_for,
    request_state_security,
)

pytestmark = pytest.mark.anyio

FORM = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_a_value_that_is_no_form_becomes_one_free_text_answer() -> None:
    free = question_for("i1", {"question": "go on?"})
    assert free.free_text and free.message == "go on?"
    assert free.schema["required"] == ["answer"]
    assert free.answer({"answer": "yes"}) == ("yes", None)
    assert free.resume("yes") == ("yes", None)
    assert free.resume({"answer": "yes"})[1] == "the answer must be a string (free text)"
    form = question_for("i2", {"message": "Where?", "requestedSchema": FORM})
    assert not form.free_text and form.message == "Where?" and form.schema == FORM
    assert form.answer({"city": "Oslo"}) == ({"city": "Oslo"}, None)
    assert "'city' is a required property" in str(form.answer({})[1])
    declared = question_for("i3", "Pick one", {"type": "object", "properties": {"n": {"type": "integer"}}})
    assert not declared.free_text and declared.message == "Pick one"
    assert declared.resume({"n": "two"})[1] == "n: 'two' is not of type 'integer'"


def test_pending_input_round_trips_and_refuses_other_states() -> None:
    pending = PendingInput("agent", "t1", "r1", "c1", ("i1", "i2"), "alice")
    assert PendingInput.load(pending.dump()) == pending
    assert PendingInput.load("not json") is None
    assert PendingInput.load('{"v": 2}') is None


def test_keys_come_from_the_environment_and_must_be_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYS_ENV, "short")
    with pytest.raises(ConfigError, match="shorter than 32 characters"):
        request_state_security()
    monkeypatch.setenv(KEYS_ENV, "a" * 32 + "," + "b" * 40)
    shared = request_state_security()
    sealed = shared.codec.seal(b"state")
    assert request_state_security().codec.unseal(sealed) == b"state"  # another replica reads it
    monkeypatch.delenv(KEYS_ENV)
    assert request_state_security().codec is not shared.codec


def test_a_human_in_the_loop_request_becomes_a_decision_per_tool_call() -> None:
    batched = {
        "action_requests": [
            {"name": "rm", "args": {}, "description": "Delete the files"},
            {"name": "ls", "args": {"path": "/tmp"}},
        ],
        "review_configs": [
            {"action_name": "rm", "allowed_decisions": ["approve", "reject"]},
            {"action_name": "ls", "allowed_decisions": ["approve", "edit", "respond"]},
        ],
    }
    review = question_for("i1", batched)
    assert review.message == "Delete the files / ls wants to run"
    assert review.schema["properties"]["decision_1"]["enum"] == ["approve", "reject"]
    assert review.schema["properties"]["decision_2"]["enum"] == ["approve", "edit", "respond"]
    assert '{"path": "/tmp"}' in review.schema["properties"]["arguments_2"]["description"]
    assert "arguments_1" not in review.schema["properties"]  # rm may not be edited
    assert review.schema["required"] == ["decision_1", "decision_2"]
    content = {"decision_1": "reject", "decision_2": "approve", "message": "too risky"}
    assert review.answer(content) == (
        {"decisions": [{"type": "reject", "message": "too risky"}, {"type": "approve"}]},
        None,
    )
    assert "is not one of" in str(review.answer({"decision_1": "edit", "decision_2": "approve"})[1])
    respond = {"decision_1": "approve", "decision_2": "respond"}
    assert review.answer(respond)[1] == "a respond decision needs the message to answer with"
    approval = {"type": "tool_approval", "tool_call_id": "c1", "name": "rm", "args": {}, "description": "Rm?"}
    union = {"anyOf": [{"properties": {"type": {"const": t}}} for t in ("approve", "edit", "reject")]}
    per_call = question_for("i2", approval, union)
    assert per_call.schema["properties"]["decision"]["enum"] == ["approve", "edit", "reject"]
    assert per_call.resume({"decision": "approve"}) == ({"type": "approve"}, None)
    edit = {"decision": "edit", "arguments": '{"path": "/home"}'}
    assert per_call.resume(edit) == (
        {"type": "edit", "edited_action": {"name": "rm", "args": {"path": "/home"}}},
        None,
    )


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (None, "an edit decision needs arguments_2: the tool's arguments as a JSON object"),
        ("{not json", "arguments_2 is not JSON"),
        ("[1, 2]", "arguments_2 must be a JSON object of the tool's arguments"),
    ],
)
def test_an_edit_needs_its_arguments_as_a_json_object(arguments: str | None, problem: str) -> None:
    batched = {
        "action_requests": [{"name": "rm", "args": {}}, {"name": "ls", "args": {}}],
        "review_configs": [
            {"action_name": n, "allowed_decisions": ["approve", "edit"]} for n in ("rm", "ls")
        ],
    }
    review = question_for("i1", batched)
    content = {"decision_1": "approve", "decision_2": "edit"}
    if arguments is not None:
        content["arguments_2"] = arguments
    assert str(review.answer(content)[1]).startswith(problem)
    content["arguments_2"] = '{"path": "."}'
    assert review.answer(content) == (
        {
            "decisions": [
                {"type": "approve"},
                {"type": "edit", "edited_action": {"name": "ls", "args": {"path": "."}}},
            ]
        },
        None,
    )


def test_a_form_too_large_is_asked_as_free_text(caplog: pytest.LogCaptureFixture) -> None:
    fields = {f"field_{i}": {"type": "string", "description": "x" * 100} for i in range(MAX_FORM // 100)}
    huge = {"type": "object", "properties": fields}
    with caplog.at_level(logging.WARNING, logger="mcpbridge"):
        question = question_for("i1", {"message": "Fill this in", "schema": huge})
    assert question.free_text and list(question.schema["properties"]) == ["answer"]
    assert question.message == "Fill this in"
    assert "asked as free text instead" in caplog.text
    assert question_for("i2", {"schema": {"type": "object", "properties": {"a": {}}}}).free_text is False
