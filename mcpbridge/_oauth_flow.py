"""The authorization code flow with PKCE, split between a run and a later callback request.

`OAuthFlow.start` discovers the server's authorization server, picks the client
in the MCP specification's order (a client the deployment configured, a Client
ID Metadata Document URL, dynamic registration), keeps a `PendingAuthorization`
under a fresh ``state`` and returns the authorization URL (PKCE S256, ``state``,
``resource``). `OAuthFlow.complete`, called from the callback with its query,
takes the pending record (once), checks user, expiry and ``iss`` (RFC 9207),
and exchanges the code. `OAuthFlow.refresh` uses a refresh token. Nothing is
stored by a refused step. Tokens are `Tokens` values (secrets as ``SecretStr``);
keeping them is the caller's.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import quote, urlencode

import httpx2
from mcp.client.auth.exceptions import OAuthRegistrationError
from mcp.client.auth.oauth2 import PKCEParameters, check_registration_usable
from mcp.client.auth.utils import handle_registration_response, is_valid_client_metadata_url, issuers_match
from mcp.shared.auth import OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl, SecretStr, ValidationError

from mcpbridge._oauth_discovery import Discovery, OAuthHttp, discover
from mcpbridge._oauth_state import ClientRegistry, OAuthClient, PendingAuthorization, StateStore
from mcpbridge.config import safe_url
from mcpbridge.errors import ConfigError, OAuthError
from mcpbridge.urlpolicy import UrlPolicy

__all__ = ["AuthorizationRequest", "Authorized", "OAuthFlow", "OAuthSettings", "Tokens"]

logger = logging.getLogger("mcpbridge")

_GRANT_TYPES: Final = ["authorization_code", "refresh_token"]


@dataclass(frozen=True, slots=True)
class OAuthSettings:
    """How a deployment authorizes its users at remote MCP servers' authorization servers.

    Attributes:
        redirect_uri: The deployment's callback URL, where authorization servers send users back.
        clients: Clients the deployment registered beforehand, per authorization server (used first).
        client_metadata_url: The https URL where the deployment serves its Client ID Metadata
            Document; used as the client id by servers that support it (before dynamic registration).
        dynamic_registration: Register a client (RFC 7591) where neither of the above applies.
        client_name: The name dynamic registration gives the client (shown on consent screens).
        url_policy: The policy every URL the flow fetches, and every address it connects to, must pass.
        state_ttl: Seconds a user has to complete an authorization.
        timeout: Seconds for each request to an authorization server.

    Example:
        ```python
        OAuthSettings(redirect_uri="https://agents.example.com/mcpbridge/oauth/callback")
        ```
    """

    redirect_uri: str
    clients: Sequence[OAuthClient] = ()
    client_metadata_url: str | None = None
    dynamic_registration: bool = True
    client_name: str = "mcpbridge"
    url_policy: UrlPolicy = UrlPolicy()
    state_ttl: float = 600.0
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.client_metadata_url is not None and not is_valid_client_metadata_url(
            self.client_metadata_url
        ):
            raise ConfigError(
                "client_metadata_url must be an https URL with a path (where the deployment serves "
                "its Client ID Metadata Document)",
                field="client_metadata_url",
            )


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Where to send a user to authorize a server.

    Attributes:
        server: The MCP server's name.
        url: The authorization URL (holds the ``state``: show it to its user only).
        expires_at: When the callback stops being accepted (seconds since the epoch).
    """

    server: str
    url: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Authorized:
    """A completed authorization: whose, for which server, and the tokens.

    Attributes:
        user: The user who started it.
        server: The MCP server's name.
        server_url: Its URL.
        tokens: The tokens the authorization server issued.
    """

    user: str
    server: str
    server_url: str
    tokens: Tokens


