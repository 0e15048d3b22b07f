"""Held calls: the option, a question kept for the user within the hold, and which interrupt is whose."""

from __future__ import annotations

import math
from typing import Any

import anyio
import mcp_types as types
import pytest
from anyio.abc import TaskGroup

from mcpbridge import _holding
from mcpbridge.errors import ConfigError
from mcpbridge.interrupts import INPUT_REQUEST, InputPolicy

WHO = {"server": "rooms", "tool": "book", "tool_call_id": "c1"}
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def form(question: str = "Who?") -> types.ElicitRequestFormParams:
    return types.ElicitRequestFormParams(message=question, requested_schema=SCHEMA)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize("hold", [0, -1.0, math.nan, math.inf, True])
def test_hold_calls_is_a_positive_number_of_seconds(hold: float) -> None:
    with pytest.raises(ConfigError, match="hold_calls") as caught:
        InputPolicy(hold_calls=hold)
    assert caught.value.field == "hold_calls"


def test_hold_calls_is_off_by_default() -> None:
    assert InputPolicy().hold_calls is None
    assert InputPolicy(hold_calls=600).hold_calls == 600


@pytest.mark.anyio
async def test_a_question_waits_for_the_users_answer() -> None:
    held = _holding.HeldCall(("t", "c1"), dict(WHO), hold=60)
    answers: list[types.ElicitResult] = []

    async def server_asks() -> None:
        answers.append(await held.ask(form()))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(server_asks)
            assert await held.next(0)  # the question arrived
            assert held.payload(0) == {
                "type": INPUT_REQUEST,
                **WHO,
                "requests": {
                    "elicitation": {
                        "kind": "elicitation",
                        "mode": "form",
                        "message": "Who?",
                        "schema": SCHEMA,
                        "url": None,
                    }
                },
            }
            held.deliver({"elicitation": {"action": "accept", "content": {"name": "Ada"}}})
    assert answers == [types.ElicitResult(action="accept", content={"name": "Ada"})]
    assert held.notes == []


@pytest.mark.anyio
async def test_content_off_the_schema_is_declined_and_noted() -> None:
    held = _holding.HeldCall(("t", "c1"), dict(WHO), hold=60)
    answers: list[types.ElicitResult] = []

    async def server_asks() -> None:
        answers.append(await held.ask(form()))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(server_asks)
            await held.next(0)
            held.deliver({"elicitation": {"action": "accept", "content": {"seats": 2}}})
    assert answers == [types.ElicitResult(action="decline")]
    assert "did not match its schema" in held.notes[0]


@pytest.mark.anyio
async def test_no_answer_within_the_hold_cancels_and_the_call_is_no_longer_held() -> None:
    held = _holding.HeldCall(("t", "c1"), dict(WHO), hold=0.01)
    with anyio.fail_after(10):
        assert await held.ask(form()) == types.ElicitResult(action="cancel")
        assert held.expired
        assert await held.ask(form("Again?")) == types.ElicitResult(action="cancel")  # at once
    assert len(held.questions) == 1


@pytest.mark.anyio
async def test_the_call_ending_wakes_its_waiter() -> None:
    held = _holding.HeldCall(("t", "c1"), dict(WHO), hold=60)

    async def ends() -> None:
        held.done = True
        held.signal()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(ends)
            assert not await held.next(0)


def test_a_pending_interrupt_is_this_calls_by_server_and_tool_call() -> None:
    mine = {"type": INPUT_REQUEST, **WHO, "requests": {}}
    assert _holding._asked([mine], WHO)  # pyright: ignore[reportPrivateUsage]
    other_call = {**mine, "tool_call_id": "c2"}
    other_server = {**mine, "server": "files"}
    other_kind = {**mine, "type": "approval"}
    assert not _holding._asked([other_call, other_server, other_kind, "text"], WHO)  # pyright: ignore[reportPrivateUsage]


CONFIG = {"configurable": {"thread_id": "t"}}


def session_calls() -> tuple[_holding.HeldCalls, list[TaskGroup]]:
    """Held calls spawning into the task group appended to the list (a session's, here a test's)."""
    sessions: list[TaskGroup] = []

    async def spawn(task: Any) -> None:
        sessions[0].start_soon(task)

    return _holding.HeldCalls("rooms", spawn), sessions


@pytest.mark.anyio
async def test_a_call_without_questions_gives_its_result_and_is_forgotten() -> None:
    result = types.CallToolResult(content=[types.TextContent(type="text", text="done")])

    async def start(forward: _holding.Progress) -> types.CallToolResult:
        return result

    calls, sessions = session_calls()
    got = None
    with anyio.fail_after(10):
        async with anyio.create_task_group() as session:
            sessions.append(session)
            got = await calls.call(
                config=CONFIG, tool_call_id="c1", tool="book", hold=60, start=start, progress=None
            )
    assert got == result
    assert calls.calls == {} and calls.running == []


@pytest.mark.anyio
async def test_no_thread_or_tool_call_id_holds_nothing() -> None:
    async def start(forward: _holding.Progress) -> types.CallToolResult:
        raise AssertionError("not called")

    calls, _ = session_calls()
    assert (
        await calls.call(config={}, tool_call_id="c1", tool="b", hold=1, start=start, progress=None) is None
    )
    assert (
        await calls.call(config=CONFIG, tool_call_id=None, tool="b", hold=1, start=start, progress=None)
        is None
    )


@pytest.mark.anyio
async def test_a_cancelled_run_cancels_its_held_call() -> None:
    started = anyio.Event()
    cancelled: list[bool] = []

    async def start(forward: _holding.Progress) -> types.CallToolResult:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise
        raise AssertionError("unreachable")

    calls, sessions = session_calls()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as session:
            sessions.append(session)
            with anyio.CancelScope() as run:

                async def cancel_the_run() -> None:
                    await started.wait()
                    run.cancel()

                session.start_soon(cancel_the_run)
                await calls.call(
                    config=CONFIG, tool_call_id="c1", tool="b", hold=60, start=start, progress=None
                )
    assert cancelled == [True]
    assert calls.calls == {} and calls.running == []
