"""Served agents as OAuth 2.0 protected resources: access tokens of an external authorization server.

`ProtectedResource` declares the resource (its URL, its authorization servers, the
scopes every call needs). `ResourceTokenVerifier` checks each bearer token, as a JWT
signed with a key of the issuer's JWKS or by asking the issuer's introspection
endpoint (RFC 7662), and makes its subject the caller's identity and nothing else.
Every document it fetches passes the deployment's `UrlPolicy`. When the
authorization server cannot be reached, it raises `AuthorizationServerUnavailable`,
which the served app answers 503: a token is never accepted unchecked.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final, cast
from urllib.parse import urlsplit

import anyio
import httpx2
import jwt
from mcp.client.auth.utils import build_oauth_authorization_server_metadata_discovery_urls, issuers_match
from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url, cors_middleware
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcpbridge._oauth_discovery import OAuthHttp
from mcpbridge.errors import ConfigError, MCPBridgeError, OAuthError, UsageError
from mcpbridge.serving.users import ServedUser, access_token
from mcpbridge.urlpolicy import UrlPolicy

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "AuthorizationServerUnavailable",
    "Introspection",
    "ProtectedResource",
    "ResourceTokenVerifier",
    "serve_protected_resource",
]

logger = logging.getLogger("mcpbridge")

ASYMMETRIC_ALGORITHMS: Final = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
"""The JWS algorithms an access token may be signed with: public-key ones only (never ``HS*`` or ``none``)."""

MAX_SUBJECT_CHARS: Final = 255
"""The longest ``sub`` accepted; a longer one refuses the token."""

RETRY_AFTER: Final = 5
"""Seconds during which a failed fetch from an authorization server is not tried again (503 meanwhile)."""

WELL_KNOWN: Final = "/.well-known/oauth-protected-resource"


@dataclass(frozen=True, slots=True)
class Introspection:
    """Check tokens by asking the authorization server (RFC 7662) instead of verifying JWTs.

    Attributes:
        client_id: The client this server authenticates as at the introspection endpoint.
        client_secret: Its secret (HTTP Basic authentication).
        cache_seconds: How long an active answer is reused (never past the token's ``exp``).
        max_cached: How many answers are kept at most (the oldest go first).

    Example:
        ```python
        Introspection("agents-resource", os.environ["INTROSPECTION_SECRET"])
        ```
    """

    client_id: str
    client_secret: str = field(repr=False)
    cache_seconds: float = 30.0
    max_cached: int = 1024


@dataclass(frozen=True, slots=True)
class ProtectedResource:
    """A served agent as an OAuth 2.0 protected resource (MCP authorization, RFC 9728).

    Attributes:
        resource: This server's public MCP URL, the resource indicator (RFC 8707) tokens
            must carry as their audience.
        issuers: The authorization servers whose tokens are accepted (issuer identifiers);
            with several, a user's identity is ``issuer#subject``.
        scopes: The scopes every request needs (403 ``insufficient_scope`` otherwise).
        introspection: Check tokens at the (single) issuer's introspection endpoint instead
            of verifying JWTs with its JWKS.
        policy: The addresses discovery, JWKS and introspection may fetch from; a loopback
            or private authorization server must be allow-listed (``UrlPolicy(allow=[...])``).
        algorithms: The JWS algorithms accepted; public-key ones only.
        leeway: Seconds of clock skew allowed for ``exp`` and ``nbf``.
        timeout: Seconds for each request to an authorization server.
        jwks_max_age: Seconds a fetched JWKS is used before it is fetched again.
        jwks_min_refetch: Seconds between two fetches of a JWKS for a key id it lacks.
        resource_name: A readable name announced in the metadata.

    Example:
        ```python
        ProtectedResource(
            "https://agents.example.com/mcp",
            issuers=["https://auth.example.com"],
            scopes=["agents:run"],
        )
        ```
    """

    resource: str
    issuers: Sequence[str]
    scopes: Sequence[str] = ()
    introspection: Introspection | None = None
    policy: UrlPolicy = field(default_factory=UrlPolicy)
    algorithms: Sequence[str] = ASYMMETRIC_ALGORITHMS
    leeway: float = 30.0
    timeout: float = 10.0
    jwks_max_age: float = 600.0
    jwks_min_refetch: float = 30.0
    resource_name: str | None = None

    def __post_init__(self) -> None:
        issuers = (self.issuers,) if isinstance(self.issuers, str) else tuple(self.issuers)
        object.__setattr__(self, "issuers", issuers)
        object.__setattr__(self, "scopes", tuple(self.scopes))
        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        _check_url(
            self.resource, "resource", "this server's public MCP URL, e.g. https://agents.example.com/mcp"
        )
        if not issuers:
            raise ConfigError(
                "name the authorization server whose tokens are accepted (issuers)", field="issuers"
            )
        for issuer in issuers:
            _check_url(issuer, "issuers", "the authorization server's issuer identifier")
        weak = [a for a in self.algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if weak or not self.algorithms:
            raise ConfigError(
                f"algorithms {weak or '(none)'} are not accepted; access tokens are verified with the "
                f"issuer's public keys only: choose among {', '.join(ASYMMETRIC_ALGORITHMS)}",
                field="algorithms",
            )
        if self.introspection is not None and len(issuers) != 1:
            raise ConfigError(
                "introspection needs exactly one issuer: an opaque token does not say which one to ask",
                field="introspection",
            )

    def metadata(self) -> ProtectedResourceMetadata:
        """The protected resource metadata document (RFC 9728)."""
        # Validated from strings, so that issuers keep their exact spelling (no added "/").
        return ProtectedResourceMetadata.model_validate(
            {
                "resource": self.resource,
                "authorization_servers": list(self.issuers),
                "scopes_supported": list(self.scopes) or None,
                "resource_name": self.resource_name,
            }
        )

    def metadata_url(self) -> str:
        """Where the metadata is served, as ``WWW-Authenticate``'s ``resource_metadata`` names it."""
        return str(build_resource_metadata_url(AnyHttpUrl(self.resource)))


def _check_url(url: str, what: str, hint: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment or parts.query:
        raise ConfigError(
            f"{what} {url!r} is not an absolute http(s) URL without query or fragment; give {hint}",
            field=what,
        )


class AuthorizationServerUnavailable(MCPBridgeError):
    """The authorization server could not be asked (down, refused by the URL policy, unusable answer).

    The served app answers 503; the deployment's log says why.
    """


@dataclass
class _Fetched:
    """One issuer's documents: its metadata and its JWKS, with when they were fetched."""

    metadata: dict[str, Any] | None = None
    keys: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    unnamed: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    keys_at: float | None = None
    failed_at: float | None = None
    lock: anyio.Lock = field(default_factory=anyio.Lock)


class ResourceTokenVerifier:
    """Checks access tokens for a `ProtectedResource`: the MCP SDK's ``TokenVerifier``.

    An async context manager owning its HTTP client (the served app enters it for its
    lifespan). ``verify_token`` returns the token's user as an ``AccessToken``, ``None``
    for a token to refuse (401), and raises `AuthorizationServerUnavailable` when the
    authorization server cannot answer (503).

    Example:
        ```python
        async with ResourceTokenVerifier(resource) as verifier:
            checked = await verifier.verify_token(token)
        ```
    """

    def __init__(
        self, resource: ProtectedResource, *, transport: httpx2.AsyncBaseTransport | None = None
    ) -> None:
        self.resource = resource
        self._transport = transport
        self._http: OAuthHttp | None = None
        self._stack: AsyncExitStack | None = None
        self._issuers = {issuer: _Fetched() for issuer in resource.issuers}
        self._audiences = list(
            {resource.resource, resource.resource.rstrip("/"), resource.resource.rstrip("/") + "/"}
        )
        self._answers: OrderedDict[bytes, tuple[float, AccessToken]] = OrderedDict()

    async def __aenter__(self) -> ResourceTokenVerifier:
        if self._stack is not None:
            raise UsageError("a ResourceTokenVerifier is already open; enter it once")
        async with AsyncExitStack() as stack:
            http = OAuthHttp(self.resource.policy, timeout=self.resource.timeout, transport=self._transport)
            await stack.enter_async_context(http)
            self._http, self._stack = http, stack.pop_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        stack, self._stack, self._http = self._stack, None, None
        self._answers.clear()
        if stack is not None:
            await stack.aclose()

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's user, or ``None`` to refuse it.

        Raises:
            AuthorizationServerUnavailable: The authorization server could not be asked.
        """
        if self.resource.introspection is not None:
            return await self._introspect(token, self.resource.introspection)
        return await self._verify_jwt(token)

    # --- JWTs -------------------------------------------------------------------------------

    async def _verify_jwt(self, token: str) -> AccessToken | None:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return _refused("not a JWT")
        algorithm, issuer = header.get("alg"), unverified.get("iss")
        if not isinstance(algorithm, str) or algorithm not in self.resource.algorithms:
            return _refused(f"signed with {str(algorithm)[:20]!r}, not an accepted algorithm")
        if not isinstance(issuer, str) or issuer not in self._issuers:
            return _refused("issued by an authorization server not accepted")
        kid = header.get("kid")
        jwk = await self._key(issuer, kid if isinstance(kid, str) else None)
        if jwk is None:
            return _refused("signed with a key the issuer does not publish")
        if jwk.get("alg", algorithm) != algorithm:
            return _refused("signed with an algorithm its key is not for")
        try:
            key = jwt.PyJWK(jwk, algorithm=algorithm)
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=self._audiences,
                issuer=issuer,
                leeway=self.resource.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            return _refused(type(exc).__name__)
        return self._accepted(token, issuer, claims)

    async def _key(self, issuer: str, kid: str | None) -> dict[str, Any] | None:
        fetched = self._issuers[issuer]
        fresh = (
            fetched.keys_at is not None and time.monotonic() - fetched.keys_at < self.resource.jwks_max_age
        )
        if fresh and (found := _find(fetched, kid)) is not None:
            return found  # the usual case: no lock, no await
        async with fetched.lock:
            now = time.monotonic()
            if fetched.keys_at is None or now - fetched.keys_at >= self.resource.jwks_max_age:
                await self._fetch_keys(issuer, fetched)
            found = _find(fetched, kid)
            if found is None and kid is not None:
                assert fetched.keys_at is not None
                if time.monotonic() - fetched.keys_at >= self.resource.jwks_min_refetch:
                    await self._fetch_keys(issuer, fetched)  # a rotated key: fetch again, at most so often
                    found = _find(fetched, kid)
            return found

    async def _fetch_keys(self, issuer: str, fetched: _Fetched) -> None:
        metadata = await self._metadata(issuer, fetched)
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise self._unavailable(issuer, fetched, "its metadata names no jwks_uri")
        body = await self._get_json(issuer, fetched, jwks_uri, "jwks_uri")
        keys: dict[str, dict[str, Any]] = {}
        unnamed: list[dict[str, Any]] = []
        raw: Any = body.get("keys")
        for item in cast(list[Any], raw) if isinstance(raw, list) else []:
            if not isinstance(item, dict) or cast(dict[str, Any], item).get("use", "sig") != "sig":
                continue
            jwk = cast(dict[str, Any], item)
            if jwk.get("kty") == "oct":
                continue  # a shared secret is never a verification key here
            kid = jwk.get("kid")
            if isinstance(kid, str):
                keys[kid] = jwk
            else:
                unnamed.append(jwk)
        fetched.keys, fetched.unnamed, fetched.keys_at = keys, unnamed, time.monotonic()

    # --- introspection ----------------------------------------------------------------------

    async def _introspect(self, token: str, introspection: Introspection) -> AccessToken | None:
        digest = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        cached = self._answers.get(digest)
        if cached is not None:
            if cached[0] > now:
                self._answers.move_to_end(digest)
                return cached[1]
            del self._answers[digest]
        [issuer] = self.resource.issuers
        fetched = self._issuers[issuer]
        async with fetched.lock:
            metadata = await self._metadata(issuer, fetched)
        endpoint = metadata.get("introspection_endpoint")
        if not isinstance(endpoint, str):
            raise self._unavailable(issuer, fetched, "its metadata names no introspection_endpoint")
        response = await self._request(
            issuer,
            fetched,
            "POST",
            endpoint,
            "introspection_endpoint",
            data={"token": token, "token_type_hint": "access_token"},
            auth=(introspection.client_id, introspection.client_secret),
        )
        if response.status_code == 400:  # invalid_request: of this token, the request's only variable part
            return _refused("its introspection was answered 400")
        body = self._json(issuer, fetched, endpoint, response)
        if body.get("active") is not True:
            return _refused("inactive")
        if body.get("iss", issuer) != issuer:
            return _refused("issued by another authorization server")
        audience: Any = body.get("aud")
        audiences: list[Any] = []
        if isinstance(audience, str):
            audiences = [audience]
        elif isinstance(audience, list):
            audiences = cast(list[Any], audience)
        if not any(a in self._audiences for a in audiences):
            return _refused("issued for another resource")
        wall = time.time()
        expires, not_before = body.get("exp"), body.get("nbf")
        if isinstance(expires, int | float) and expires + self.resource.leeway <= wall:
            return _refused("expired")
        if isinstance(not_before, int | float) and not_before - self.resource.leeway > wall:
            return _refused("not yet valid")
        checked = self._accepted(token, issuer, body)
        if checked is not None:
            until = now + introspection.cache_seconds
            if isinstance(expires, int | float):
                until = min(until, now + (expires - wall))
            self._answers[digest] = (until, checked)
            while len(self._answers) > introspection.max_cached:
                self._answers.popitem(last=False)
        return checked

    # --- shared -----------------------------------------------------------------------------

    def _accepted(self, token: str, issuer: str, claims: Mapping[str, Any]) -> AccessToken | None:
        """The checked token's user: its subject is the identity; nothing else of it is taken."""
        subject = claims.get("sub")
        if (
            not isinstance(subject, str)
            or not subject
            or len(subject) > MAX_SUBJECT_CHARS
            or not subject.isprintable()
        ):
            return _refused("no usable subject")
        granted = _scopes(claims)
        identity = subject if len(self.resource.issuers) == 1 else f"{issuer}#{subject}"
        user = ServedUser(identity, permissions=tuple(s for s in self.resource.scopes if s in granted))
        expires = claims.get("exp")
        return access_token(
            token,
            user,
            scopes=sorted(granted),
            subject=subject,
            issuer=issuer,
            resource=self.resource.resource,
            expires_at=int(expires) if isinstance(expires, int | float) else None,
        )

    async def _metadata(self, issuer: str, fetched: _Fetched) -> dict[str, Any]:
        """The issuer's metadata (RFC 8414, else OpenID discovery), fetched once; call under its lock."""
        if fetched.metadata is not None:
            return fetched.metadata
        for url in build_oauth_authorization_server_metadata_discovery_urls(issuer, issuer):
            response = await self._request(issuer, fetched, "GET", url, "metadata")
            if response.status_code != 200:
                continue
            metadata = self._json(issuer, fetched, url, response)
            named = metadata.get("issuer")
            if not isinstance(named, str) or not issuers_match(named, issuer):
                raise self._unavailable(issuer, fetched, f"the metadata at {url} names another issuer")
            fetched.metadata = metadata
            return metadata
        raise self._unavailable(issuer, fetched, "it publishes no authorization server metadata")

    async def _get_json(self, issuer: str, fetched: _Fetched, url: str, what: str) -> dict[str, Any]:
        return self._json(issuer, fetched, url, await self._request(issuer, fetched, "GET", url, what))

    async def _request(
        self, issuer: str, fetched: _Fetched, method: str, url: str, what: str, **options: Any
    ) -> httpx2.Response:
        if self._http is None:
            raise UsageError("the ResourceTokenVerifier is not open: use it in `async with`")
        if fetched.failed_at is not None and time.monotonic() - fetched.failed_at < RETRY_AFTER:
            raise AuthorizationServerUnavailable(f"the authorization server {issuer} failed a moment ago")
        try:
            return await self._http.request(
                method, url, server=f"authorization server {issuer}", what=what, reason="discovery", **options
            )
        except OAuthError as exc:
            raise self._unavailable(issuer, fetched, str(exc)) from None

    def _json(self, issuer: str, fetched: _Fetched, url: str, response: httpx2.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise self._unavailable(issuer, fetched, f"{url} answered {response.status_code}")
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise self._unavailable(issuer, fetched, f"{url} answered no JSON object")
        return cast(dict[str, Any], body)

    def _unavailable(self, issuer: str, fetched: _Fetched, why: str) -> AuthorizationServerUnavailable:
        fetched.failed_at = time.monotonic()
        logger.warning("OAuth: the authorization server %s cannot check tokens: %s", issuer, why)
        return AuthorizationServerUnavailable(f"the authorization server {issuer} cannot check tokens: {why}")


def _find(fetched: _Fetched, kid: str | None) -> dict[str, Any] | None:
    if kid is not None:
        return fetched.keys.get(kid)
    candidates = [*fetched.keys.values(), *fetched.unnamed]
    return candidates[0] if len(candidates) == 1 else None  # without a kid, only a single key is unambiguous


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    scope: Any = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp: Any = claims.get("scp")
    if isinstance(scp, list):
        return frozenset(s for s in cast(list[Any], scp) if isinstance(s, str))
    return frozenset()


def _refused(why: str) -> None:
    logger.info("OAuth: bearer token refused: %s", why)


# --- the served app -----------------------------------------------------------------------------


def serve_protected_resource(
    app: Starlette, resource: ProtectedResource, verifier: ResourceTokenVerifier
) -> None:
    """Make ``app`` (the SDK's streamable HTTP app, built with ``verifier``) serve ``resource``.

    Adds the metadata document at ``/.well-known/oauth-protected-resource`` and at its
    path-suffixed form (RFC 9728), answers 503 when the authorization server cannot
    check a token, and opens ``verifier`` for the app's lifespan.
    """
    handler = cors_middleware(
        ProtectedResourceMetadataHandler(resource.metadata()).handle, ["GET", "OPTIONS"]
    )
    paths = dict.fromkeys((WELL_KNOWN, urlsplit(resource.metadata_url()).path))
    # First, before the SDK's own route for the suffixed path (which names a single issuer).
    app.router.routes[0:0] = [Route(path, endpoint=handler, methods=["GET", "OPTIONS"]) for path in paths]
    app.add_middleware(_Unavailable)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[Any, None]:
        async with verifier, inner(app) as state:
            yield state

    app.router.lifespan_context = lifespan


class _Unavailable:
    """Answer 503 when the token's authorization server cannot be asked."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except AuthorizationServerUnavailable:
            if started:
                raise
            body = {
                "error": "temporarily_unavailable",
                "error_description": "the authorization server cannot check tokens now; try again later",
            }
            headers = {"Retry-After": str(RETRY_AFTER)}
            await JSONResponse(body, status_code=503, headers=headers)(scope, receive, send)