@dataclass(frozen=True, slots=True)
class Tokens:
    """A user's tokens for one resource, from one authorization server.

    Attributes:
        access_token: The access token.
        refresh_token: The refresh token, if one was issued.
        expires_at: When the access token expires (seconds since the epoch), if said.
        scope: The scope granted, if said.
        token_type: The token type (``Bearer``).
        issuer: The authorization server's issuer.
        resource: The resource the tokens are for.
        client_id: The client they were issued to.
        token_endpoint: Where they are refreshed.
        revocation_endpoint: Where they are revoked, if the authorization server has one.
    """

    access_token: SecretStr
    refresh_token: SecretStr | None
    expires_at: float | None
    scope: str | None
    token_type: str
    issuer: str
    resource: str
    client_id: str
    token_endpoint: str
    revocation_endpoint: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The tokens as JSON, secrets in clear: for sealing (`TokenStore`), never for a log or state."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["access_token"] = self.access_token.get_secret_value()
        data["refresh_token"] = None if self.refresh_token is None else self.refresh_token.get_secret_value()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tokens:
        """The tokens `to_json` wrote.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not such a document.
        """
        refresh = data.get("refresh_token")
        expires_at = data.get("expires_at")
        return cls(
            access_token=SecretStr(str(data["access_token"])),
            refresh_token=None if refresh is None else SecretStr(str(refresh)),
            expires_at=None if expires_at is None else float(expires_at),
            scope=data.get("scope"),
            token_type=str(data.get("token_type", "Bearer")),
            issuer=str(data["issuer"]),
            resource=str(data["resource"]),
            client_id=str(data["client_id"]),
            token_endpoint=str(data["token_endpoint"]),
            revocation_endpoint=data.get("revocation_endpoint"),
        )

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        """Whether the access token expires within ``seconds`` (``False`` when no expiry was given)."""
        return (
            self.expires_at is not None and (time.time() if now is None else now) + seconds >= self.expires_at
        )


