"""The states of one server connection, and the one place they change.

A connection is `State.IDLE` until its task starts, `CONNECTING` on its first
connect, `READY` while a session is open, `BROKEN` once the session ended with
reconnects left (the next call asks for one: `RECONNECTING`), `FAILED` once none
are left, and `CLOSED` at the end. `Lifecycle.move` is the only transition (it
checks each against `TRANSITIONS`); waiting for a change is `Lifecycle.wait_while`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Final

import anyio

__all__ = ["TRANSITIONS", "Lifecycle", "State"]

logger = logging.getLogger("mcpbridge")


class State(enum.Enum):
    """Where a server connection is."""

    IDLE = "idle"
    """Made; its task has not started."""
    CONNECTING = "connecting"
    """The first connect: listing and preparing the tools, within ``connect_timeout``."""
    READY = "ready"
    """A session is open; calls go through."""
    BROKEN = "broken"
    """The session ended (its failure recorded) with reconnects left: the next call asks for one."""
    RECONNECTING = "reconnecting"
    """A call asked for a reconnect; the calls that come meanwhile wait for its outcome."""
    FAILED = "failed"
    """The session ended with no reconnect left: calls fail with its reason."""
    CLOSED = "closed"
    """Closed by its owner, or its task ended."""


TRANSITIONS: Final[Mapping[State, frozenset[State]]] = {
    State.IDLE: frozenset({State.CONNECTING, State.CLOSED}),
    State.CONNECTING: frozenset({State.READY, State.CLOSED}),
    State.READY: frozenset({State.BROKEN, State.FAILED, State.CLOSED}),
    State.BROKEN: frozenset({State.RECONNECTING, State.CLOSED}),
    State.RECONNECTING: frozenset({State.READY, State.BROKEN, State.FAILED, State.CLOSED}),
    State.FAILED: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}
"""The states each state may move to."""


class Lifecycle:
    """The state of one connection: moved only by `move`, awaited with `wait_while`.

    Each move sets the event that waiters hold and replaces it, so every waiter
    wakes on every change and looks at the state again.

    Args:
        name: The server's name, for the debug log of each move.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._state = State.IDLE
        self._changed = anyio.Event()

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    def move(self, to: State) -> None:
        """Move to ``to`` and wake every waiter; a move `TRANSITIONS` does not allow is a bug."""
        previous = self._state
        assert to in TRANSITIONS[previous], f"MCP server {self.name!r}: no move {previous.name} -> {to.name}"
        self._state = to
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        logger.debug("MCP server %r: %s -> %s", self.name, previous.name, to.name)

    async def wait_while(self, *states: State) -> None:
        """Return once the state is none of ``states`` (at once if it is none already)."""
        while self._state in states:
            await self._changed.wait()
