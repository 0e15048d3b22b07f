"""Agent Server graphs that meet faults: MCP servers all down, a node that raises, a server that crashes.

Named in the ``langgraph.json`` that ``tests/e2e/test_faults.py`` writes:

- ``down``: the example agent's topology (``create_agent`` with the same
  human-in-the-loop middleware) with three required MCP servers, none of which
  can be connected: an HTTP server on ``FAULTS_HTTP_URL`` (nobody serves MCP there),
  a stdio command that does not exist, and a stdio command that exits at once
  (it appends its pid to ``FAULTS_SPAWNS`` first, so any start shows). The
  configurations are made for each run, from the Agent Server's environment.
- ``optional_down``: the same servers, optional.
- ``faulty``: the example echo server over stdio (tools ``echo_*``); its ``tools`` node
  raises `NodeFault` after ``echo_count`` returns, and ``echo_crash`` waits for approval.
- ``no_provider``: the example agent's topology with no MCP server and the model
  ``MISSING_PROVIDER_MODEL``, whose provider package is not installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import AgentMiddleware, HumanInTheLoopMiddleware
from langchain.agents.middleware.types import ToolCallRequest
from langchain_core.messages import ToolMessage
from langgraph.types import Command
from langgraph_sdk.runtime import ServerRuntime

from mcpbridge import HttpServer, ServerConfig, StdioServer, agent_factory
from mcpbridge.testing import OfflineChatModel
from tests.support.processes import REPO_ROOT
from tests.support.servers.common import EVENTS_ENV, RECORD_ENV

HTTP_URL_ENV = "FAULTS_HTTP_URL"
SPAWNS_ENV = "FAULTS_SPAWNS"
MISSING_COMMAND = "/nonexistent/mcpbridge-missing-server"
FAULT_TOOL = "echo_count"
"""The tool after which the ``faulty`` graph's ``tools`` node raises."""
FAULT_MESSAGE = f"the tools node failed on purpose after {FAULT_TOOL} returned"
MISSING_PROVIDER_MODEL = "anthropic:claude-x"
"""A model string whose provider package (``langchain-anthropic``) the test environment lacks."""

_EXIT_AT_ONCE = (
    "import os, sys\n"
    f"with open(os.environ[{SPAWNS_ENV!r}], 'a') as f: f.write(f'{{os.getpid()}}\\n')\n"
    "sys.exit(1)\n"
)


def down_servers(*, required: bool) -> list[ServerConfig]:
    """Three MCP servers that cannot be connected: unreachable HTTP, missing command, exiting command."""
    return [
        HttpServer(name="tickets", url=os.environ[HTTP_URL_ENV], required=required, connect_timeout=10),
        StdioServer(name="files", command=MISSING_COMMAND, required=required, connect_timeout=10),
        StdioServer(
            name="notes",
            command=sys.executable,
            args=("-c", _EXIT_AT_ONCE),
            env={SPAWNS_ENV: os.environ[SPAWNS_ENV]},
            required=required,
            connect_timeout=10,
        ),
    ]


def _approval() -> HumanInTheLoopMiddleware:
    """The example agent's middleware, so the graphs share its topology."""
    return HumanInTheLoopMiddleware(interrupt_on={"echo_crash": True})


class NodeFault(RuntimeError):
    """Raised by the ``faulty`` graph's ``tools`` node after a tool call."""


class FailAfterTool(AgentMiddleware[Any, Any]):
    """Lets the tool call run, then raises `NodeFault` when it was ``tool``."""

    def __init__(self, tool: str) -> None:
        super().__init__()
        self.tool = tool

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """Run the call; raise after it when it was the faulty tool."""
        result = await handler(request)
        if request.tool_call["name"] == self.tool:
            raise NodeFault(FAULT_MESSAGE)
        return result


def echo_server() -> StdioServer:
    """The example echo server over stdio, recording its start, requests and calls."""
    env = {key: os.environ[key] for key in (RECORD_ENV, EVENTS_ENV) if os.environ.get(key)}
    return StdioServer(
        name="echo",
        command=sys.executable,
        args=("-m", "tests.support.servers.echo"),
        cwd=REPO_ROOT,
        env=env,
        prefix="echo",
    )


def required_down(runtime: ServerRuntime[Any]) -> list[ServerConfig]:
    """The servers of a ``down`` run, all required."""
    return down_servers(required=True)


def optional_down_servers(runtime: ServerRuntime[Any]) -> list[ServerConfig]:
    """The servers of an ``optional_down`` run, all optional."""
    return down_servers(required=False)


# Connections per run (pool=False): the tests count each run's process starts and see none left after it.
down = agent_factory(required_down, OfflineChatModel(), middleware=[_approval()], pool=False)
optional_down = agent_factory(optional_down_servers, OfflineChatModel(), middleware=[_approval()], pool=False)
faulty = agent_factory(
    [echo_server()], OfflineChatModel(), middleware=[FailAfterTool(FAULT_TOOL), _approval()], pool=False
)
no_provider = agent_factory([], MISSING_PROVIDER_MODEL, middleware=[_approval()], pool=False)
