"""What every client driver shares: the commands, the elicitation answers, one call in the background."""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.abc


class ClientDriver(ABC):
    """One client of one ``mcpbridge serve``; subclasses open it and make its calls."""

    packages: tuple[str, ...] = ()
    """The distributions whose versions ``versions`` reports."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self.stack = stack
        self.answers: dict[str, Any] | None = None
        self.asked: list[list[Any]] = []
        self._group: anyio.abc.TaskGroup | None = None
        self._pending: tuple[anyio.CancelScope, anyio.Event, dict[str, Any]] | None = None

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """Carry out one command; its answer without ``ok``."""
        op = command["op"]
        if op == "open":
            self.answers = command.get("answers")
            await self.open(command["connection"], command.get("mode", "auto"))
            return {}
        if op == "call":
            seen = len(self.asked)
            result = await self.call(command["tool"], command.get("arguments") or {})
            return {**result, "asked": self.asked[seen:]}
        if op == "start":
            await self.start(command["tool"], command.get("arguments") or {})
            return {}
        if op == "cancel":
            return {"outcome": await self.cancel_pending()}
        if op == "versions":
            return {"versions": {name: importlib.metadata.version(name) for name in self.packages}}
        raise ValueError(f"unknown op {op!r}")

    def answer(self, message: str, schema: dict[str, Any]) -> dict[str, Any]:
        """The content answering a form: each field by its name from ``answers``."""
        self.asked.append([message, schema])
        assert self.answers is not None
        return {field: self.answers[field] for field in schema.get("properties", {})}

    @abstractmethod
    async def open(self, connection: dict[str, Any], mode: str) -> None:
        """Connect; everything opened goes on ``self.stack``."""

    @abstractmethod
    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """One call: ``texts``, ``structured``, ``is_error``."""

    async def start(self, tool: str, arguments: dict[str, Any]) -> None:
        """Start a call in the background (one at a time)."""
        if self._group is None:
            self._group = await self.stack.enter_async_context(anyio.create_task_group())
            self.stack.callback(self._group.cancel_scope.cancel)  # runs first: no call outlives the driver
        scope, done, outcome = anyio.CancelScope(), anyio.Event(), {"outcome": "pending"}
        self._pending = (scope, done, outcome)

        async def run() -> None:
            try:
                with scope:
                    result = await self.call(tool, arguments)
                    outcome["outcome"] = f"finished: {result}"
                if scope.cancelled_caught:
                    outcome["outcome"] = "cancelled"
            except Exception as exc:  # what the client made of the cancellation
                outcome["outcome"] = f"raised {type(exc).__name__}: {exc}"
            finally:
                done.set()

        self._group.start_soon(run)

    async def cancel_pending(self) -> str:
        """Cancel the background call as this client does; what became of it."""
        if self._pending is None:
            raise RuntimeError("no call was started")
        scope, done, outcome = self._pending
        await self.signal_cancel(scope)
        with anyio.fail_after(60):
            await done.wait()
        self._pending = None
        return outcome["outcome"]

    async def signal_cancel(self, scope: anyio.CancelScope) -> None:
        """The client's way to cancel a call: by default, cancelling the task that awaits it."""
        scope.cancel()


def texts_of(content: list[Any]) -> list[str]:
    """The text blocks of a result's content."""
    return [block.text for block in content if getattr(block, "type", None) == "text"]
