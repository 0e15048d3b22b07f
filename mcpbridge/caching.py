"""`ToolCache`: tool lists and discovery results kept across runs, per user and credential principal.

One `ToolCache` is owned by whatever outlives the runs (a factory makes its own;
give one to `Bridge` yourself). It is the mcp SDK's response cache store
(``CacheConfig(store=..., partition=...)``), shared by every session it serves,
with one partition per principal: the run's user and who the server's credentials
are for (never the token itself, so a refreshed token keeps the entries). It honours
the 2026-07-28 hints: a result is kept for the server's ``ttlMs`` (at most
``max_ttl`` seconds); ``cacheScope: "private"`` entries are served only to their
partition, ``"public"`` ones to every partition when ``share_public`` is set (never
for servers a user registered or that get a user's own credentials). A result without
hints is not kept (``default_ttl=0``).
A discovery result is kept too, so a fresh entry connects without ``server/discover``.

The store is bounded: ``max_entries_per_partition`` per principal and
``max_entries`` in all, the least recently used going first; a user's servers
can fill only their own partition.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import httpx2
import mcp_types as types
from mcp.client.caching import MAX_TTL_MS, CacheConfig, CacheEntry, CacheKey
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcpbridge.config import HttpServer, ServerConfig, StdioServer
from mcpbridge.errors import ConfigError

__all__ = ["ToolCache"]

_DISCOVER: Final = "server/discover"
_PUBLIC: Final = "\x00public"
"""The owner of the shared (public) entries: no principal's quota pays for them."""


class ToolCache:
    """Tool lists and discovery results kept across runs, per user and credential principal.

    Args:
        max_ttl: The longest, in seconds, any entry is kept, whatever ``ttlMs`` the server asks for.
        default_ttl: Seconds to keep a result that carries no ``ttlMs`` hint (``0``: not kept).
        share_public: Serve results the server marks ``cacheScope: "public"`` to every user
            (servers a user registered excepted). This trusts the server's label.
        max_entries_per_partition: The most entries one principal (user and credentials) holds.
        max_entries: The most entries in all.
        clock: Seconds since the epoch (for tests).

    Raises:
        ConfigError: On a negative TTL or a bound below 1.

    Example:
        ```python
        cache = ToolCache(max_ttl=600)
        make_graph = agent_factory(servers, "anthropic:claude-sonnet-4-5", tool_cache=cache)
        ```
    """

    def __init__(
        self,
        *,
        max_ttl: float = 3600.0,
        default_ttl: float = 0.0,
        share_public: bool = False,
        max_entries_per_partition: int = 64,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_ttl < 0 or default_ttl < 0:
            raise ConfigError("max_ttl and default_ttl must be zero or more seconds", field="max_ttl")
        if max_entries_per_partition < 1 or max_entries < 1:
            raise ConfigError("the cache bounds must be at least 1", field="max_entries")
        self.max_ttl = max_ttl
        self.default_ttl = default_ttl
        self.share_public = share_public
        self.max_entries_per_partition = max_entries_per_partition
        self.max_entries = max_entries
        self.clock = clock
        self._store = _Store(self)

    @property
    def size(self) -> int:
        """How many entries it holds (fresh or not yet dropped)."""
        return self._store.size

    @property
    def partitions(self) -> int:
        """How many principals hold entries."""
        return self._store.partitions

    def clear(self) -> None:
        """Forget every entry."""
        self._store.clear()

    def for_server(
        self,
        server: ServerConfig,
        *,
        user: str | None,
        principal: str,
        guest: bool,
        user_written: bool = False,
    ) -> ServerCache | None:
        """The cache of one server's sessions for one principal; ``None`` for servers it cannot name.

        In-process servers are never cached (they have no stable identity across runs). Public
        entries are never shared for a server a user registered (``guest``) or one that gets
        credentials the user wrote (``user_written``): what the user sends may shape its answers.
        """
        target = _target(server, user if guest else None)
        if target is None:
            return None
        partition = json.dumps([user, principal])
        return ServerCache(
            self._store,
            self,
            partition=partition,
            target=target,
            share_public=self.share_public and not guest and not user_written,
        )


class _Store:
    """The entries of a `ToolCache`: least recently used first, counted per owner (principal).

    A factory's cache serves every event loop of the process (the Agent Server may run
    each on its own thread), so each operation holds a thread lock; none awaits.
    """

    def __init__(self, cache: ToolCache) -> None:
        self._cache = cache
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, tuple[str, CacheEntry]] = OrderedDict()
        self._owned: dict[str, OrderedDict[CacheKey, None]] = {}

    @property
    def size(self) -> int:
        return len(self._entries)

    @property
    def partitions(self) -> int:
        return len(self._owned)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._owned.clear()

    def owned(self, owner: str) -> list[CacheKey]:
        with self._lock:
            return list(self._owned.get(owner, ()))

    def get(self, key: CacheKey) -> CacheEntry | None:
        with self._lock:
            held = self._entries.get(key)
            if held is None:
                return None
            owner, entry = held
            if entry.expires_at is not None and entry.expires_at <= self._cache.clock():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            self._owned[owner].move_to_end(key)
            return entry

    def set(self, key: CacheKey, entry: CacheEntry, owner: str) -> None:
        cache = self._cache
        if entry.expires_at is not None:  # the server's hint, capped here (hostile hints: a day is too long)
            entry = CacheEntry(entry.value, entry.scope, min(entry.expires_at, cache.clock() + cache.max_ttl))
        with self._lock:
            self._drop(key)
            self._entries[key] = (owner, entry)
            owned = self._owned.setdefault(owner, OrderedDict())
            owned[key] = None
            while len(owned) > cache.max_entries_per_partition:
                self._drop(next(iter(owned)))
            while len(self._entries) > cache.max_entries:
                self._drop(next(iter(self._entries)))

    def drop(self, key: CacheKey) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: CacheKey) -> None:
        held = self._entries.pop(key, None)
        if held is None:
            return
        owned = self._owned.get(held[0])
        if owned is not None:
            owned.pop(key, None)
            if not owned:
                del self._owned[held[0]]


