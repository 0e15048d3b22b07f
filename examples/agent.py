"""An Agent Server graph whose runs use two MCP servers: one over stdio, one over streamable HTTP.

Named in ``langgraph.json`` as ``./examples/agent.py:make_graph``. Every run opens
its own connections: it starts the example echo server as a subprocess (tools
``local_*``) and connects to a running echo server over HTTP (tools ``remote_*``,
at ``MCPBRIDGE_DEMO_HTTP_URL``, default ``http://127.0.0.1:8765/mcp``); the run
ends, the connections close and the subprocess stops. Reading state, updating
state and fetching schemas connect to nothing.

Who may use what comes from the authenticated user (see ``examples/auth.py``):
the ``remote`` server is connected only for users holding the ``mcp:remote``
permission. Without custom auth (no user), both are connected.

``local_slow`` and ``remote_slow`` wait for a person's approval: the run stops
with an interrupt, and a later run on the thread resumes it with
``command={"resume": {"decisions": [{"type": "approve"}]}}``.

The model is `mcpbridge.models.load_chat_model`: a real one when
``MCPBRIDGE_MODEL=provider:model`` is set, else the offline model, which calls
the tools a message names, e.g. ``call local_whoami`` or ``remote_count {"to": 3}``.

``MCPBRIDGE_RECORD`` and ``MCPBRIDGE_RECORD_EVENTS``, when set, are passed on to
the stdio server so it records its calls (and requests) like the HTTP one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain.agents.middleware import HumanInTheLoopMiddleware
from langgraph_sdk.runtime import ServerRuntime

from mcpbridge import HttpServer, ServerConfig, StdioServer
from mcpbridge.factory import agent_factory
from mcpbridge.models import load_chat_model

REPO_ROOT = Path(__file__).resolve().parent.parent
HTTP_URL_ENV = "MCPBRIDGE_DEMO_HTTP_URL"
DEFAULT_HTTP_URL = "http://127.0.0.1:8765/mcp"
REMOTE_PERMISSION = "mcp:remote"
"""The permission (granted in ``examples/auth.py``) that lets a user's runs use the ``remote`` server."""

_PASSED_ENV = ("MCPBRIDGE_RECORD", "MCPBRIDGE_RECORD_EVENTS")

SYSTEM_PROMPT = (
    "You are a helpful assistant with the tools of two MCP echo servers: `local_*` (a subprocess) "
    "and `remote_*` (over HTTP). Call a tool when the user asks for one."
)


def local_server() -> StdioServer:
    """The example echo server, started over stdio for each run."""
    env = {key: os.environ[key] for key in _PASSED_ENV if os.environ.get(key)}
    return StdioServer(
        name="local",
        command=sys.executable,
        args=("-m", "examples.servers.echo"),
        cwd=REPO_ROOT,
        env=env or None,
        prefix="local",
    )


def remote_server() -> HttpServer:
    """The example echo server over streamable HTTP; optional, so runs go on without it."""
    return HttpServer(
        name="remote",
        url=os.environ.get(HTTP_URL_ENV, DEFAULT_HTTP_URL),
        prefix="remote",
        required=False,
        connect_timeout=5,
    )


def servers(runtime: ServerRuntime[Any]) -> Sequence[ServerConfig]:
    """The servers for one run: ``remote`` only for users allowed to use it."""
    user = runtime.user
    allowed = user is None or REMOTE_PERMISSION in (getattr(user, "permissions", None) or ())
    return [local_server(), remote_server()] if allowed else [local_server()]


make_graph = agent_factory(
    servers,
    load_chat_model(),
    system_prompt=SYSTEM_PROMPT,
    middleware=[
        HumanInTheLoopMiddleware(
            interrupt_on={"local_slow": True, "remote_slow": True},
            description_prefix="A slow tool wants to run",
        )
    ],
)
"""The factory for ``langgraph.json``: MCP tools for runs, the same tool-less graph for everything else."""