class OAuthFlow:
    """Authorize users at the authorization servers of remote MCP servers, in two steps.

    An async context manager owning its HTTP client. ``start`` runs where a run
    finds a user without a token; ``complete`` runs in the callback request.

    Args:
        settings: The deployment's OAuth settings.
        states: Where pending authorizations wait for their callback.
        clients: Where dynamically registered clients are kept (none: register each time).

    Example:
        ```python
        async with OAuthFlow(settings, states=StoreStateStore(store)) as flow:
            request = await flow.start(user="alice", server="linear", server_url=url)
            # ... alice's browser goes to request.url and comes back to the callback ...
            done = await flow.complete(user="alice", params=callback_query)
        ```
    """

    def __init__(
        self, settings: OAuthSettings, *, states: StateStore, clients: ClientRegistry | None = None
    ) -> None:
        self.settings = settings
        self.states = states
        self.clients = clients
        self._http = OAuthHttp(settings.url_policy, timeout=settings.timeout)

    async def __aenter__(self) -> OAuthFlow:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def discover(
        self, server_url: str, *, server: str, www_authenticate: str | None = None
    ) -> Discovery:
        """Read the server's protected resource metadata and its authorization server's metadata."""
        return await discover(self._http, server_url, server=server, www_authenticate=www_authenticate)

    async def client_for(self, discovery: Discovery) -> OAuthClient:
        """The client to use at ``discovery``'s authorization server, in the specification's order.

        A client the deployment configured for that issuer; else the Client ID Metadata
        Document URL, where the server supports it; else one registered dynamically (kept in
        ``clients``, reused).

        Raises:
            OAuthError: ``registration``: no way to get a client, or the registration failed.
        """
        issuer = discovery.issuer
        for client in self.settings.clients:
            if client.issuer is None or issuers_match(client.issuer, issuer):
                return client
        url = self.settings.client_metadata_url
        if url is not None and discovery.metadata.client_id_metadata_document_supported:
            return OAuthClient(
                client_id=url, token_endpoint_auth_method="none", registration="metadata_document"
            )
        endpoint = discovery.metadata.registration_endpoint
        if not self.settings.dynamic_registration or endpoint is None:
            raise OAuthError(
                f"MCP server {discovery.server!r}: its authorization server ({safe_url(issuer)}) supports no "
                "registration mcpbridge can do; configure a pre-registered client for it",
                server=discovery.server,
                reason="registration",
            )
        redirect_uri = self.settings.redirect_uri
        if self.clients is not None:
            known = await self.clients.get(issuer, redirect_uri)
            if known is not None:
                return known
        client = await self._register(discovery, str(endpoint))
        if self.clients is not None:
            await self.clients.put(issuer, redirect_uri, client)
        return client

    async def start(
        self, *, user: str, server: str, server_url: str, www_authenticate: str | None = None
    ) -> AuthorizationRequest:
        """Begin authorizing ``user`` at ``server``: keep a pending authorization, return its URL.

        Args:
            user: The user's identity (only their callback completes it).
            server: The MCP server's name.
            server_url: Its URL.
            www_authenticate: The ``WWW-Authenticate`` of its 401, when there was one.

        Raises:
            OAuthError: Discovery or registration failed, or the policy refused a URL.
        """
        discovery = await self.discover(server_url, server=server, www_authenticate=www_authenticate)
        client = await self.client_for(discovery)
        pkce = PKCEParameters.generate()
        state = secrets.token_urlsafe(32)
        expires_at = time.time() + self.settings.state_ttl
        pending = PendingAuthorization(
            user=user,
            server=server,
            server_url=server_url,
            resource=discovery.resource,
            issuer=discovery.issuer,
            iss_required=bool(discovery.metadata.authorization_response_iss_parameter_supported),
            token_endpoint=str(discovery.metadata.token_endpoint),
            revocation_endpoint=_optional(discovery.metadata.revocation_endpoint),
            client_id=client.client_id,
            redirect_uri=self.settings.redirect_uri,
            scope=discovery.scope,
            code_verifier=pkce.code_verifier,
            expires_at=expires_at,
        )
        params = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": self.settings.redirect_uri,
            "state": state,
            "code_challenge": pkce.code_challenge,
            "code_challenge_method": "S256",
            "resource": discovery.resource,
        }
        if discovery.scope:
            params["scope"] = discovery.scope
            if "offline_access" in discovery.scope.split():
                params["prompt"] = "consent"  # OpenID Connect grants offline access only with consent
        await self.states.put(state, pending)
        endpoint = str(discovery.metadata.authorization_endpoint)
        separator = "&" if "?" in endpoint else "?"
        return AuthorizationRequest(
            server=server, url=f"{endpoint}{separator}{urlencode(params)}", expires_at=expires_at
        )

    async def complete(self, *, user: str | None, params: Mapping[str, str]) -> Authorized:
        """Finish an authorization from its callback's query parameters.

        The pending authorization is taken (used up) first, whatever follows.

        Args:
            user: The identity the callback request was authenticated as (the deployment's
                session), which must be the user who started the authorization; ``None`` when
                the callback carries no identity of its own, the ``state`` alone binding the user.
            params: The callback's query (``code``, ``state``, ``iss``, or ``error``).

        Raises:
            OAuthError: ``state_missing``, ``state_unknown`` (forged or replayed), ``state_expired``,
                ``state_user`` (another user's), ``denied``, ``issuer_mismatch``, ``code_missing``,
                ``token`` (the exchange failed).
        """
        state = params.get("state")
        if not state:
            raise _refused("", "state_missing", "the callback has no state")
        pending = await self.states.take(state)
        if pending is None:
            raise _refused("", "state_unknown", "its state is unknown or was used already")
        server = pending.server
        if pending.expired():
            raise _refused(server, "state_expired", "it came after the authorization expired")
        if user is not None and not secrets.compare_digest(pending.user.encode(), user.encode()):
            logger.warning("OAuth callback for MCP server %r refused: started by another user", server)
            raise _refused(server, "state_user", "it belongs to an authorization another user started")
        if "error" in params:
            code = params["error"] if params["error"].replace("_", "").isalnum() else "an error"
            raise _refused(server, "denied", f"the authorization server answered {code}")
        iss = params.get("iss")
        if (iss is None and pending.iss_required) or (iss is not None and iss != pending.issuer):
            raise _refused(server, "issuer_mismatch", "it names another authorization server (iss)")
        code = params.get("code")
        if not code:
            raise _refused(server, "code_missing", "it carries no authorization code")
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.code_verifier,
            "resource": pending.resource,
        }
        client = await self._client(pending.issuer, pending.client_id)
        token = await self._token_request(pending.token_endpoint, data, client, server=server, reason="token")
        tokens = _tokens(
            token,
            pending.issuer,
            pending.resource,
            client.client_id,
            pending.token_endpoint,
            pending.revocation_endpoint,
        )
        if tokens.scope is None and pending.scope is not None:
            tokens = dataclasses.replace(tokens, scope=pending.scope)
        logger.info("MCP server %r: authorized for user %r", server, pending.user)
        return Authorized(user=pending.user, server=server, server_url=pending.server_url, tokens=tokens)

    async def refresh(self, tokens: Tokens, *, server: str) -> Tokens:
        """New tokens for ``tokens``' refresh token (the authorization server may rotate it).

        Raises:
            OAuthError: ``authorization_needed``: there is no refresh token, or the authorization server
                refused it or the client (the user authorizes again); ``refresh``: the authorization
                server could not be reached or failed (try again later).
        """
        if tokens.refresh_token is None:
            raise _refused(server, "authorization_needed", "there is no refresh token", what="The refresh")
        data = {
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token.get_secret_value(),
            "resource": tokens.resource,
        }
        client = await self._client(tokens.issuer, tokens.client_id)
        token = await self._token_request(
            tokens.token_endpoint, data, client, server=server, reason="refresh"
        )
        fresh = _tokens(
            token,
            tokens.issuer,
            tokens.resource,
            tokens.client_id,
            tokens.token_endpoint,
            tokens.revocation_endpoint,
        )
        return dataclasses.replace(
            fresh,
            refresh_token=fresh.refresh_token or tokens.refresh_token,  # not rotated: keep the old one
            scope=fresh.scope or tokens.scope,
        )

    async def revoke(self, tokens: Tokens, *, server: str) -> None:
        """Revoke ``tokens`` at the authorization server (RFC 7009): the refresh token, else the access token.

        Authorization servers commonly revoke the whole grant with it. Keeping no copy of
        ``tokens`` afterwards is the caller's.

        Raises:
            OAuthError: ``revoke``: the server has no revocation endpoint, or refused the request.
        """
        if tokens.revocation_endpoint is None:
            raise _refused(
                server, "revoke", "its authorization server has no revocation endpoint", what="The revocation"
            )
        if tokens.refresh_token is not None:
            data = {"token": tokens.refresh_token.get_secret_value(), "token_type_hint": "refresh_token"}
        else:
            data = {"token": tokens.access_token.get_secret_value(), "token_type_hint": "access_token"}
        client = await self._client(tokens.issuer, tokens.client_id)
        response = await self._post(
            tokens.revocation_endpoint,
            data,
            client,
            server=server,
            what="revocation_endpoint",
            reason="revoke",
        )
        if response.status_code != 200:
            raise _refused(
                server,
                "revoke",
                f"the authorization server answered HTTP {response.status_code}{_error_code(response)}",
                what="The revocation",
            )
        logger.info("MCP server %r: tokens revoked at %s", server, safe_url(tokens.issuer))

    async def _client(self, issuer: str, client_id: str) -> OAuthClient:
        """The client ``client_id`` at ``issuer``: configured, registered, or a metadata document URL."""
        for client in self.settings.clients:
            if client.client_id == client_id and (
                client.issuer is None or issuers_match(client.issuer, issuer)
            ):
                return client
        if self.clients is not None:
            known = await self.clients.get(issuer, self.settings.redirect_uri)
            if known is not None and known.client_id == client_id:
                return known
        return OAuthClient(client_id=client_id, token_endpoint_auth_method="none")

    async def _register(self, discovery: Discovery, endpoint: str) -> OAuthClient:
        metadata = OAuthClientMetadata(
            redirect_uris=[AnyUrl(self.settings.redirect_uri)],
            token_endpoint_auth_method="none",
            grant_types=_GRANT_TYPES,
            response_types=["code"],
            client_name=self.settings.client_name,
            scope=discovery.scope,
        )
        server = discovery.server
        response = await self._http.request(
            "POST",
            endpoint,
            server=server,
            what="registration_endpoint",
            reason="registration",
            json=metadata.model_dump(by_alias=True, mode="json", exclude_none=True),
        )
        try:
            info = await handle_registration_response(response)
            check_registration_usable(info)
        except OAuthRegistrationError:
            logger.warning("MCP server %r: dynamic registration answered %d", server, response.status_code)
            raise OAuthError(
                f"MCP server {server!r}: its authorization server refused to register mcpbridge "
                f"(HTTP {response.status_code}{_error_code(response)}); "
                "configure a pre-registered client for it",
                server=server,
                reason="registration",
            ) from None
        method = info.token_endpoint_auth_method or "none"
        secret = SecretStr(info.client_secret) if info.client_secret else None
        logger.info("MCP server %r: registered a client at %s", server, safe_url(discovery.issuer))
        return OAuthClient(
            client_id=info.client_id,
            client_secret=secret,
            issuer=discovery.issuer,
            token_endpoint_auth_method=method
            if method in ("client_secret_basic", "client_secret_post")
            else "none",
            registration="dynamic",
        )

    async def _token_request(
        self, endpoint: str, data: dict[str, str], client: OAuthClient, *, server: str, reason: str
    ) -> OAuthToken:
        response = await self._post(
            endpoint, data, client, server=server, what="token_endpoint", reason=reason
        )
        what = "The code exchange" if reason == "token" else "The refresh"
        if reason == "refresh" and 400 <= response.status_code < 500:
            reason = "authorization_needed"  # the grant or client is refused: only a new authorization helps
        if response.status_code != 200:
            raise _refused(
                server,
                reason,
                f"the authorization server answered HTTP {response.status_code}{_error_code(response)}",
                what=what,
            )
        try:
            return OAuthToken.model_validate_json(response.content)
        except ValidationError:
            raise _refused(
                server, reason, "the authorization server's answer is not a token response", what=what
            ) from None

    async def _post(
        self, endpoint: str, data: dict[str, str], client: OAuthClient, *, server: str, what: str, reason: str
    ) -> httpx2.Response:
        """POST ``data`` to ``endpoint`` as ``client`` (authenticated as it registered)."""
        headers = {"Accept": "application/json"}
        form = dict(data)
        secret = client.client_secret.get_secret_value() if client.client_secret else None
        if client.token_endpoint_auth_method == "client_secret_basic" and secret is not None:
            # RFC 6749 section 2.3.1: both parts form-encoded before the Basic scheme.
            pair = f"{quote(client.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = client.client_id
            if client.token_endpoint_auth_method == "client_secret_post" and secret is not None:
                form["client_secret"] = secret
        return await self._http.request(
            "POST", endpoint, server=server, what=what, reason=reason, data=form, headers=headers
        )


