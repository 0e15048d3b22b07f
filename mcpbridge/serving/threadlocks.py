"""Which threads have a call running: one call per thread, in this process or across replicas.

`ThreadLocks.claim` answers at once whether a call may run on a thread. Without
Postgres the claim is this process's (one replica). With a ``postgres://``
checkpointer it is also a Postgres session advisory lock, held on one connection of
this replica for as long as the call runs: every replica on that database sees it,
and a replica that dies loses it with its connection, so its threads are free again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import anyio

__all__ = ["ThreadLocks", "open_thread_locks", "postgres_lock_key"]

logger = logging.getLogger("mcpbridge")

CLAIM_TIMEOUT = 30.0
"""Seconds a claim may take (to reach Postgres) before the call fails."""

ThreadKey = tuple[str | None, str]
"""A claimed thread: the caller's identity (``None`` without auth) and the thread id."""


def postgres_lock_key(*parts: str) -> int:
    """The advisory-lock key (a signed 64-bit integer) of ``parts``, the same in every replica."""
    digest = hashlib.blake2b("\0".join(("mcpbridge", *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class ThreadLocks:
    """Claims of threads by the calls of this process; `PostgresThreadLocks` adds other replicas'.

    Example:
        ```python
        async with locks.claim((identity, thread_id)) as claimed:
            if not claimed:
                ...  # busy: another call runs on that thread
        ```
    """

    def __init__(self) -> None:
        self._held: set[ThreadKey] = set()

    @asynccontextmanager
    async def claim(self, key: ThreadKey) -> AsyncGenerator[bool, None]:
        """Claim ``key`` until the block ends; yields ``False`` (and claims nothing) when it is busy."""
        if key in self._held:
            yield False
            return
        self._held.add(key)  # before any await: a second call of this process is refused
        try:
            yield True
        finally:
            self._held.discard(key)


class PostgresThreadLocks(ThreadLocks):
    """Claims shared by every replica on one Postgres database (session advisory locks).

    Args:
        url: The Postgres connection URL (the checkpointer's).
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._conn: Any = None
        self._connecting = anyio.Lock()

    @asynccontextmanager
    async def claim(self, key: ThreadKey) -> AsyncGenerator[bool, None]:
        """Claim ``key`` in this process, then in Postgres; yields ``False`` when either has it busy."""
        async with super().claim(key) as local:
            if not local:
                yield False
                return
            # Not cancelled halfway: a lock taken must be known, so that it is released.
            with anyio.fail_after(CLAIM_TIMEOUT, shield=True):
                acquired = await self._acquire(key)
            if not acquired:
                yield False
                return
            try:
                yield True
            finally:
                with anyio.CancelScope(shield=True):
                    await self._release(key)

    async def __aenter__(self) -> PostgresThreadLocks:
        await self._connection()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._drop()  # releases whatever this replica still holds

    async def _connection(self) -> Any:
        async with self._connecting:
            if self._conn is None or self._conn.closed or self._conn.broken:
                from psycopg import AsyncConnection  # pyright: ignore[reportMissingImports]

                # Its own connection: a lock lives as long as the session that took it, and the
                # checkpointer's connections go back to their pool between queries.
                self._conn = await AsyncConnection.connect(  # pyright: ignore[reportUnknownMemberType]
                    self._url, autocommit=True, application_name="mcpbridge thread locks"
                )
            return self._conn

    async def _acquire(self, key: ThreadKey) -> bool:
        from psycopg import OperationalError  # pyright: ignore[reportMissingImports]

        lock = postgres_lock_key("thread", key[0] or "", key[1])
        for attempt in (1, 2):
            conn = await self._connection()
            try:
                cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (lock,))
                row = await cursor.fetchone()
            except OperationalError:
                # The connection broke, and the locks it held went with it: take a new one, once.
                if attempt == 2:
                    raise
                logger.warning("the thread-lock connection to Postgres broke; reconnecting", exc_info=True)
                continue
            except BaseException:
                # Whether the lock was taken is unknown: drop the connection, and every lock with it.
                await self._drop()
                raise
            return bool(row and row[0])
        return False  # not reached

    async def _release(self, key: ThreadKey) -> None:
        lock = postgres_lock_key("thread", key[0] or "", key[1])
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return  # the lock went with its connection
        try:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (lock,))
        except Exception:
            # A lock left held would keep the thread busy for good: drop it with the connection.
            logger.warning("could not release the Postgres lock of thread %s", key[1], exc_info=True)
            await self._drop()

    async def _drop(self) -> None:
        """Close the lock connection (Postgres releases all it holds); the next claim opens another."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await conn.close()


@asynccontextmanager
async def open_thread_locks(postgres_url: str | None) -> AsyncGenerator[ThreadLocks, None]:
    """Thread locks across the replicas on ``postgres_url``, or of this process when it is ``None``."""
    if postgres_url is None:
        yield ThreadLocks()
        return
    async with PostgresThreadLocks(postgres_url) as locks:
        yield locks
