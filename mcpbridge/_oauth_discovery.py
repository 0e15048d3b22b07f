"""Finding a protected MCP server's authorization server, every fetch under the URL policy.

`OAuthHttp` is the one HTTP client of the OAuth flow: each URL it fetches is
first checked by the deployment's `UrlPolicy` (scheme, host, port) and then
connected through the policy's checking backend (each resolved address), with
no redirect followed and no proxy from the environment; response bodies are
capped. `discover` reads the protected resource metadata (RFC 9728), from the
``resource_metadata`` of a 401's ``WWW-Authenticate`` or the well-known URLs,
then the authorization server's metadata (RFC 8414, or OpenID discovery), and
refuses a document whose endpoints the policy refuses. The URL lists and
document models are the MCP SDK's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

import httpx2
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
    extract_scope_from_www_auth,
    get_client_metadata_scopes,
    issuers_match,
)
from mcp.shared.auth import OAuthMetadata, ProtectedResourceMetadata
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url
from pydantic import ValidationError

from mcpbridge._network import ResponseCap, policy_transport, shared_ssl_context
from mcpbridge.config import safe_url
from mcpbridge.errors import OAuthError, ServerRefusedError
from mcpbridge.urlpolicy import UrlPolicy

__all__ = ["Discovery", "OAuthHttp", "discover"]

logger = logging.getLogger("mcpbridge")

MAX_DOCUMENT_BYTES: Final = 256 * 1024
"""The largest metadata document or token response read."""

_ENDPOINTS: Final = (
    "authorization_endpoint",
    "token_endpoint",
    "registration_endpoint",
    "revocation_endpoint",
)


class OAuthHttp:
    """The OAuth flow's HTTP client: every URL checked by ``policy``, every connection through it.

    An async context manager owning its ``httpx2.AsyncClient``.

    Args:
        policy: The URL policy every fetched URL and every connected address must pass.
        timeout: Seconds for each request.
        transport: The transport to send through instead of the policy's (tests serve documents
            from memory with one; the URL checks still apply).
    """

    def __init__(
        self, policy: UrlPolicy, *, timeout: float = 30.0, transport: httpx2.AsyncBaseTransport | None = None
    ) -> None:
        self.policy = policy
        self._client = httpx2.AsyncClient(
            transport=transport or policy_transport(policy),
            trust_env=False,
            follow_redirects=False,
            timeout=timeout,
            verify=shared_ssl_context(),
            event_hooks={"response": [ResponseCap(MAX_DOCUMENT_BYTES, "(OAuth metadata and tokens)")]},
        )

    async def __aenter__(self) -> OAuthHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()

    async def check(self, url: str, *, server: str, what: str) -> None:
        """Refuse ``url`` (the ``what`` of ``server``'s OAuth metadata) unless the policy admits it.

        Raises:
            OAuthError: ``url_refused``, naming ``what``.
        """
        try:
            await self.policy.check(url, server=server)
        except ServerRefusedError as exc:
            logger.warning("MCP server %r: OAuth %s %s refused: %s", server, what, safe_url(url), exc)
            raise OAuthError(
                f"MCP server {server!r}: its OAuth {what} ({safe_url(url)}) is refused by the deployment's "
                "URL policy (https on port 443 to public addresses, or an allow-listed host); "
                "the server cannot be authorized until the deployment allow-lists it",
                server=server,
                reason="url_refused",
                field=what,
            ) from None

    async def request(
        self, method: str, url: str, *, server: str, what: str, reason: str, **options: Any
    ) -> httpx2.Response:
        """Check ``url`` with the policy, send the request, and read the whole (capped) response.

        Raises:
            OAuthError: ``url_refused``; or ``reason`` when the request fails (unreachable, too large).
        """
        await self.check(url, server=server, what=what)
        try:
            response = await self._client.request(method, url, **options)
            await response.aread()
        except (httpx2.HTTPError, httpx2.StreamError) as exc:  # StreamError: a body over the cap
            logger.warning("MCP server %r: OAuth %s %s failed: %r", server, what, safe_url(url), exc)
            raise OAuthError(
                f"MCP server {server!r}: its OAuth {what} ({safe_url(url)}) could not be read "
                f"({type(exc).__name__}); try again later",
                server=server,
                reason=reason,
                field=what,
            ) from None
        return response


@dataclass(frozen=True, slots=True)
class Discovery:
    """What a protected MCP server's metadata says about authorizing it.

    Attributes:
        server: The MCP server's name.
        server_url: The MCP server's URL.
        resource: The resource indicator (RFC 8707) tokens are requested for.
        resource_metadata: Its protected resource metadata (RFC 9728).
        issuer: The authorization server's issuer identifier.
        metadata: The authorization server's metadata (RFC 8414 / OpenID discovery).
        scope: The scope to request (from ``WWW-Authenticate``, else the metadata), if any.
    """

    server: str
    server_url: str
    resource: str
    resource_metadata: ProtectedResourceMetadata
    issuer: str
    metadata: OAuthMetadata
    scope: str | None


async def discover(
    http: OAuthHttp, server_url: str, *, server: str, www_authenticate: str | None = None
) -> Discovery:
    """Read ``server_url``'s protected resource metadata, then its authorization server's metadata.

    Args:
        http: The flow's HTTP client.
        server_url: The MCP server's URL.
        server: Its name (for messages).
        www_authenticate: The ``WWW-Authenticate`` header of its 401, when there was one.

    Raises:
        OAuthError: ``discovery`` (no usable document, a resource or issuer that does not
            match, no S256 PKCE), or ``url_refused`` (the policy refuses a URL of a document).
    """
    challenge = httpx2.Response(401, headers={"WWW-Authenticate": www_authenticate or ""})
    hinted = extract_resource_metadata_from_www_auth(challenge) if www_authenticate else None
    prm = await _resource_metadata(http, hinted, server_url, server=server)
    resource = resource_url_from_server_url(server_url)
    if not check_resource_allowed(requested_resource=resource, configured_resource=str(prm.resource)):
        raise _failed(server, f"its metadata names another resource ({safe_url(str(prm.resource))})")
    issuer = str(prm.authorization_servers[0])
    metadata = await _server_metadata(http, issuer, server_url, server=server)
    for name in _ENDPOINTS:
        value = getattr(metadata, name)
        if value is not None:
            await http.check(str(value), server=server, what=name)
    methods = metadata.code_challenge_methods_supported or []
    if "S256" not in methods:
        raise _failed(server, "its authorization server does not support PKCE with S256")
    hinted_scope = extract_scope_from_www_auth(challenge) if www_authenticate else None
    scope = get_client_metadata_scopes(hinted_scope, prm, metadata, ["authorization_code", "refresh_token"])
    logger.debug("MCP server %r: authorized by %s for resource %s", server, issuer, resource)
    return Discovery(
        server=server,
        server_url=server_url,
        resource=str(prm.resource),
        resource_metadata=prm,
        issuer=issuer,
        metadata=metadata,
        scope=scope,
    )


async def _resource_metadata(
    http: OAuthHttp, hinted: str | None, server_url: str, *, server: str
) -> ProtectedResourceMetadata:
    for url in build_protected_resource_metadata_discovery_urls(hinted, server_url):
        what = "resource metadata URL"
        response = await http.request("GET", url, server=server, what=what, reason="discovery")
        if response.status_code != 200:
            continue
        try:
            return ProtectedResourceMetadata.model_validate_json(response.content)
        except ValidationError:
            logger.warning("MCP server %r: invalid protected resource metadata at %s", server, safe_url(url))
    raise _failed(server, "it publishes no protected resource metadata (RFC 9728)")


async def _server_metadata(http: OAuthHttp, issuer: str, server_url: str, *, server: str) -> OAuthMetadata:
    for url in build_oauth_authorization_server_metadata_discovery_urls(issuer, server_url):
        what = "authorization server metadata URL"
        response = await http.request("GET", url, server=server, what=what, reason="discovery")
        if response.status_code != 200:
            continue
        try:
            metadata = OAuthMetadata.model_validate_json(response.content)
        except ValidationError:
            logger.warning(
                "MCP server %r: invalid authorization server metadata at %s", server, safe_url(url)
            )
            continue
        if not issuers_match(str(metadata.issuer), issuer):
            raise _failed(server, "its authorization server's metadata names another issuer")
        return metadata
    raise _failed(server, f"its authorization server ({safe_url(issuer)}) publishes no metadata")


def _failed(server: str, why: str) -> OAuthError:
    return OAuthError(
        f"MCP server {server!r} cannot be authorized: {why}; ask the server's operator or the deployment",
        server=server,
        reason="discovery",
    )