def _tokens(
    token: OAuthToken,
    issuer: str,
    resource: str,
    client_id: str,
    token_endpoint: str,
    revocation_endpoint: str | None,
) -> Tokens:
    return Tokens(
        access_token=SecretStr(token.access_token),
        refresh_token=SecretStr(token.refresh_token) if token.refresh_token else None,
        expires_at=time.time() + token.expires_in if token.expires_in is not None else None,
        scope=token.scope,
        token_type=token.token_type,
        issuer=issuer,
        resource=resource,
        client_id=client_id,
        token_endpoint=token_endpoint,
        revocation_endpoint=revocation_endpoint,
    )


def _optional(url: object) -> str | None:
    return None if url is None else str(url)


def _error_code(response: httpx2.Response) -> str:
    """``: <error>`` from an OAuth error body (RFC 6749 section 5.2), when it is a plain code."""
    try:
        body: object = response.json()
    except ValueError:
        return ""
    error = cast(dict[str, object], body).get("error") if isinstance(body, dict) else None
    if isinstance(error, str) and error.replace("_", "").isalnum() and len(error) < 64:
        return f": {error}"
    return ""


def _refused(server: str, reason: str, why: str, *, what: str = "The OAuth callback") -> OAuthError:
    target = f" for MCP server {server!r}" if server else ""
    return OAuthError(
        f"{what}{target} was refused: {why}; nothing was stored, start the authorization again",
        server=server,
        reason=reason,
    )
