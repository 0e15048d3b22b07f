"""The example deployment's HTTP app (``http.app`` in ``langgraph.json``): mcpbridge's OAuth routes.

``GET /mcpbridge/oauth/callback`` (where the authorization server sends the user's browser
back; its ``state`` authenticates it, so ``examples/auth.py`` lets it through without a
bearer token), ``GET /mcpbridge/oauth/connections`` and ``POST /mcpbridge/oauth/disconnect``
(for the request's user, authenticated by ``examples/auth.py`` through
``enable_custom_route_auth``). Without an OAuth-protected server (``MCPBRIDGE_DEMO_OAUTH_URL``
unset) the app serves nothing.
"""

from __future__ import annotations

from starlette.applications import Starlette

from examples import oauth
from mcpbridge.oauth import oauth_routes

app = Starlette(routes=oauth_routes(*oauth.deployment()) if oauth.enabled() else [])
