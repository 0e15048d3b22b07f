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

__all__ = ["NO_INPUT", "Backend", "Caller", "ClientInput", "Elicit", "OpenBackend"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes an MCP request.

    Attributes:
        user: The verified user (``None`` without auth, e.g. over stdio).
        authorization: The request's ``Authorization`` header, for backends that forward it.
    """

    user: User | None = None
    authorization: str | None = None


class Elicit(Protocol):
    """Asks the calling client during its call (``elicitation/create``, form mode)."""

    async def __call__(self, message: str, schema: dict[str, Any], /) -> types.ElicitResult:
        """The client's answer to the form ``schema`` shown with ``message``."""
        ...


@dataclass(frozen=True, slots=True)
class ClientInput:
    """How the client of a call can answer a run that stops at an interrupt.

    Attributes:
        input_required: It takes 2026-era ``input_required`` results (it declared elicitation).
        elicit: Asks it during the call (2025-era ``elicitation/create``); ``None`` when it cannot.
        responses: The ``inputResponses`` of a 2026-era retry.
        state: The retry's ``requestState``, as this server sealed it (verified by the MCP SDK).
    """

    input_required: bool = False
    elicit: Elicit | None = None
    responses: Mapping[str, Any] | None = None
    state: str | None = None


NO_INPUT = ClientInput()
"""A client that can be asked nothing: an interrupted run answers how to resume it (``resume``)."""


class OpenBackend(Protocol):
    """A backend ready to serve."""

    async def list_tools(self, caller: Caller) -> list[types.Tool]:
        """The tools ``caller`` may see."""
        ...

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        caller: Caller,
        progress: ProgressReporter,
        *,
        client: ClientInput = NO_INPUT,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Run one call; failures are ``isError`` results, an unknown tool an ``MCPError``.

        A run that stops at an interrupt asks ``client`` as it can (see `ClientInput`).
        """
        ...


class Backend(Protocol):
    """Runs the served graphs; opened once per transport."""

    def running(self) -> AbstractAsyncContextManager[OpenBackend]:
        """Open what serving needs (a checkpointer, a client) until the context exits."""
        ...
