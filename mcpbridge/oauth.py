"""Per-user OAuth for remote MCP servers: discovery, registration, and the split authorization flow.

A run that finds its user without a token for an OAuth-protected server starts
an authorization (`OAuthFlow.start`) and shows the user its URL; the
authorization server sends the user's browser back to the deployment's
callback, a different request, which completes it (`OAuthFlow.complete`) with
the ``state`` as its only credential: bound to the user, the server and an
expiry, and used once. Every URL the flow fetches passes the deployment's
`mcpbridge.UrlPolicy`. See the OAuth guide.
"""

from __future__ import annotations

from mcpbridge._oauth_discovery import Discovery
from mcpbridge._oauth_flow import AuthorizationRequest, Authorized, OAuthFlow, OAuthSettings, Tokens
from mcpbridge._oauth_state import (
    ClientRegistry,
    OAuthClient,
    PendingAuthorization,
    StateStore,
    StoreClientRegistry,
    StoreStateStore,
)

__all__ = [
    "AuthorizationRequest",
    "Authorized",
    "ClientRegistry",
    "Discovery",
    "OAuthClient",
    "OAuthFlow",
    "OAuthSettings",
    "PendingAuthorization",
    "StateStore",
    "StoreClientRegistry",
    "StoreStateStore",
    "Tokens",
]
