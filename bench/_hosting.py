"""Peers opened side by side, so that none of them runs inside another's task groups.

A client opened inside another's ``async with`` runs its background tasks (the
session's reader and writer) under the outer client's task groups, and anyio
walks every enclosing cancel scope at each checkpoint: the inner peer would pay
for the outer one's nesting. `side_by_side` enters each context manager in a
task of its own, children of one task group, so every peer's tasks sit as deep
as the others'.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskStatus

__all__ = ["side_by_side"]

A = TypeVar("A")
B = TypeVar("B")


@asynccontextmanager
async def side_by_side(
    first: AbstractAsyncContextManager[A], second: AbstractAsyncContextManager[B]
) -> AsyncGenerator[tuple[A, B], None]:
    """Enter ``first`` and ``second``, each in a task of its own; yield what they give."""
    done = anyio.Event()

    async def host(manager: AbstractAsyncContextManager[Any], *, task_status: TaskStatus[Any]) -> None:
        async with manager as value:  # entered and left in this task, as a context manager must be
            task_status.started(value)
            await done.wait()

    async with anyio.create_task_group() as group:
        try:
            a: A = await group.start(host, first)
            b: B = await group.start(host, second)
            yield a, b
        finally:
            done.set()
