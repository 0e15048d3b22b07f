"""User-scoped MCP servers: each run gets the servers, tools and credentials of its user.

Name the factory in ``langgraph.json`` beside an auth handler that gives users their
permissions (``examples/auth.py``: alice holds ``mcp:remote`` and ``mcp:admin``, bob neither)::

    "graphs": {"agent": "./examples/user_servers.py:make_graph"},
    "auth": {"path": "./examples/auth.py:auth"}

- ``echo`` (stdio) serves every user, its ``add`` tool only users holding ``mcp:admin``;
- ``remote`` (HTTP at ``ECHO_URL``) only users holding ``mcp:remote``, each with their own
  token from the environment: ``REMOTE_TOKEN_ALICE`` for alice (`EnvCredentials`).

The user comes from the Agent Server (``runtime.user``) for every run; reads of state and
schemas get the same graph for everyone, without tools, and connect to nothing.
"""

from __future__ import annotations

import os
import sys

from mcpbridge import EnvCredentials, HttpServer, StdioServer, agent_factory
from mcpbridge.scoping import Scoped, ToolFilter, UserContext, UserServers, has_permission
from mcpbridge.testing import load_chat_model

echo = StdioServer(name="echo", command=sys.executable, args=["-m", "mcpbridge.testing.echo"], prefix="echo")
remote = HttpServer(
    name="remote", url=os.environ.get("ECHO_URL", "http://127.0.0.1:8765/mcp"), prefix="remote"
)


def tools_of(user: UserContext) -> ToolFilter | None:
    """Users without ``mcp:admin`` do not get ``echo_add``."""
    return None if "mcp:admin" in user.permissions else ToolFilter(deny=["echo_add"])


servers = UserServers(
    [
        echo,
        Scoped(
            remote,
            when=has_permission("mcp:remote"),
            credentials=EnvCredentials({"remote": "REMOTE_TOKEN_{user.identity}"}),
        ),
    ],
    tools=tools_of,
)

make_graph = agent_factory(servers, load_chat_model())
"""The factory for ``langgraph.json``: each run's MCP tools come from its user."""
