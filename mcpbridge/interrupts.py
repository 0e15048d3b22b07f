"""The interrupts mcpbridge raises in a graph, and the values that resume them.

A server that needs input during a tool call (a 2026-07-28 ``input_required``
result) pauses the run with an interrupt whose value is a mapping of ``type``
`INPUT_REQUEST`; resume it with ``Command(resume={key: {"action": ..., "content": ...}})``.
"""

from __future__ import annotations

from typing import Final

__all__ = ["INPUT_REQUEST", "INPUT_SECRET_ENV"]

INPUT_REQUEST: Final = "mcp_input_request"
"""The ``type`` of the interrupt a server's input request raises (``server``, ``tool``, ``requests``, ...)."""

INPUT_SECRET_ENV: Final = "MCPBRIDGE_INPUT_SECRET"
"""The environment variable with the secret that seals the exchange's state in the checkpoint."""
