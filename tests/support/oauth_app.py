"""A deployment's OAuth routes for the tests: ``http.app`` and ``auth`` of a ``langgraph.json``.

The app serves `mcpbridge.oauth.oauth_routes` (callback, connections, disconnect)
and, for the tests only, ``POST /tests/oauth/start`` (starts an authorization for
the request's user, as a run will) and ``GET /tests/oauth/sealed`` (the request's
user's raw token entries, still sealed, for the test to open with its key). The
auth is the example's fixed bearer tokens, with the callback let through without
one, as the OAuth guide describes. Configured by the environment:
``MCPBRIDGE_TEST_REDIRECT_URI``, ``MCPBRIDGE_OAUTH_KEYS``.
"""

from __future__ import annotations

import os
from typing import Any

from langgraph.store.memory import InMemoryStore
from langgraph_sdk import Auth
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcpbridge import UrlPolicy
from mcpbridge.oauth import (
    KeyRing,
    OAuthFlow,
    OAuthSettings,
    StoreClientRegistry,
    StoreStateStore,
    TokenStore,
    oauth_routes,
    request_identity,
)

CALLBACK = "/mcpbridge/oauth/callback"
USERS = {"alice-token": "alice", "bob-token": "bob"}

store = InMemoryStore()
settings = OAuthSettings(
    redirect_uri=os.environ["MCPBRIDGE_TEST_REDIRECT_URI"], url_policy=UrlPolicy(allow=["127.0.0.1:*"])
)
flow = OAuthFlow(settings, states=StoreStateStore(store), clients=StoreClientRegistry(store))
tokens = TokenStore(store, KeyRing.from_env())


async def start(request: Request) -> Response:
    user = await request_identity(request)
    if user is None:
        return JSONResponse({"detail": "unauthenticated"}, status_code=401)
    body: dict[str, Any] = await request.json()
    started = await flow.start(user=user, server=body["server"], server_url=body["server_url"])
    return JSONResponse({"url": started.url})


async def sealed(request: Request) -> Response:
    user = await request_identity(request)
    if user is None:
        return JSONResponse({"detail": "unauthenticated"}, status_code=401)
    items = await store.asearch(("mcpbridge", "oauth", "tokens", user))
    return JSONResponse([item.value for item in items])


app = Starlette(
    routes=[
        *oauth_routes(flow, tokens),
        Route("/tests/oauth/start", start, methods=["POST"]),
        Route("/tests/oauth/sealed", sealed, methods=["GET"]),
    ]
)

auth = Auth()


@auth.authenticate
async def authenticate(path: str, authorization: str | None) -> Auth.types.MinimalUserDict:
    """Bearer tokens as in the example; the OAuth callback goes by its ``state`` alone."""
    if path == CALLBACK:
        return {"identity": "", "is_authenticated": False}
    scheme, _, token = (authorization or "").partition(" ")
    user = USERS.get(token.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail="unknown token")
    return {"identity": user, "is_authenticated": True}
