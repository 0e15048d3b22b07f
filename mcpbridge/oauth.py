"""Per-user OAuth for remote MCP servers: discovery, registration, and the split authorization flow.

A run that finds its user without a token for an OAuth-protected server starts
an authorization (`OAuthFlow.start`) and shows the user its URL; the
authorization server sends the user's browser back to the deployment's
callback, a different request, which completes it (`OAuthFlow.complete`) with
the ``state`` as its only credential: bound to the user, the server and an
expiry, and used once. Every URL the flow fetches passes the deployment's
`mcpbridge.UrlPolicy`. The tokens are kept sealed per user and server in a
`TokenStore`, which refreshes them once however many runs need them; `oauth_routes`
serves the callback and "disconnect this server" in the deployment's HTTP app;
`authorization_node` asks for the missing authorizations in `graph_factory` graphs.
See the OAuth guide.
"""

from __future__ import annotations

from mcpbridge._oauth_discovery import Discovery
from mcpbridge._oauth_flow import AuthorizationRequest, Authorized, OAuthFlow, OAuthSettings, Tokens
from mcpbridge._oauth_routes import oauth_routes, request_identity
from mcpbridge._oauth_run import OAuthCredentials
from mcpbridge._oauth_sealing import KEYS_ENV, KeyRing
from mcpbridge._oauth_state import (
    ClientRegistry,
    OAuthClient,
    PendingAuthorization,
    StateStore,
    StoreClientRegistry,
    StoreStateStore,
)
from mcpbridge._oauth_tokens import RESERVED_NAMESPACE, Connection, TokenStore, reserved
from mcpbridge.factory import authorization_node

__all__ = [
    "AuthorizationRequest",
    "Authorized",
    "ClientRegistry",
    "Connection",
    "Discovery",
    "KEYS_ENV",
    "KeyRing",
    "OAuthClient",
    "OAuthCredentials",
    "OAuthFlow",
    "OAuthSettings",
    "PendingAuthorization",
    "RESERVED_NAMESPACE",
    "StateStore",
    "StoreClientRegistry",
    "StoreStateStore",
    "TokenStore",
    "Tokens",
    "authorization_node",
    "oauth_routes",
    "request_identity",
    "reserved",
]
