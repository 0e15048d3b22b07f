"""The deployment's OAuth routes: the callback authorization servers redirect to, and disconnecting.

`oauth_routes` makes Starlette routes for the Agent Server's custom HTTP app
(``http.app`` in ``langgraph.json``), or any Starlette app. The callback needs no
bearer credential: its ``state`` authenticates it (`OAuthFlow.complete`); it
stores the tokens and answers a small page holding no secret, or 400 with the
refusal's reason, storing nothing. Listing and disconnecting the user's servers
need the request's user, which the deployment's own authentication provides.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, cast
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from mcpbridge._oauth_flow import OAuthFlow
from mcpbridge._oauth_tokens import TokenStore
from mcpbridge.errors import ConfigError, OAuthError

__all__ = ["DEFAULT_PREFIX", "Identify", "oauth_routes", "request_identity"]

logger = logging.getLogger("mcpbridge")

DEFAULT_PREFIX: Final = "/mcpbridge/oauth"
"""Where `oauth_routes` serves by default: ``<prefix>/callback``, ``/connections``, ``/disconnect``."""

Identify = Callable[[Request], Awaitable[str | None]]
"""Finds the identity of a request's authenticated user; ``None`` when it has none."""

_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the callback's URL holds the code and the state
    "Content-Security-Policy": "default-src 'none'",
    "X-Content-Type-Options": "nosniff",
}


async def request_identity(request: Request) -> str | None:
    """The identity of the user the app's authentication middleware set on ``request``, if authenticated.

    The Agent Server's custom auth sets it on custom routes when ``langgraph.json`` has
    ``"http": {"enable_custom_route_auth": true}`` (a user with ``identity``); Starlette's
    ``AuthenticationMiddleware`` sets it elsewhere (``identity``, else ``username``).
    """
    user: Any = request.scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    identity = getattr(user, "identity", None) or getattr(user, "username", None)
    return identity if isinstance(identity, str) and identity else None


def oauth_routes(
    flow: OAuthFlow,
    tokens: TokenStore,
    *,
    prefix: str = DEFAULT_PREFIX,
    identify: Identify = request_identity,
) -> list[Route]:
    """The routes completing users' authorizations and disconnecting their servers.

    - ``GET <prefix>/callback``: the authorization server's redirect. Completes the flow from
      the query (the ``state`` authenticates it; when the request also has a user of its own,
      it must be the one who started it), keeps the tokens, answers a page saying the user
      can return to the chat. A refusal answers 400 with its `OAuthError.reason`, storing nothing.
    - ``GET <prefix>/connections``: the servers the request's user has tokens for (JSON).
    - ``POST <prefix>/disconnect`` with ``{"server": name}`` or ``{"server_url": url}``: revokes the
      user's tokens at the authorization server and deletes them.

    The last two answer 401 to a request without a user (`identify`).

    Args:
        flow: The flow; its ``redirect_uri`` must be the callback's URL.
        tokens: Where the tokens are kept.
        prefix: The routes' common path.
        identify: How to find the request's user.

    Raises:
        ConfigError: The flow's ``redirect_uri`` is not ``<prefix>/callback``.

    Example:
        ```python
        app = Starlette(routes=oauth_routes(flow, TokenStore(store, KeyRing.from_env())))
        ```
    """
    callback_path = f"{prefix.rstrip('/')}/callback"
    if urlsplit(flow.settings.redirect_uri).path != callback_path:
        raise ConfigError(
            f"the OAuth redirect_uri must point at the callback route ({callback_path}); "
            "change the redirect_uri or the routes' prefix",
            field="redirect_uri",
        )

    async def callback(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            done = await flow.complete(user=await identify(request), params=params)
        except OAuthError as exc:
            return _page(400, "Authorization refused", f"{exc} ({exc.reason})", reason=exc.reason)
        await tokens.put(done.user, done.server, done.server_url, done.tokens)
        return _page(
            200,
            f"{done.server} is connected",
            f"The MCP server {done.server!r} is authorized. You can return to the chat and resume.",
        )

    async def connections(request: Request) -> Response:
        user = await identify(request)
        if user is None:
            return _unauthenticated()
        found = await tokens.connections(user)
        return JSONResponse(
            [{"server": c.server, "server_url": c.server_url, "issuer": c.issuer} for c in found],
            headers=_HEADERS,
        )

    async def disconnect(request: Request) -> Response:
        user = await identify(request)
        if user is None:
            return _unauthenticated()
        try:
            body: Any = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        fields = cast(dict[str, object], body) if isinstance(body, dict) else {}
        name, url = fields.get("server"), fields.get("server_url")
        wrong = not isinstance(name, str | None) or not isinstance(url, str | None)
        if wrong or (name is None) == (url is None):
            return JSONResponse(
                {"detail": 'send {"server": name} or {"server_url": url}'}, status_code=400, headers=_HEADERS
            )
        known = [c for c in await tokens.connections(user) if c.server == name or c.server_url == url]
        if not known:
            detail = {"detail": "no tokens for that server", "disconnected": False}
            return JSONResponse(detail, status_code=404, headers=_HEADERS)
        answer: dict[str, Any] = {"server": known[0].server, "disconnected": True, "revoked": True}
        for connection in known:
            try:
                await tokens.disconnect(
                    flow, user=user, server=connection.server, server_url=connection.server_url
                )
            except OAuthError as exc:
                answer.update(revoked=False, reason=exc.reason)
        return JSONResponse(answer, headers=_HEADERS)

    base = prefix.rstrip("/")
    return [
        Route(callback_path, callback, methods=["GET"], name="mcpbridge_oauth_callback"),
        Route(f"{base}/connections", connections, methods=["GET"], name="mcpbridge_oauth_connections"),
        Route(f"{base}/disconnect", disconnect, methods=["POST"], name="mcpbridge_oauth_disconnect"),
    ]


def _unauthenticated() -> Response:
    return JSONResponse(
        {"detail": "authenticate as the user whose servers these are"},
        status_code=401,
        headers={**_HEADERS, "WWW-Authenticate": "Bearer"},
    )


def _page(status: int, title: str, text: str, *, reason: str | None = None) -> Response:
    body = (
        '<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        "<body><h1>{title}</h1><p>{text}</p>{reason}</body></html>"
    ).format(
        title=html.escape(title),
        text=html.escape(text),
        reason="" if reason is None else f'<p id="reason">{html.escape(reason)}</p>',
    )
    return HTMLResponse(body, status_code=status, headers=_HEADERS)
