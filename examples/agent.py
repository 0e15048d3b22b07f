"""The demo deployment's graph: an agent whose runs use an MCP server over stdio and one over HTTP.

Named in ``langgraph.json`` as ``./examples/agent.py:make_graph`` and served by
``python -m examples.serve_demo``. A user's first run starts the example echo server
(``python -m mcpbridge.testing.echo``) as a subprocess (tools ``local_*``) and connects
to a running one over HTTP at ``MCPBRIDGE_DEMO_HTTP_URL`` (tools ``remote_*``); the
factory keeps both sessions open for that user's next runs (its default pool), and
closes them when idle for 5 minutes or when the server stops. Reading state or schemas
connects to nothing.

What each run gets depends on its user (``examples/auth.py``), through `UserServers`:
``remote`` only with the ``mcp:remote`` permission, with the user's own token when they
stored one (store namespace ``["mcp_credentials"]``, key ``"remote"``); the servers users
register in the store (namespace ``["mcp_servers"]``), for their own runs, on https
unless ``MCPBRIDGE_ALLOWED_HOSTS`` admits a host; ``*_crash`` tools only with ``mcp:admin``.
Tools named ``*_slow`` wait for a person's approval. With ``MCPBRIDGE_IDENTITY_SECRET``
set, every call carries a signed identity. With ``MCPBRIDGE_DEMO_OAUTH_URL`` set, runs also
get an MCP server protected by OAuth (tools ``oauth_*``, ``examples/oauth.py``): a user who
has not authorized it is asked to, in an interrupt naming its authorization URL.

The model is ``MCPBRIDGE_MODEL=provider:model`` (resolved for runs only), else the offline
model, which calls the tools a message names (``call local_whoami``, ``remote_count {"to": 3}``).
The tests run their recording server in place of the example one (``tests/support``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models import BaseChatModel

from examples import oauth
from mcpbridge import (
    GraphFactory,
    HttpServer,
    IdentityMeta,
    IdentitySigner,
    StdioServer,
    StoreCredentials,
    UrlPolicy,
    agent_factory,
)
from mcpbridge.scoping import RegisteredServers, Scoped, ToolFilter, UserContext, UserServers
from mcpbridge.testing import MODEL_ENV, OfflineChatModel

REPO_ROOT = Path(__file__).resolve().parent.parent
HTTP_URL_ENV = "MCPBRIDGE_DEMO_HTTP_URL"
DEFAULT_HTTP_URL = "http://127.0.0.1:8765/mcp"
REMOTE_PERMISSION = "mcp:remote"
"""The permission (granted in ``examples/auth.py``) that lets a user's runs use the ``remote`` server."""
ADMIN_PERMISSION = "mcp:admin"
"""The permission that lets a user's runs use the ``*_crash`` tools."""
SECRET_ENV = "MCPBRIDGE_IDENTITY_SECRET"
ALLOWED_HOSTS_ENV = "MCPBRIDGE_ALLOWED_HOSTS"
SERVER_ENV = "MCPBRIDGE_EXAMPLE_SERVER"
"""The module run over stdio, ``mcpbridge.testing.echo`` unless set (the tests set their own)."""

SYSTEM_PROMPT = (
    "You are a helpful assistant with the tools of MCP servers: `local_*` (an echo server in a "
    "subprocess), `remote_*` (one over HTTP) and, where the deployment has it, `oauth_*` (a server "
    "protected by OAuth). Call a tool when the user asks for one."
)


def local_server() -> StdioServer:
    """The example echo server over stdio (started once per user, kept warm), with the deployment's env."""
    env = {key: value for key, value in os.environ.items() if key.startswith("MCPBRIDGE_")}
    env["MCPBRIDGE_IDENTITY_AUDIENCE"] = "local"
    return StdioServer(
        name="local",
        command=sys.executable,
        args=["-m", os.environ.get(SERVER_ENV, "mcpbridge.testing.echo")],
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
        *([Scoped(oauth.server(), credentials=oauth.credentials())] if oauth.enabled() else []),
    ],
    registered=RegisteredServers(
        policy=UrlPolicy(allow=[h for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h]),
        connect_timeout=5,
    ),
    tools=tool_filter,
)
"""The servers of each run, from its user."""


def make_factory(*, pool: bool = True, model: BaseChatModel | None = None) -> GraphFactory:
    """The agent's factory; ``pool=False`` connects for each run instead of keeping sessions warm.

    The model is ``model`` if given, else ``$MCPBRIDGE_MODEL``, else the offline model.
    """
    return agent_factory(
        servers,
        model if model is not None else os.environ.get(MODEL_ENV, "").strip() or OfflineChatModel(),
        identity=identity(),
        system_prompt=SYSTEM_PROMPT,
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on={"local_slow": True, "remote_slow": True},
                description_prefix="A slow tool wants to run",
            )
        ],
        pool=pool,
    )


make_graph = make_factory()
"""The factory for ``langgraph.json``: MCP tools for runs, with sessions kept warm between a user's runs,
and the same tool-less graph for everything else."""
