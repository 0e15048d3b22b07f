"""The names of the ``custom`` stream events (``mcpbridge.events``): a contract with stream readers."""

from __future__ import annotations

import mcpbridge.events as events
from mcpbridge.events import PROGRESS_EVENT, SKIPPED_EVENT
from mcpbridge.serving.progress import describe_custom


def test_the_event_names_are_pinned() -> None:
    # Readers match these strings in their own code: changing one breaks every reader silently.
    assert (PROGRESS_EVENT, SKIPPED_EVENT) == ("mcp_progress", "mcp_servers_skipped")
    assert events.__all__ == ["PROGRESS_EVENT", "SKIPPED_EVENT"]


def test_a_reader_tells_the_events_apart_by_their_type() -> None:
    progress = {"type": PROGRESS_EVENT, "server": "s", "tool": "count", "progress": 2, "total": 3}
    skipped = {"type": SKIPPED_EVENT, "servers": [{"server": "wiki", "reason": "down"}]}
    assert describe_custom(progress) == "count: 2/3"
    assert describe_custom(skipped) == "going on without optional MCP servers: wiki"
