"""What the MCP front asks of whatever runs the graphs: list the tools, call one.

Two backends answer it: `LocalGraphs` runs graphs in this process, and
`RemoteAssistants` runs the assistants of an Agent Server. A backend is opened
once per served transport (``running``), which may open a checkpointer or a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import mcp_types as types

from mcpbridge.serving.progress import ProgressReporter
from mcpbridge.serving.users import User

__all__ = ["Backend", "Caller", "OpenBackend"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes an MCP request.

    Attributes:
        user: The verified user (``None`` without auth, e.g. over stdio).
        authorization: The request's ``Authorization`` header, for backends that forward it.
    """

    user: User | None = None
    authorization: str | None = None


class OpenBackend(Protocol):
    """A backend ready to serve."""

    async def list_tools(self, caller: Caller) -> list[types.Tool]:
        """The tools ``caller`` may see."""
        ...

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any], caller: Caller, progress: ProgressReporter
    ) -> types.CallToolResult:
        """Run one call; failures are ``isError`` results, an unknown tool an ``MCPError``."""
        ...


class Backend(Protocol):
    """Runs the served graphs; opened once per transport."""

    def running(self) -> AbstractAsyncContextManager[OpenBackend]:
        """Open what serving needs (a checkpointer, a client) until the context exits."""
        ...