class ServerCache:
    """One server's view of a `ToolCache` for one principal: the SDK's store, and the discovery entry.

    It implements the SDK's ``ResponseCacheStore``; what the SDK writes counts
    against this principal's bound (public entries against a shared one).
    """

    def __init__(
        self, store: _Store, cache: ToolCache, *, partition: str, target: str, share_public: bool
    ) -> None:
        self._store = store
        self._cache = cache
        self.partition = partition
        self.target = target
        self.share_public = share_public

    @property
    def clock(self) -> Callable[[], float]:
        """The cache's clock (seconds since the epoch)."""
        return self._cache.clock

    @property
    def max_ttl(self) -> float:
        """The longest, in seconds, any entry is kept."""
        return self._cache.max_ttl

    def config(self) -> CacheConfig:
        """The SDK ``CacheConfig`` of one session."""
        return CacheConfig(
            store=self,
            partition=self.partition,
            target_id=self.target,
            default_ttl_ms=round(self._cache.default_ttl * 1000),
            clock=self._cache.clock,
            share_public=self.share_public,
        )

    async def get(self, key: CacheKey) -> CacheEntry | None:
        """The entry under ``key``, if fresh."""
        return self._store.get(key)

    async def set(self, key: CacheKey, entry: CacheEntry) -> None:
        """Keep ``entry`` under ``key`` (its expiry capped at ``max_ttl``)."""
        owner = _PUBLIC if entry.scope == "public" and self.share_public else self.partition
        self._store.set(key, entry, owner)

    async def delete(self, key: CacheKey) -> None:
        """Forget the entry under ``key``."""
        self._store.drop(key)

    async def clear(self) -> None:
        """Forget this principal's entries for every server (the SDK never calls it)."""
        for key in self._store.owned(self.partition):
            self._store.drop(key)

    # --- discovery ---------------------------------------------------------------------------

    def _discover_key(self) -> CacheKey:
        return CacheKey(_DISCOVER, "", json.dumps([self.target, self.partition]))

    def discovered(self) -> Discovered | None:
        """The fresh discovery result of this server for this principal, if there is one."""
        entry = self._store.get(self._discover_key())
        if entry is None or not isinstance(entry.value, Discovered):
            return None
        return Discovered(entry.value.version, entry.value.result.model_copy(deep=True))  # the session's own

    def keep_discovered(
        self, version: str, result: types.DiscoverResult, listing: types.ListToolsResult
    ) -> None:
        """Keep the discovery result of a session that negotiated ``version``.

        Kept for its own ``ttlMs``, or, without one, as long as the tool listing it
        came with (the listing is only usable under the era it was listed in).
        Always private to the principal.
        """
        if version not in MODERN_PROTOCOL_VERSIONS:
            return
        ttl_ms = _ttl_ms(result)
        if ttl_ms is None:
            ttl_ms = _ttl_ms(listing)
        if ttl_ms is None:
            ttl_ms = round(self._cache.default_ttl * 1000)
        ttl_ms = min(ttl_ms, MAX_TTL_MS)
        if ttl_ms <= 0:
            self.forget_discovered()
            return
        expires = self._cache.clock() + ttl_ms / 1000
        entry = CacheEntry(Discovered(version, result.model_copy(deep=True)), "private", expires)
        self._store.set(self._discover_key(), entry, self.partition)

    def forget_discovered(self) -> None:
        """Drop the discovery entry (a session that used it broke)."""
        self._store.drop(self._discover_key())


@dataclass(frozen=True, slots=True)
class Discovered:
    """A discovery result and the protocol version the session adopted from it."""

    version: str
    result: types.DiscoverResult


def _ttl_ms(result: types.DiscoverResult | types.ListToolsResult) -> int | None:
    return result.ttl_ms if "ttl_ms" in result.model_fields_set else None


def _target(server: ServerConfig, guest_of: str | None) -> str | None:
    """Which server this is, as the cache keys it: a digest of its name and where it is.

    A digest, as a URL may hold a token in its query. A server a user registered is
    keyed with that user too, so its entries are never another user's, whatever scope
    its answers claim.
    """
    where: list[object]
    match server:
        case HttpServer():
            where = ["http", str(httpx2.URL(server.url).copy_with(userinfo=b""))]
        case StdioServer():
            where = [
                "stdio",
                server.command,
                list(server.args),
                None if server.cwd is None else str(server.cwd),
            ]
        case _:
            return None
    return hashlib.sha256(json.dumps([server.name, *where, guest_of]).encode()).hexdigest()
