"""The command loop a peer's driver runs in its own venv: JSON lines in on stdin, answers out on stdout."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Protocol, TextIO

import anyio
import anyio.to_thread


class Handler(Protocol):
    """A driver: answers one command."""

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]: ...


async def timed(operation: Awaitable[Any]) -> float:
    """Milliseconds ``operation`` takes."""
    start = time.perf_counter_ns()
    await operation
    return (time.perf_counter_ns() - start) / 1e6


async def serve(make_driver: Callable[[AsyncExitStack], Handler]) -> None:
    """Answer commands until ``exit`` or the end of stdin; ``make_driver``'s resources close after."""
    out: TextIO = sys.stdout
    sys.stdout = sys.stderr  # nothing but answers may reach the suite on stdout
    async with AsyncExitStack() as stack:
        driver = make_driver(stack)
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                return
            command: dict[str, Any] = json.loads(line)
            if command["op"] == "exit":
                out.write(json.dumps({"ok": True}) + "\n")
                out.flush()
                return
            try:
                answer = {"ok": True, **await driver.handle(command)}
            except Exception as exc:  # reported to the suite, which fails the metric
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(answer) + "\n")
            out.flush()
