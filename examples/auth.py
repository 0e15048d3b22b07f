"""Custom Agent Server auth for the example: fixed bearer tokens, users own their threads.

Named in ``langgraph.json`` as ``./examples/auth.py:auth``. Every request needs
``Authorization: Bearer <token>`` with one of the tokens below; anything else is
answered 401. ``disable_studio_auth`` is set in ``langgraph.json``, so the
LangSmith Studio shortcut of ``langgraph dev`` does not bypass the tokens either.

Authorization:

- **Threads** (and the runs on them) belong to the user who created them: a new
  thread is stamped ``metadata.owner = <identity>`` and every thread action is
  filtered to the caller's own threads, so another user gets 404.
- **Store** items live under the caller's identity as first namespace label.
- **Assistants** are shared: every authenticated user may use and manage them
  (the graph's default assistant belongs to no one).
- **Crons** are refused (403): the example has no use for them, and a cron's
  runs would belong to no one.

The user's ``permissions`` reach the graph factory as ``runtime.user.permissions``;
``examples/agent.py`` connects the ``remote`` MCP server only for users holding
``mcp:remote``, and offers the ``*_crash`` tools only to users holding ``mcp:admin``.
Users' own MCP servers and credentials live in their store namespace. The user's
identity is sent to MCP servers in each call's ``_meta`` (``dev.mcpbridge/user_id``).

These tokens are for demonstration only; a real deployment verifies a signed
token (JWT, OAuth introspection) instead of looking it up in a table.
"""

from __future__ import annotations

from typing import Any, cast

from langgraph_sdk import Auth

USERS: dict[str, Auth.types.MinimalUserDict] = {
    "alice-token": {"identity": "alice", "permissions": ["mcp:local", "mcp:remote", "mcp:admin"]},
    "bob-token": {"identity": "bob", "permissions": ["mcp:local"]},
}
"""Bearer token -> user. Alice may use both MCP servers and every tool, Bob only the local one
and not its ``crash`` tool."""

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    """Map the bearer token to its user; 401 for a missing, malformed or unknown token."""
    scheme, _, token = (authorization or "").partition(" ")
    user = USERS.get(token.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise Auth.exceptions.HTTPException(
            status_code=401,
            detail="Send 'Authorization: Bearer <token>' with a known token (e.g. alice-token).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return {**user, "is_authenticated": True}


@auth.on.threads
async def own_threads(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType:
    """Stamp new threads (and runs) with their owner, and show each user only their own threads."""
    if ctx.action in ("create", "create_run") and isinstance(value, dict):
        fields = cast(dict[str, Any], value)
        metadata = fields.get("metadata")
        if not isinstance(metadata, dict):
            metadata = fields["metadata"] = {}
        cast(dict[str, Any], metadata)["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.store
async def own_namespace(ctx: Auth.types.AuthContext, value: Any) -> None:
    """Keep each user's store items under their identity."""
    namespace = tuple(value.get("namespace") or ())
    if not namespace or namespace[0] != ctx.user.identity:
        value["namespace"] = (ctx.user.identity, *namespace)


@auth.on.assistants
async def shared_assistants(ctx: Auth.types.AuthContext, value: Any) -> None:
    """Every authenticated user may use the assistants."""


@auth.on.crons
async def no_crons(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """No scheduled runs in this example."""
    return False
