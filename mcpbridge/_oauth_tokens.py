"""Users' tokens in the Agent Server's store, sealed, and refreshed once however many runs need them.

A `TokenStore` keeps one set of `Tokens` per user and MCP server URL (bound to
the authorization server and resource that issued them) in a LangGraph store,
under a namespace the deployment keeps users from reaching through the store
API (`RESERVED_NAMESPACE`), and always sealed with the deployment's `KeyRing`.
`TokenStore.usable` answers tokens fit to use, refreshing them shortly before
they expire or after the server refused them, once per user and server: runs of
one process wait on one lock; workers sharing the store wait on a lease record
and take up the tokens another worker refreshed rather than spend the rotated
refresh token again (which a reuse-detecting authorization server would
answer by revoking the grant).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
from langgraph.store.base import BaseStore
from pydantic import SecretStr

from mcpbridge._oauth_flow import OAuthFlow, Tokens
from mcpbridge._oauth_sealing import KeyRing, Sealed, binding
from mcpbridge.config import safe_url
from mcpbridge.errors import OAuthError

__all__ = ["RESERVED_NAMESPACE", "TOKEN_NAMESPACE", "Connection", "TokenStore", "reserved"]

logger = logging.getLogger("mcpbridge")

RESERVED_NAMESPACE: Final = ("mcpbridge", "oauth")
"""The store namespace of mcpbridge's OAuth records (tokens, pending authorizations, clients, leases).

