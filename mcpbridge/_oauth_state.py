"""Pending authorizations between a run and the callback, and dynamically registered clients.

An authorization is split in two: the run that needs a token starts it
(`PendingAuthorization` kept under its ``state``), and a later HTTP request, the
authorization server's redirect to the callback, completes it. That request
carries no bearer credential, so the ``state`` is its authentication: a
`StateStore` keeps each pending authorization under a hash of its ``state``
(never the value itself) and hands it out once (`StateStore.take`). The record
binds the user, the server and an expiry, which the flow checks. Clients
registered dynamically are kept per authorization server and redirect URI in a
`ClientRegistry`, so users of one server share one registration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from langgraph.store.base import BaseStore
from pydantic import SecretStr

__all__ = [
    "ClientRegistry",
    "OAuthClient",
    "PendingAuthorization",
    "StateStore",
    "StoreClientRegistry",
    "StoreStateStore",
    "state_key",
]

TokenAuthMethod = Literal["none", "client_secret_basic", "client_secret_post"]
Registration = Literal["configured", "metadata_document", "dynamic"]


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """An OAuth client of mcpbridge at one authorization server.

    Configure one per authorization server that requires a pre-registered client;
    the flow makes the others (a Client ID Metadata Document, or dynamic registration).

    Attributes:
        client_id: The client's identifier at the authorization server.
        client_secret: Its secret, for confidential clients (never shown in reprs or messages).
        issuer: The authorization server it is registered with (its issuer identifier);
            ``None``: any server (a deployment with one authorization server).
        token_endpoint_auth_method: How the client authenticates at the token endpoint.
        registration: How the client came to be: ``configured`` by the deployment,
            a ``metadata_document`` URL as client id, or ``dynamic`` registration (RFC 7591).

    Example:
        ```python
        OAuthClient(
            client_id="mcpbridge",
            client_secret=SecretStr(os.environ["GITHUB_CLIENT_SECRET"]),
            issuer="https://github.com/login/oauth",
            token_endpoint_auth_method="client_secret_post",
        )
        ```
    """

    client_id: str
    client_secret: SecretStr | None = None
    issuer: str | None = None
    token_endpoint_auth_method: TokenAuthMethod = "client_secret_basic"
    registration: Registration = "configured"

    def __post_init__(self) -> None:
        if self.client_secret is None and self.token_endpoint_auth_method != "none":
            object.__setattr__(self, "token_endpoint_auth_method", "none")

    def to_json(self) -> dict[str, Any]:
        """The client as JSON (its secret in clear: for a store, never for a log)."""
        data = dataclasses.asdict(self)
        data["client_secret"] = None if self.client_secret is None else self.client_secret.get_secret_value()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OAuthClient:
        """The client `to_json` wrote."""
        secret = data.get("client_secret")
        return cls(
            client_id=str(data["client_id"]),
            client_secret=None if secret is None else SecretStr(str(secret)),
            issuer=data.get("issuer"),
            token_endpoint_auth_method=data.get("token_endpoint_auth_method", "none"),
            registration=data.get("registration", "dynamic"),
        )


@dataclass(frozen=True, slots=True)
class PendingAuthorization:
    """An authorization a run started and the callback completes, kept under its ``state``.

    Attributes:
        user: The user it was started for; only that user's callback completes it.
        server: The MCP server's name.
        server_url: The MCP server's URL.
        resource: The resource indicator (RFC 8707) the tokens are requested for.
        issuer: The authorization server's issuer; the callback's ``iss`` must equal it.
        iss_required: The authorization server promised ``iss`` in its responses (RFC 9207).
        token_endpoint: Where the code is exchanged (checked by the URL policy at the start).
        client_id: The client the authorization was requested for.
        redirect_uri: The redirect URI of the request (sent again with the code).
        scope: The scope requested, if any.
        code_verifier: The PKCE verifier (never shown in reprs).
        expires_at: When the callback stops being accepted (seconds since the epoch).
        revocation_endpoint: Where the tokens can be revoked, if the authorization server has one.
    """

    user: str
    server: str
    server_url: str
    resource: str
    issuer: str
    iss_required: bool
    token_endpoint: str
    client_id: str
    redirect_uri: str
    scope: str | None
    code_verifier: str = field(repr=False)
    expires_at: float
    revocation_endpoint: str | None = None

    def expired(self, now: float | None = None) -> bool:
        """Whether the callback comes too late."""
        return (time.time() if now is None else now) >= self.expires_at


def state_key(state: str) -> str:
    """The key a pending authorization is kept under: a SHA-256 of its ``state``, never the value."""
    return hashlib.sha256(state.encode()).hexdigest()


class StateStore(Protocol):
    """Where pending authorizations wait for their callback.

    ``take`` hands a record out at most once: it removes what it returns.
    """

    async def put(self, state: str, pending: PendingAuthorization) -> None:
        """Keep ``pending`` under ``state``."""
        ...

    async def take(self, state: str) -> PendingAuthorization | None:
        """Remove and return the record kept under ``state``; ``None`` if there is none."""
        ...


class ClientRegistry(Protocol):
    """Where dynamically registered clients are kept, per authorization server and redirect URI."""

    async def get(self, issuer: str, redirect_uri: str) -> OAuthClient | None:
        """The client registered at ``issuer`` for ``redirect_uri``, if any."""
        ...

    async def put(self, issuer: str, redirect_uri: str, client: OAuthClient) -> None:
        """Keep ``client``."""
        ...


STATE_NAMESPACE: Final = ("mcpbridge", "oauth", "pending")
CLIENT_NAMESPACE: Final = ("mcpbridge", "oauth", "clients")


class StoreStateStore:
    """A `StateStore` on a LangGraph store (the Agent Server's, shared by its workers).

    Each record is an item keyed by a hash of its ``state``. ``take`` reads and
    deletes it; two callbacks with the same ``state`` arriving at once on two
    workers could both read it before either deletes it, and the authorization
    server, which accepts a code once, refuses the second exchange.

    Args:
        store: The store.
        namespace: The namespace of the records; keep users from writing it through the store API.

    Example:
        ```python
        states = StoreStateStore(InMemoryStore())
        ```
    """

    def __init__(self, store: BaseStore, *, namespace: tuple[str, ...] = STATE_NAMESPACE) -> None:
        self.store = store
        self.namespace = namespace

    async def put(self, state: str, pending: PendingAuthorization) -> None:
        """Keep ``pending`` under a hash of ``state``, with the store's TTL when it has one."""
        ttl = max(1.0, (pending.expires_at - time.time()) / 60) if self.store.supports_ttl else None
        await self.store.aput(
            self.namespace, state_key(state), dataclasses.asdict(pending), index=False, ttl=ttl
        )

    async def take(self, state: str) -> PendingAuthorization | None:
        """Remove and return the record of ``state``; ``None`` if none (forged, used or swept)."""
        key = state_key(state)
        item = await self.store.aget(self.namespace, key)
        if item is None:
            return None
        await self.store.adelete(self.namespace, key)
        try:
            return PendingAuthorization(**item.value)
        except TypeError:  # a record of another version: as good as none
            return None


class StoreClientRegistry:
    """A `ClientRegistry` on a LangGraph store.

    Args:
        store: The store.
        namespace: The namespace of the registrations.
    """

    def __init__(self, store: BaseStore, *, namespace: tuple[str, ...] = CLIENT_NAMESPACE) -> None:
        self.store = store
        self.namespace = namespace

    async def get(self, issuer: str, redirect_uri: str) -> OAuthClient | None:
        """The client registered at ``issuer`` for ``redirect_uri``, if any."""
        item = await self.store.aget(self.namespace, _client_key(issuer, redirect_uri))
        if item is None:
            return None
        try:
            return OAuthClient.from_json(item.value)
        except (KeyError, TypeError):
            return None

    async def put(self, issuer: str, redirect_uri: str, client: OAuthClient) -> None:
        """Keep ``client``."""
        await self.store.aput(
            self.namespace, _client_key(issuer, redirect_uri), client.to_json(), index=False
        )


def _client_key(issuer: str, redirect_uri: str) -> str:
    return hashlib.sha256(f"{issuer}\n{redirect_uri}".encode()).hexdigest()
