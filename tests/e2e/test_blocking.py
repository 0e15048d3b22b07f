"""MCP connections inside ``langgraph dev``, which fails every run that makes a blocking call."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_stdio_connections_make_no_blocking_calls(stdio_blocking_failure: str | None) -> None:
    """Connect to a stdio server, call a tool and disconnect, under the Agent Server's blockbuster setup.

    ``langgraph dev`` (without ``--allow-blocking``) raises ``BlockingError`` in a run
    for blocking calls on the event loop; a stdio connection that makes one fails
    every run with a ``ConnectError``.
    """
    assert stdio_blocking_failure is None
