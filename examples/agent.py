"""An Agent Server graph whose runs use two MCP servers: one over stdio, one over streamable HTTP.

Named in ``langgraph.json`` as ``./examples/agent.py:make_graph``. Every run opens
its own connections: it starts the example echo server as a subprocess (tools
``local_*``) and connects to a running echo server over HTTP (tools ``remote_*``,
at ``MCPBRIDGE_DEMO_HTTP_URL``, default ``http://127.0.0.1:8765/mcp``); the run
ends, the connections close and the subprocess stops. Reading state, updating
state and fetching schemas connect to nothing.

What each run gets depends on its authenticated user (see ``examples/auth.py``),
through `mcpbridge.UserServers`:

- ``remote`` only for users holding the ``mcp:remote`` permission (or every run
  when the deployment has no custom auth), with the user's own token for it when
  they stored one (``StoreCredentials``: namespace ``["mcp_credentials"]``, key
  ``"remote"``, value ``{"bearer_token": "..."}``).
- The servers users register themselves in the store (namespace
  ``["mcp_servers"]``, key = server name, value ``{"url": "https://..."}``),
  for their own runs only. URLs must be https, on port 443 and public, except the
  hosts listed in ``MCPBRIDGE_ALLOWED_HOSTS`` (comma-separated `UrlPolicy` entries, each
  with its ports, e.g. ``127.0.0.1:8765`` or ``127.0.0.1:*``).
- The ``*_crash`` tools only for users holding ``mcp:admin`` (or every run
  when the deployment has no custom auth).

With ``MCPBRIDGE_IDENTITY_SECRET`` set, each call also carries a signed identity
(HS256) that the echo servers verify; they reject calls without one.

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
from pathlib import Path

from langchain.agents.middleware import HumanInTheLoopMiddleware

from mcpbridge import (
    HttpServer,
    IdentityMeta,
    IdentitySigner,
    StdioServer,
    StoreCredentials,
    UrlPolicy,
    agent_factory,
)
from mcpbridge.scoping import RegisteredServers, Scoped, ToolFilter, UserContext, UserServers
from mcpbridge.testing import load_chat_model

REPO_ROOT = Path(__file__).resolve().parent.parent
HTTP_URL_ENV = "MCPBRIDGE_DEMO_HTTP_URL"
DEFAULT_HTTP_URL = "http://127.0.0.1:8765/mcp"
REMOTE_PERMISSION = "mcp:remote"
"""The permission (granted in ``examples/auth.py``) that lets a user's runs use the ``remote`` server."""
ADMIN_PERMISSION = "mcp:admin"
"""The permission that lets a user's runs use the ``*_crash`` tools."""
SECRET_ENV = "MCPBRIDGE_IDENTITY_SECRET"
ALLOWED_HOSTS_ENV = "MCPBRIDGE_ALLOWED_HOSTS"

_PASSED_ENV = ("MCPBRIDGE_RECORD", "MCPBRIDGE_RECORD_EVENTS", SECRET_ENV)

SYSTEM_PROMPT = (
    "You are a helpful assistant with the tools of two MCP echo servers: `local_*` (a subprocess) "
    "and `remote_*` (over HTTP). Call a tool when the user asks for one."
)


def local_server() -> StdioServer:
    """The example echo server, started over stdio for each run."""
    env = {key: os.environ[key] for key in _PASSED_ENV if os.environ.get(key)}
    env["MCPBRIDGE_IDENTITY_AUDIENCE"] = "local"
    return StdioServer(
        name="local",
        command=sys.executable,
        args=("-m", "examples.servers.echo"),
        cwd=REPO_ROOT,
        env=env,
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


def may_use_remote(user: UserContext) -> bool:
    """``remote`` is for users holding ``mcp:remote``, and for every run of a deployment without auth."""
    return not user.authenticated or REMOTE_PERMISSION in user.permissions


def tool_filter(user: UserContext) -> ToolFilter | None:
    """Users without ``mcp:admin`` do not get the tools that kill their server (with auth configured)."""
    allowed = not user.authenticated or ADMIN_PERMISSION in user.permissions
    return None if allowed else ToolFilter(deny=["*_crash"])


def identity() -> IdentityMeta:
    """Forward the run's identity to the servers; sign it when a secret is configured."""
    secret = os.environ.get(SECRET_ENV)
    return IdentityMeta(signer=IdentitySigner(secret) if secret else None)


servers = UserServers(
    [
        local_server(),
        Scoped(
            remote_server(),
            when=may_use_remote,
            credentials=StoreCredentials(servers=["remote"], required=False),
        ),
    ],
    registered=RegisteredServers(
        policy=UrlPolicy(allow=[h for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h]),
        connect_timeout=5,
    ),
    tools=tool_filter,
)
"""The servers of each run, from its user."""

make_graph = agent_factory(
    servers,
    load_chat_model(),
    identity=identity(),
    system_prompt=SYSTEM_PROMPT,
    middleware=[
        HumanInTheLoopMiddleware(
            interrupt_on={"local_slow": True, "remote_slow": True},
            description_prefix="A slow tool wants to run",
        )
    ],
)
"""The factory for ``langgraph.json``: MCP tools for runs, the same tool-less graph for everything else."""
