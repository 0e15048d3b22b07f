"""`SessionPool`: MCP sessions kept open between runs, per server and per user (opt-in).

A cold stdio connect costs a process spawn and a handshake on every run. A
pool keeps each session open after its run and lends it to the next run of the
same user on the same server. A session is lent to one run at a time and never
to another user's run; a session idle past ``idle_timeout``, broken, or beyond
``max_size`` is closed with its server process.

The pool's sessions live in one task the pool owns. Enter the pool
(``async with pool``) to tie that task to your own scope; a pool used without
being entered (the usual case in ``langgraph.json`` factories) starts it on the
running asyncio loop at first use, and ``aclose()`` stops it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Hashable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc
import mcp_types as types
import sniffio
from anyio.streams.memory import MemoryObjectSendStream

from mcpbridge._connection import ServerConnection
from mcpbridge.config import ServerConfig
from mcpbridge.errors import ConfigError, UsageError

__all__ = ["SessionPool"]

logger = logging.getLogger("mcpbridge")


def pool_key(server: ServerConfig, user: str | None) -> tuple[str | None, str]:
    """The key a session is pooled under: the user, and every setting of the server (secrets included)."""
    data = server.model_dump(mode="json", exclude={"server", "auth", "url_policy"})
    token: Any = getattr(server, "bearer_token", None)
    data["bearer_token"] = None if token is None else token.get_secret_value()
    data["__objects__"] = [
        id(getattr(server, "server", None)),
        id(getattr(server, "auth", None)),
        id(getattr(server, "url_policy", None)),
    ]
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return user, digest


@dataclass(eq=False)
class _Pooled:
    connection: ServerConnection
    key: Hashable
    idle_since: float = field(default_factory=anyio.current_time)


@dataclass(frozen=True, slots=True)
class _Open:
    config: ServerConfig
    client_info: types.Implementation
    log_level: types.LoggingLevel | None
    reply: MemoryObjectSendStream[ServerConnection | BaseException]


class SessionPool:
    """Keeps MCP sessions open between runs, keyed by server and user.

    Args:
        idle_timeout: Seconds a session may wait unused before it is closed.
        max_size: The most sessions kept open; a run beyond it gets a session of its own,
            closed when the run ends.
        ping_after: Check an idle session with a ping before lending it when it has been
            idle this many seconds.

    Example:
        ```python
        pool = SessionPool(idle_timeout=300)
        make_graph = agent_factory(servers, model, pool=pool)
        ```
    """

    def __init__(self, *, idle_timeout: float = 300.0, max_size: int = 64, ping_after: float = 30.0) -> None:
        if idle_timeout <= 0:
            raise ConfigError("idle_timeout must be a positive number of seconds", field="idle_timeout")
        if max_size < 1:
            raise ConfigError("max_size must be at least 1", field="max_size")
        self.idle_timeout = idle_timeout
        self.max_size = max_size
        self.ping_after = ping_after
        self._idle: dict[Hashable, list[_Pooled]] = {}
        self._lent: dict[ServerConnection, Hashable] = {}
        self._requests: MemoryObjectSendStream[_Open] | None = None
        self._started: anyio.Event | None = None
        self._stopped = anyio.Event()
        self._stack = AsyncExitStack()
        self._task: Any = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether `aclose` was called; a closed pool lends nothing."""
        return self._closed

    @property
    def size(self) -> int:
        """Sessions open in the pool, idle or lent."""
        return sum(len(v) for v in self._idle.values()) + len(self._lent)

    @property
    def idle(self) -> int:
        """Sessions waiting for a run."""
        return sum(len(v) for v in self._idle.values())

    async def __aenter__(self) -> Self:
        self._check_open()
        self._stack = AsyncExitStack()
        group = await self._stack.enter_async_context(anyio.create_task_group())
        await group.start(self._run)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
        await self._stack.aclose()

    async def acquire(
        self,
        config: ServerConfig,
        *,
        user: str | None,
        client_info: types.Implementation,
        log_level: types.LoggingLevel | None,
    ) -> ServerConnection:
        """A connected session for ``user`` on ``config``: an idle one, or a new one.

        Raises:
            UsageError: The pool is closed, or it is used outside asyncio without ``async with``.
            Exception: Whatever connecting raised (as `Bridge` reports it).
        """
        self._check_open()
        key = pool_key(config, user)
        while self._idle.get(key):
            pooled = self._idle[key].pop()
            if await self._healthy(pooled):
                self._lent[pooled.connection] = key
                pooled.connection.renew()
                return pooled.connection
            pooled.connection.close()
        requests = await self._ensure_runner()
        reply, answer = anyio.create_memory_object_stream[ServerConnection | BaseException](1)
        async with answer:
            await requests.send(_Open(config, client_info, log_level, reply))
            result = await answer.receive()
        if isinstance(result, BaseException):
            raise result
        self._lent[result] = key
        return result

    def release(self, connection: ServerConnection, *, reuse: bool = True) -> None:
        """Give a session back after its run; broken ones (or ``reuse=False``) are closed."""
        key = self._lent.pop(connection, None)
        if key is None:
            return
        if not reuse or self._closed or not connection.alive or self.size >= self.max_size:
            connection.close()
            return
        self._idle.setdefault(key, []).append(_Pooled(connection, key))

    async def aclose(self) -> None:
        """Close every session and stop their server processes."""
        self._closed = True
        self._close_all()
        if self._requests is not None:
            await self._requests.aclose()
        if self._started is not None:
            with anyio.CancelScope(shield=True):
                await self._stopped.wait()

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the SessionPool is closed")

    async def _healthy(self, pooled: _Pooled) -> bool:
        connection = pooled.connection
        if not connection.alive:
            return False
        if anyio.current_time() - pooled.idle_since < self.ping_after:
            return True
        with anyio.move_on_after(min(5.0, connection.config.connect_timeout)):
            return await connection.probe()
        return False

    async def _ensure_runner(self) -> MemoryObjectSendStream[_Open]:
        if self._requests is not None:
            return self._requests
        if self._started is None:
            if sniffio.current_async_library() != "asyncio":
                raise UsageError("enter the SessionPool with `async with` outside asyncio")
            self._started = anyio.Event()  # set only when a runner will start: `aclose` waits for it
            import asyncio  # the pool's own task, on the loop that uses it

            task = asyncio.get_running_loop().create_task(self._run_detached())
            self._task = task  # keep a reference: the loop holds tasks weakly
        await self._started.wait()
        assert self._requests is not None
        return self._requests

    async def _run_detached(self) -> None:
        async with anyio.create_task_group() as group:
            await group.start(self._run)

    async def _run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        send, receive = anyio.create_memory_object_stream[_Open](math.inf)
        self._requests = send
        if self._started is None:
            self._started = anyio.Event()
        try:
            async with anyio.create_task_group() as sessions:
                reaper = anyio.CancelScope()
                sessions.start_soon(self._reap, reaper)
                self._started.set()
                task_status.started()
                async with receive:
                    async for request in receive:
                        sessions.start_soon(self._open, request, sessions)
                # Closed: close every session gracefully (their tasks end), stop the reaper.
                self._close_all()
                reaper.cancel()
        finally:
            self._stopped.set()

    async def _open(self, request: _Open, sessions: anyio.abc.TaskGroup) -> None:
        connection = ServerConnection(
            request.config, client_info=request.client_info, log_level=request.log_level
        )
        async with request.reply:
            try:
                await sessions.start(connection.run)
            except Exception as exc:
                await request.reply.send(exc)
                return
            try:
                await request.reply.send(connection)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                connection.close()  # the run gave up waiting

    async def _reap(self, scope: anyio.CancelScope) -> None:
        period = min(self.idle_timeout / 4, 5.0)
        with scope:
            while True:
                await anyio.sleep(period)
                now = anyio.current_time()
                for key, items in list(self._idle.items()):
                    keep = [p for p in items if now - p.idle_since < self.idle_timeout and p.connection.alive]
                    for pooled in items:
                        if pooled not in keep:
                            pooled.connection.close()
                    if keep:
                        self._idle[key] = keep
                    else:
                        del self._idle[key]

    def _close_all(self) -> None:
        for items in self._idle.values():
            for pooled in items:
                pooled.connection.close()
        self._idle.clear()
        for connection in list(self._lent):
            connection.close()