Users must not reach it through the store API: the deployment's auth refuses any
namespace `reserved` says overlaps it (see ``examples/auth.py``).
"""
TOKEN_NAMESPACE: Final = (*RESERVED_NAMESPACE, "tokens")
_LEASES: Final = "leases"


def reserved(namespace: tuple[str, ...]) -> bool:
    """Whether a store request on ``namespace`` would reach `RESERVED_NAMESPACE` (or list it, as a prefix)."""
    size = min(len(namespace), len(RESERVED_NAMESPACE))
    return tuple(namespace[:size]) == RESERVED_NAMESPACE[:size]


@dataclass(frozen=True, slots=True)
class Connection:
    """A server a user has tokens for (nothing secret).

    Attributes:
        server: The MCP server's name.
        server_url: Its URL (the tokens are kept under it).
        issuer: The authorization server that issued them.
        resource: The resource they are for.
    """

    server: str
    server_url: str
    issuer: str
    resource: str


@dataclass(frozen=True, slots=True)
class _Entry:
    """A kept entry: its tokens (``None``: absent or unopenable), generation and time of writing."""

    tokens: Tokens | None
    generation: str | None
    written: float


@dataclass(slots=True)
class _Flight:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0


class TokenStore:
    """Users' tokens for remote MCP servers, sealed in a LangGraph store, refreshed once at a time.

    Keep one per process (its locks make a refresh single-flight among the runs of that
    process); workers sharing the store coordinate through lease records.

    Args:
        store: The store (the Agent Server's, shared by its workers).
        keys: The deployment's key ring; the first key seals.
        namespace: Where the tokens are kept (a user's under ``namespace + (user,)``).
        skew: Refresh an access token this many seconds before it expires.
        lease: Seconds a worker may hold a refresh before another takes it over.
        poll: Seconds between looks at the store while another worker refreshes.

    Example:
        ```python
        tokens = TokenStore(store, KeyRing.from_env())
        await tokens.put("alice", done.server, done.server_url, done.tokens)  # from the callback
        fresh = await tokens.usable(flow, user="alice", server="linear", server_url=url)
        ```
    """

    def __init__(
        self,
        store: BaseStore,
        keys: KeyRing,
        *,
        namespace: tuple[str, ...] = TOKEN_NAMESPACE,
        skew: float = 60.0,
        lease: float = 30.0,
        poll: float = 0.1,
    ) -> None:
        self.store = store
        self.keys = keys
        self.namespace = namespace
        self.skew = skew
        self.lease = lease
        self.poll = poll
        self._holder = secrets.token_hex(8)
        self._flights: dict[tuple[str, str], _Flight] = {}

    def __repr__(self) -> str:
        return f"TokenStore(namespace={self.namespace!r}, keys={self.keys!r})"

    # --- reading and writing ----------------------------------------------------------------------

    async def put(self, user: str, server: str, server_url: str, tokens: Tokens) -> None:
        """Keep ``user``'s ``tokens`` for the server at ``server_url``, sealed with the newest key."""
        await self._write(user, server, server_url, tokens)

    async def get(self, user: str, server_url: str) -> Tokens | None:
        """``user``'s tokens for ``server_url`` as kept (maybe expired); ``None`` if none, or unopenable."""
        return (await self._read(user, server_url)).tokens

    async def delete(self, user: str, server_url: str) -> None:
        """Forget ``user``'s tokens for ``server_url`` (not revoked: see `disconnect`)."""
        await self.store.adelete(self._user_namespace(user), _key(server_url))

    async def connections(self, user: str) -> list[Connection]:
        """The servers ``user`` has tokens for."""
        items = await self.store.asearch(self._user_namespace(user), limit=1000)
        found: list[Connection] = []
        for item in items:
            value = item.value
            try:
                found.append(
                    Connection(
                        server=str(value["server"]),
                        server_url=str(value["server_url"]),
                        issuer=str(value["issuer"]),
                        resource=str(value["resource"]),
                    )
                )
            except KeyError:
                continue
        return found

    # --- usable tokens ------------------------------------------------------------------------------

    async def usable(
        self,
        flow: OAuthFlow,
        *,
        user: str,
        server: str,
        server_url: str,
        rejected: SecretStr | str | None = None,
    ) -> Tokens:
        """``user``'s tokens for ``server``, refreshed first when they expire within `skew` seconds.

        Concurrent callers for one user and server share one refresh.

        Args:
            flow: The flow that refreshes.
            user: The user.
            server: The MCP server's name (for messages).
            server_url: Its URL.
            rejected: The access token the server just refused (its 401): refreshed unless
                the kept one is already another.

        Raises:
            OAuthError: ``authorization_needed``: the user has no tokens for the server, or the
                authorization server refused the refresh (the tokens are then deleted); ``refresh``:
                the authorization server could not be reached (the tokens are kept).
        """
        refused = _plain(rejected)
        first = await self._read(user, server_url)
        if first.tokens is not None and not self._stale(first, refused):
            return first.tokens
        async with self._single_flight(user, server_url):
            entry = await self._read(user, server_url)
            if entry.tokens is None:
                raise _needed(server, "the user has not authorized it yet")
            if self._renewed(entry, first, refused) or not self._stale(entry, refused):
                return entry.tokens  # another run refreshed them while this one waited
            return await self._refresh(flow, user, server, server_url, entry, refused)

    async def disconnect(self, flow: OAuthFlow, *, user: str, server: str, server_url: str) -> bool:
        """Revoke ``user``'s tokens for ``server`` at the authorization server, and delete them.

        They are deleted even when the revocation fails.

        Returns:
            Whether there were tokens.

        Raises:
            OAuthError: ``revoke``: the authorization server has no revocation endpoint or refused
                (the tokens are deleted all the same).
        """
        tokens = await self.get(user, server_url)
        if tokens is None:
            await self.delete(user, server_url)  # an entry that no longer opens goes too
            return False
        try:
            await flow.revoke(tokens, server=server)
        finally:
            await self.delete(user, server_url)
            logger.info("MCP server %r: disconnected for user %r", server, user)
        return True

    # --- the refresh ----------------------------------------------------------------------------------

    def _stale(self, entry: _Entry, rejected: str | None) -> bool:
        """Whether ``entry`` needs a refresh: it is the rejected token, or expires within the skew.

        The skew is at most half the token's lifetime (from when it was kept), so short-lived
        tokens are not refreshed on every use.
        """
        tokens = entry.tokens
        if tokens is None:
            return True
        if rejected is not None:
            return secrets.compare_digest(tokens.access_token.get_secret_value().encode(), rejected.encode())
        skew = self.skew
        if tokens.expires_at is not None and tokens.expires_at > entry.written:
            skew = min(skew, (tokens.expires_at - entry.written) / 2)
        return tokens.expires_within(skew)

    @staticmethod
    def _renewed(entry: _Entry, before: _Entry, rejected: str | None) -> bool:
        """Whether ``entry`` was written since ``before`` was read, and is not the rejected token."""
        if entry.tokens is None or entry.generation == before.generation:
            return False
        access = entry.tokens.access_token.get_secret_value()
        return rejected is None or not secrets.compare_digest(access.encode(), rejected.encode())

    async def _refresh(
        self, flow: OAuthFlow, user: str, server: str, server_url: str, entry: _Entry, rejected: str | None
    ) -> Tokens:
        """Refresh under a lease, unless another worker holds one: then wait for its tokens."""
        while True:
            holder, until = await self._lease_of(user, server_url)
            if holder is None or until <= time.time():
                await self._take_lease(user, server_url)
                holder, until = await self._lease_of(user, server_url)
            if holder == self._holder:
                break
            await anyio.sleep(self.poll)  # another worker refreshes: look again for its tokens
            now = await self._read(user, server_url)
            if now.generation != entry.generation:
                if now.tokens is None:
                    raise _needed(server, "its authorization was withdrawn while refreshing")
                if self._renewed(now, entry, rejected):
                    return now.tokens
                entry = now
        try:
            now = await self._read(user, server_url)
            if now.generation != entry.generation:  # refreshed by another worker since this one read
                if now.tokens is None:
                    raise _needed(server, "its authorization was withdrawn while refreshing")
                if self._renewed(now, entry, rejected):
                    return now.tokens
                entry = now
            assert entry.tokens is not None
            try:
                renewed = await flow.refresh(entry.tokens, server=server)
            except OAuthError as exc:
                if exc.reason != "authorization_needed":
                    raise
                now = await self._read(user, server_url)
                if self._renewed(now, entry, rejected) and now.tokens is not None:
                    return now.tokens
                await self.delete(user, server_url)
                logger.info("MCP server %r: tokens of %r deleted, refresh refused", server, user)
                raise
            await self._write(user, server, server_url, renewed)
            logger.info("MCP server %r: tokens refreshed for user %r", server, user)
            return renewed
        finally:
            await self._release_lease(user, server_url)

    @asynccontextmanager
    async def _single_flight(self, user: str, server_url: str) -> AsyncGenerator[None]:
        key = (user, server_url)
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight()
        flight.users += 1
        try:
            async with flight.lock:
                yield
        finally:
            flight.users -= 1
            if flight.users == 0:
                del self._flights[key]

    async def _lease_of(self, user: str, server_url: str) -> tuple[str | None, float]:
        item = await self.store.aget(self._lease_namespace(user), _key(server_url))
        if item is None:
            return None, 0.0
        return str(item.value.get("holder")), float(item.value.get("until", 0.0))

    async def _take_lease(self, user: str, server_url: str) -> None:
        value = {"holder": self._holder, "until": time.time() + self.lease}
        await self.store.aput(self._lease_namespace(user), _key(server_url), value, index=False)

    async def _release_lease(self, user: str, server_url: str) -> None:
        holder, _ = await self._lease_of(user, server_url)
        if holder == self._holder:
            await self.store.adelete(self._lease_namespace(user), _key(server_url))

    # --- sealing --------------------------------------------------------------------------------------

    def _user_namespace(self, user: str) -> tuple[str, ...]:
        return (*self.namespace, user)

    def _lease_namespace(self, user: str) -> tuple[str, ...]:
        return (*self.namespace[:-1], _LEASES, user) if len(self.namespace) > 1 else (_LEASES, user)

    async def _write(self, user: str, server: str, server_url: str, tokens: Tokens) -> None:
        plaintext = json.dumps(tokens.to_json(), separators=(",", ":")).encode()
        sealed = self.keys.seal(plaintext, binding(user, tokens.issuer, tokens.resource, server_url))
        value: dict[str, Any] = {
            "server": server,
            "server_url": server_url,
            "issuer": tokens.issuer,
            "resource": tokens.resource,
            "generation": secrets.token_hex(8),
            "key_id": sealed.key_id,
            "nonce": sealed.nonce,
            "ciphertext": sealed.ciphertext,
        }
        await self.store.aput(self._user_namespace(user), _key(server_url), value, index=False)

    async def _read(self, user: str, server_url: str) -> _Entry:
        item = await self.store.aget(self._user_namespace(user), _key(server_url))
        if item is None:
            return _Entry(None, None, 0.0)
        value = item.value
        generation, written = str(value.get("generation")), item.updated_at.timestamp()
        try:
            sealed = Sealed(str(value["key_id"]), str(value["nonce"]), str(value["ciphertext"]))
            issuer, resource = str(value["issuer"]), str(value["resource"])
        except KeyError:
            return _Entry(None, generation, written)
        plaintext = self.keys.open(sealed, binding(user, issuer, resource, server_url))
        if plaintext is None:
            logger.warning(
                "OAuth tokens of user %r for %s do not open (key %r unknown, or the entry was altered or "
                "moved): treated as absent",
                user,
                safe_url(server_url),
                sealed.key_id,
            )
            return _Entry(None, generation, written)
        try:
            return _Entry(Tokens.from_json(json.loads(plaintext)), generation, written)
        except (KeyError, TypeError, ValueError):
            return _Entry(None, generation, written)


def _key(server_url: str) -> str:
    return hashlib.sha256(server_url.encode()).hexdigest()


def _plain(token: SecretStr | str | None) -> str | None:
    return token.get_secret_value() if isinstance(token, SecretStr) else token


def _needed(server: str, why: str) -> OAuthError:
    return OAuthError(
        f"MCP server {server!r} needs the user's authorization: {why}",
        server=server,
        reason="authorization_needed",
    )
