"""The names of the events mcpbridge writes to a graph's ``custom`` stream.

Read them from ``graph.astream(..., stream_mode="custom")``: each event is a mapping whose
``type`` is one of these names.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PROGRESS_EVENT", "SKIPPED_EVENT"]

PROGRESS_EVENT: Final = "mcp_progress"
"""The ``type`` of the progress events of a tool call (``server``, ``tool``, ``progress``, ...)."""

SKIPPED_EVENT: Final = "mcp_servers_skipped"
"""The ``type`` of the event that lists the optional servers a run goes without, with the reasons."""
