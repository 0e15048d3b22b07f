"""The command loop a peer's driver runs in its own venv: JSON lines in on stdin, answers out on stdout."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from tests.support.peers import Handler, serve_commands

__all__ = ["Handler", "serve", "timed"]


async def timed(operation: Awaitable[Any]) -> float:
    """Milliseconds ``operation`` takes."""
    start = time.perf_counter_ns()
    await operation
    return (time.perf_counter_ns() - start) / 1e6


serve = serve_commands
"""The command loop of a peer's driver (`tests.support.peers.serve_commands`)."""
