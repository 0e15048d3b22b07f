"""A run's side of OAuth: send the user's access token, refresh it once on a 401, or ask them to authorize.

`OAuthCredentials` is a credential provider: for a server it covers, it gives the
run an ``httpx2.Auth`` that sends the user's access token from the `TokenStore`,
and on a 401 has the store refresh it once (``usable(..., rejected=token)``) and
retries. A user with no usable tokens gets the server refused for that run with
an `OAuthError` (``authorization_needed``) carrying a fresh authorization URL;
the agent's `BridgeMiddleware` turns every such refusal of a run into one
interrupt (a URL-mode input request). The URL is never logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Collection
from typing import Any

import httpx2
from pydantic import SecretStr

from mcpbridge._access import UserContext
from mcpbridge._oauth_flow import OAuthFlow
from mcpbridge._oauth_tokens import TokenStore
from mcpbridge.config import HttpServer, ServerConfig, SseServer
from mcpbridge.credentials import Credentials
from mcpbridge.errors import OAuthError, ServerRefusedError, UsageError

__all__ = ["OAuthCredentials"]

logger = logging.getLogger("mcpbridge")


class OAuthCredentials:
    """Each user's OAuth tokens for the HTTP servers a deployment protects with OAuth.

    Give it as the credential provider of those servers (`mcpbridge.scoping.Scoped`,
    `mcpbridge.scoping.UserServers`). A user with no usable tokens has the server refused
    for the run, with an authorization URL the agent's middleware shows them in an interrupt.

    Args:
        flow: The deployment's flow (starts authorizations, refreshes tokens).
        tokens: Where users' tokens are kept (one per process).
        servers: Only these servers (by name) use OAuth (``None``: every HTTP server it is given).

    Example:
        ```python
        oauth = OAuthCredentials(flow, TokenStore(store, KeyRing.from_env()))
        UserServers([Scoped(HttpServer(name="linear", url=LINEAR), credentials=oauth)])
        ```
    """

    def __init__(
        self, flow: OAuthFlow, tokens: TokenStore, *, servers: Collection[str] | None = None
    ) -> None:
        self.flow = flow
        self.tokens = tokens
        self.servers = None if servers is None else frozenset(servers)

    def __repr__(self) -> str:
        return f"OAuthCredentials(tokens={self.tokens!r})"

    async def __call__(self, user: UserContext, server: ServerConfig) -> Credentials | None:
        """An ``Authorization`` for ``user`` at ``server``.

        Raises:
            OAuthError: ``authorization_needed``, with ``authorization_url``: the user has no usable
                tokens; ``refresh`` or a flow failure: the authorization could not be started.
            ServerRefusedError: The run has no authenticated user.
        """
        if self.servers is not None and server.name not in self.servers:
            return None
        if not isinstance(server, HttpServer | SseServer):
            return None
        if not user.authenticated or not user.identity:
            raise ServerRefusedError(
                f"MCP server {server.name!r} is protected by OAuth and the run has no authenticated user",
                server=server.name,
            )
        identity, url = user.identity, server.url
        try:
            tokens = await self.tokens.usable(self.flow, user=identity, server=server.name, server_url=url)
        except OAuthError as exc:
            if exc.reason != "authorization_needed":
                raise
            request = await self.flow.start(user=identity, server=server.name, server_url=url)
            raise OAuthError(
                str(exc), server=server.name, reason=exc.reason, authorization_url=request.url
            ) from None
        auth = _TokenAuth(self, user=identity, server=server.name, server_url=url, access=tokens.access_token)
        return Credentials(auth=auth, principal=f"oauth:{tokens.issuer}")


class _TokenAuth(httpx2.Auth):
    """Sends the user's access token; on a 401, has it refreshed once and sends the request again."""

    def __init__(
        self, owner: OAuthCredentials, *, user: str, server: str, server_url: str, access: SecretStr
    ) -> None:
        self._owner = owner
        self._user = user
        self._server = server
        self._server_url = server_url
        self._access = access

    def __repr__(self) -> str:
        return f"_TokenAuth(server={self._server!r}, user={self._user!r})"

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        sent = self._access
        request.headers["Authorization"] = f"Bearer {sent.get_secret_value()}"
        response = yield request
        if response.status_code != 401:
            return
        owner = self._owner
        tokens = await owner.tokens.usable(
            owner.flow, user=self._user, server=self._server, server_url=self._server_url, rejected=sent
        )
        self._access = tokens.access_token
        logger.debug(
            "MCP server %r refused the access token of %r: sending a refreshed one", self._server, self._user
        )
        request.headers["Authorization"] = f"Bearer {tokens.access_token.get_secret_value()}"
        yield request

    def sync_auth_flow(self, request: httpx2.Request) -> Any:
        msg = "OAuth tokens are sent by the async client only"
        raise UsageError(msg)
