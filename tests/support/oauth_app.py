"""The example deployment's HTTP app with one route more, for the tests: ``http.app`` of a ``langgraph.json``.

It serves what ``examples/oauth_app.py`` serves (mcpbridge's callback, connections and
disconnect routes, over the flow and token store of ``examples.oauth``) and, for the
tests only, ``GET /tests/oauth/sealed``: the request's user's raw token entries, still
sealed, for the test to open with its key. Configured as the example is
(``MCPBRIDGE_DEMO_OAUTH_URL``, ``MCPBRIDGE_DEMO_OAUTH_REDIRECT_URI``, ``MCPBRIDGE_OAUTH_KEYS``);
its auth is the example's (``examples/auth.py``).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from examples import oauth
from mcpbridge.oauth import oauth_routes, request_identity

flow, tokens = oauth.deployment()


async def sealed(request: Request) -> Response:
    user = await request_identity(request)
    if user is None:
        return JSONResponse({"detail": "unauthenticated"}, status_code=401)
    items = await tokens.store.asearch(("mcpbridge", "oauth", "tokens", user))
    return JSONResponse([item.value for item in items])


app = Starlette(routes=[*oauth_routes(flow, tokens), Route("/tests/oauth/sealed", sealed, methods=["GET"])])
