"""`Lifecycle`: the one place a connection's state changes."""

from __future__ import annotations

import anyio
import pytest

from mcpbridge._lifecycle import TRANSITIONS, Lifecycle, State

pytestmark = pytest.mark.anyio


def test_every_state_but_closed_may_close_and_closed_is_final() -> None:
    assert TRANSITIONS[State.CLOSED] == frozenset()
    assert all(State.CLOSED in TRANSITIONS[s] for s in State if s is not State.CLOSED)
    assert set(TRANSITIONS) == set(State)


async def test_the_lifecycle_refuses_moves_it_does_not_know_and_wakes_waiters() -> None:
    lifecycle = Lifecycle("s")
    with pytest.raises(AssertionError, match="no move IDLE -> READY"):
        lifecycle.move(State.READY)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(lifecycle.wait_while, State.IDLE, State.CONNECTING)
            await anyio.lowlevel.checkpoint()
            lifecycle.move(State.CONNECTING)  # still waiting
            lifecycle.move(State.READY)  # wakes it
        await lifecycle.wait_while(State.IDLE)  # not in it: returns at once
