"""The example deployment's OAuth: one optional MCP server protected by OAuth, its flow and token store.

Enabled when ``MCPBRIDGE_DEMO_OAUTH_URL`` names the protected server's URL (``python -m
examples.serve_demo`` starts one, with a real authorization server, when Node.js and npm are
on the machine). Imported by its module name (``examples.oauth``) from both the graph
(``examples/agent.py``) and the HTTP app (``examples/oauth_app.py``), so that both see the
one store: the pending authorization a run keeps is what the callback takes, and the tokens
the callback keeps are what the next run reads.

- ``MCPBRIDGE_DEMO_OAUTH_REDIRECT_URI``: the Agent Server's callback URL (default
  ``http://127.0.0.1:2024/mcpbridge/oauth/callback``).
- ``MCPBRIDGE_OAUTH_KEYS``: the key ring sealing the tokens (`mcpbridge.oauth.KeyRing`).
- ``MCPBRIDGE_ALLOWED_HOSTS``: hosts the flow may reach besides public https ones
  (``127.0.0.1:*`` for an authorization server on this machine).

The store is this process's memory, which ``langgraph dev`` (one process) shares between the
graph and the app; a deployment with several workers gives both a store over its database.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Final

from langgraph.store.memory import InMemoryStore

from mcpbridge import HttpServer, UrlPolicy
from mcpbridge.oauth import (
    KeyRing,
    OAuthCredentials,
    OAuthFlow,
    OAuthSettings,
    StoreClientRegistry,
    StoreStateStore,
    TokenStore,
)

URL_ENV: Final = "MCPBRIDGE_DEMO_OAUTH_URL"
REDIRECT_URI_ENV: Final = "MCPBRIDGE_DEMO_OAUTH_REDIRECT_URI"
DEFAULT_REDIRECT_URI: Final = "http://127.0.0.1:2024/mcpbridge/oauth/callback"
ALLOWED_HOSTS_ENV: Final = "MCPBRIDGE_ALLOWED_HOSTS"
SERVER: Final = "oauth"
"""The protected server's name (its tools are ``oauth_*``)."""


def enabled() -> bool:
    """Whether the deployment has an OAuth-protected server (``MCPBRIDGE_DEMO_OAUTH_URL`` is set)."""
    return bool(os.environ.get(URL_ENV, "").strip())


@cache
def deployment() -> tuple[OAuthFlow, TokenStore]:
    """The flow and the token store, over one store; made once per process."""
    store = InMemoryStore()
    hosts = [h for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h]
    settings = OAuthSettings(
        redirect_uri=os.environ.get(REDIRECT_URI_ENV, "").strip() or DEFAULT_REDIRECT_URI,
        url_policy=UrlPolicy(allow=hosts),
        client_name="mcpbridge demo",
    )
    flow = OAuthFlow(settings, states=StoreStateStore(store), clients=StoreClientRegistry(store))
    return flow, TokenStore(store, KeyRing.from_env())


def server() -> HttpServer:
    """The protected server: optional, so a run goes on without it until its user authorizes."""
    return HttpServer(
        name=SERVER, url=os.environ[URL_ENV].strip(), prefix=SERVER, required=False, connect_timeout=5
    )


def credentials() -> OAuthCredentials:
    """Each user's own tokens for the protected server; a user without them is asked to authorize."""
    flow, tokens = deployment()
    return OAuthCredentials(flow, tokens, servers=[SERVER])
