"""Custom Agent Server auth for the example: fixed bearer tokens, users own their threads.

Named in ``langgraph.json`` as ``./examples/auth.py:auth``. Every request needs
``Authorization: Bearer <token>`` with one of the tokens below; anything else is
answered 401. ``disable_studio_auth`` is set in ``langgraph.json``, so the
LangSmith Studio shortcut of ``langgraph dev`` does not bypass the tokens either.
The custom routes of ``examples/oauth_app.py`` go through this auth too
(``enable_custom_route_auth``), except mcpbridge's OAuth callback
(`CALLBACK_PATH`): the authorization server's redirect carries no bearer token,
and its ``state`` authenticates it.

Authorization:

- **Threads** (and the runs on them) belong to the user who created them: every
  thread write (create, update, a run's creation) is stamped
  ``metadata.owner = <identity>``, so no request can set another owner, and
  every thread action is filtered to the caller's own threads, so another user
  gets 404 (a copy keeps its original's metadata, and only the owner may read
  the original). A thread's owner never changes.
- **Store** items live under the caller's identity as first namespace label. The
  namespace mcpbridge keeps OAuth tokens, pending authorizations and client
  registrations in (``mcpbridge.oauth.RESERVED_NAMESPACE``) and the one it keeps the
  users' daily sampling budgets in (``mcpbridge.sampling.BUDGET_NAMESPACE``) are refused
  (403) to every user, a user whose identity would lead there included.
- **Assistants** are shared for reading: every authenticated user may read,
  search and run them (the graph's default assistant belongs to no one).
  Creating, updating and deleting an assistant needs the ``assistants:write``
  permission (alice holds it, bob does not), since an assistant's config
  applies to every user's runs.
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

from mcpbridge.oauth import RESERVED_NAMESPACE, reserved
from mcpbridge.sampling import BUDGET_NAMESPACE, reserved_budget

CALLBACK_PATH = "/mcpbridge/oauth/callback"
"""mcpbridge's OAuth callback route (``examples/oauth_app.py``), let through without a bearer token."""

USERS: dict[str, Auth.types.MinimalUserDict] = {
    "alice-token": {
        "identity": "alice",
        "permissions": ["mcp:local", "mcp:remote", "mcp:admin", "assistants:write"],
    },
    "bob-token": {"identity": "bob", "permissions": ["mcp:local"]},
}
"""Bearer token -> user. Alice may use both MCP servers and every tool, and manage the
assistants; Bob only the local server, not its ``crash`` tool, and may not change assistants."""

ASSISTANTS_WRITE = "assistants:write"
"""The permission to create, update and delete assistants (shared by every user)."""
OWNER = "owner"
"""The thread metadata key holding the identity of the thread's owner."""
_ASSISTANT_WRITES = frozenset({"create", "update", "delete"})

auth = Auth()


@auth.authenticate
async def authenticate(path: str, authorization: str | None) -> Auth.types.MinimalUserDict:
    """Map the bearer token to its user; 401 for a missing, malformed or unknown token.

    The OAuth callback gets an unauthenticated user: its ``state`` says whose authorization it completes.
    """
    if path == CALLBACK_PATH:
        return {"identity": "", "is_authenticated": False}
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
    """Stamp the caller as owner on every thread write, and show each user only their own threads.

    The stamp goes into the request's own ``metadata`` (changed in place: the server
    keeps its reference to it), so a caller-supplied ``owner`` is overwritten: a
    thread can neither be created for nor handed to another user. The filter makes
    every action (reads, updates, runs, copies, deletes) see only the caller's threads;
    a copy (``create`` without metadata here) keeps the metadata of the original,
    which the filter allows to its owner only.
    """
    if ctx.action in ("create", "update", "create_run") and isinstance(value, dict):
        _stamp_owner(cast(dict[str, Any], value), ctx.user.identity)
    return {OWNER: ctx.user.identity}


def _stamp_owner(value: dict[str, Any], identity: str) -> None:
    metadata = value.get("metadata")
    if isinstance(metadata, dict):
        cast(dict[str, Any], metadata)[OWNER] = identity
    else:
        value["metadata"] = {OWNER: identity}


@auth.on.store
async def own_namespace(ctx: Auth.types.AuthContext, value: Any) -> None:
    """Keep each user's store items under their identity; mcpbridge's records are nobody's."""
    namespace = tuple(value.get("namespace") or ())
    if not namespace or namespace[0] != ctx.user.identity:
        namespace = (ctx.user.identity, *namespace)
        value["namespace"] = namespace
    for taken, is_reserved in ((RESERVED_NAMESPACE, reserved), (BUDGET_NAMESPACE, reserved_budget)):
        if is_reserved(namespace):
            raise Auth.exceptions.HTTPException(
                status_code=403,
                detail=f"The store namespace {'/'.join(taken)} is reserved for the deployment.",
            )


@auth.on.assistants
async def shared_assistants(ctx: Auth.types.AuthContext, value: Any) -> None:
    """Every authenticated user may read, search and run the assistants; writes need ``assistants:write``."""
    if ctx.action in _ASSISTANT_WRITES and ASSISTANTS_WRITE not in ctx.permissions:
        raise Auth.exceptions.HTTPException(
            status_code=403,
            detail=f"Changing assistants needs the {ASSISTANTS_WRITE!r} permission, which this user "
            "does not hold; ask the deployment's administrator, or use the existing assistants.",
        )


@auth.on.crons
async def no_crons(ctx: Auth.types.AuthContext, value: Any) -> bool:
    """No scheduled runs in this example."""
    return False
