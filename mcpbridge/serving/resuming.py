"""Resuming a served graph's interrupted run: asking the client, and its answers as resume values.

`follow_up` turns a finished run into what its client gets: the result, an
``input_required`` result (2026 era), or answers asked during the call (2025 era).
`call_input` reads what a call continues (a sealed ``requestState``, or its arguments);
`resume_answers` checks a retry's answers, or a ``resume`` argument, against the
forms of the interrupts the thread waits at. Both backends use them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, cast

import mcp_types as types
from mcp import MCPError
from pydantic import ValidationError

from mcpbridge.serving.backend import ClientInput, Elicit
from mcpbridge.serving.interface import CallInput, RunOutcome, ToolInterface, describe_error, error_result
from mcpbridge.serving.questions import PendingInput, Question

__all__ = ["call_input", "follow_up", "resume_answers"]


def call_input(
    interface: ToolInterface,
    arguments: Mapping[str, Any],
    client: ClientInput,
    graph: str,
    owner: str | None,
) -> tuple[CallInput, PendingInput | None] | str:
    """What a call continues: a 2026-era retry's sealed state, else its arguments (a problem as text).

    Raises:
        MCPError: The retry's state names another graph or user, or none the SDK could open.
    """
    if client.state is None:
        parsed = interface.parse(arguments)
        return parsed if isinstance(parsed, str) else (parsed, None)
    # A 2026-era retry: the SDK verified the seal; what it names is all that is trusted.
    pending = PendingInput.load(client.state)
    if pending is None or pending.graph != graph or pending.owner != owner:
        raise MCPError(code=types.INVALID_PARAMS, message="Invalid or expired requestState")
    return CallInput({}, pending.thread_id), pending


async def follow_up(
    interface: ToolInterface, outcome: RunOutcome, client: ClientInput, graph: str, owner: str | None
) -> types.CallToolResult | types.InputRequiredResult | dict[str, Any]:
    """What a finished run gives the client: its result, an input request, or (asked now) the answers.

    Answers (by interrupt id) come back only from a 2025-era client asked during the call;
    the caller resumes the run with them.
    """
    if not outcome.interrupts or not outcome.questions:
        return interface.result(outcome)
    if client.input_required:
        ids = tuple(q.interrupt_id for q in outcome.questions)
        pending = PendingInput(graph, outcome.thread_id, outcome.run_id, outcome.checkpoint_id, ids, owner)
        return types.InputRequiredResult(
            input_requests={q.interrupt_id: q.request() for q in outcome.questions},
            request_state=pending.dump(),
        )
    if client.elicit is None:
        return interface.result(outcome)
    return await _elicit(interface, outcome, client.elicit)


def resume_answers(
    interface: ToolInterface,
    waiting: RunOutcome,
    resume: Any,
    pending: PendingInput | None,
    client: ClientInput,
) -> dict[str, Any] | types.CallToolResult:
    """The answers (by interrupt id) that resume the ``waiting`` thread, or the result that says why not.

    From a 2026-era retry (``pending``, its ``client.responses``), else from the ``resume``
    argument. A retry whose thread is no longer where it was asked (answered before,
    replayed) raises ``MCPError``: nothing resumes.
    """
    thread_id, questions = waiting.thread_id, waiting.questions
    if not questions:
        return error_result(
            f"Thread {thread_id} waits for no input; call without {interface.resume_key} to continue it."
        )
    if pending is None:
        return _answers_of_argument(interface, questions, resume)
    asked = tuple(q.interrupt_id for q in questions)
    if waiting.checkpoint_id != pending.checkpoint_id or asked != pending.interrupt_ids:
        raise MCPError(
            code=types.INVALID_PARAMS,
            message=f"This input request was already answered or is no longer pending (thread "
            f"{thread_id} moved on); nothing was resumed. Call the tool again without requestState.",
        )
    answers = _answers_of(questions, client.responses or {})
    if isinstance(answers, str):  # declined or cancelled: the thread still waits
        return interface.result(replace(waiting, interrupts=[q.value for q in questions], note=answers))
    return answers


def _answers_of(
    questions: Sequence[Question], responses: Mapping[str, Any]
) -> dict[str, Any] | str | types.CallToolResult:
    """Answers from 2026-era ``inputResponses``; a note when the client declined; an error if unfit."""
    answers: dict[str, Any] = {}
    for question in questions:
        response: Any = responses.get(question.interrupt_id)
        if isinstance(response, Mapping):
            try:
                response = types.ElicitResult.model_validate(response)
            except ValidationError:
                response = None
        if not isinstance(response, types.ElicitResult):
            return error_result(
                f"No answer to input request {question.interrupt_id!r}; the run was not resumed. Answer "
                "every input request of the result."
            )
        if response.action != "accept":
            return f"The input request was {response.action}d; nothing was resumed. "
        value, problem = question.answer(response.content)
        if problem is not None:
            return error_result(_unfit(question, problem))
        answers[question.interrupt_id] = value
    return answers


def _answers_of_argument(
    interface: ToolInterface, questions: Sequence[Question], resume: Any
) -> dict[str, Any] | types.CallToolResult:
    """Answers from a ``resume`` argument: the one answer, or answers by interrupt id."""
    if len(questions) == 1:
        given = {questions[0].interrupt_id: resume}
    elif isinstance(resume, Mapping) and set(cast(Mapping[str, Any], resume)) == {
        q.interrupt_id for q in questions
    }:
        given = dict(cast(Mapping[str, Any], resume))
    else:
        return error_result(
            f"The run waits for {len(questions)} answers: give {interface.resume_key} as an object with "
            f"one answer per interrupt id ({', '.join(q.interrupt_id for q in questions)}). Nothing was "
            "resumed."
        )
    answers: dict[str, Any] = {}
    for question in questions:
        value, problem = question.resume(given[question.interrupt_id])
        if problem is not None:
            return error_result(_unfit(question, problem))
        answers[question.interrupt_id] = value
    return answers


async def _elicit(
    interface: ToolInterface, outcome: RunOutcome, elicit: Elicit
) -> dict[str, Any] | types.CallToolResult:
    """Ask the client each question during the call (2025 era)."""
    answers: dict[str, Any] = {}
    for question in outcome.questions:
        try:
            reply = await elicit(question.message, question.schema)
        except Exception as exc:  # the client refused or failed the request: the thread still waits
            note = f"The client did not answer ({describe_error(exc)}); nothing was resumed. "
            return interface.result(replace(outcome, note=note))
        if reply.action != "accept":
            note = f"The input request was {reply.action}d; nothing was resumed. "
            return interface.result(replace(outcome, note=note))
        value, problem = question.answer(reply.content)
        if problem is not None:
            return error_result(_unfit(question, problem))
        answers[question.interrupt_id] = value
    return answers


def _unfit(question: Question, problem: str) -> str:
    return (
        f"The answer does not fit the form of interrupt {question.interrupt_id}: {problem}. Nothing was "
        f"resumed; the thread still waits. Answer with {question.expects()}."
    )
