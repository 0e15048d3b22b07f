"""`SessionPool`: MCP sessions kept open between runs, per server and per user.

A cold stdio connect costs a process spawn and a handshake on every run. A
pool keeps each session open after its run and lends it to the next run of the
same user on the same server (the factories keep one of their own by default).
A session is lent to one run at a time and never to another user's run; a
session idle past ``idle_timeout``, broken, or with a call given up (cancelled or
timed out, so perhaps still running on the server) is closed with its server process.
The pool holds at most ``max_size`` sessions, at most ``max_per_user`` of one
user (on all its event loops together): a session given back to a full pool (or
beyond its user's share) takes the place of the least recently used idle session
of its loop (of any user, or of that user), and is closed itself only when no
idle session is left there to make room.

Sessions belong to an event loop, so a pool keeps one task group per event loop
it is used on, and every session of that loop lives in it:

- Entered (``async with pool``), the task group is the ``async with`` block's:
  leaving the block closes every session. A pool is entered at most once, before
  its first use on that loop; entering it again (or concurrently) raises `UsageError`.
- Not entered (the usual case in ``langgraph.json`` factories, asyncio only), the
  pool starts its task group at first use on a loop, in a task of that loop that
  the pool owns. ``await pool.aclose()`` closes it; so does the loop's shutdown
  (``asyncio.run`` and the Agent Server cancel the tasks left when they stop, and
  the pool's task closes its sessions as it ends). A loop closed without its tasks
  being cancelled would leave the task pending: call ``aclose()`` before.

Sessions are never shared between loops: a pool used on two loops keeps two sets.
``aclose()`` closes the sessions of its own loop before it returns, and asks the
other loops to close theirs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Hashable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self, cast

import anyio
import anyio.abc
import anyio.lowlevel
import mcp_types as types
import sniffio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from mcpbridge._connection import ServerConnection
from mcpbridge.caching import ServerCache
from mcpbridge.config import ServerConfig
from mcpbridge.errors import ConfigError, UsageError
from mcpbridge.interrupts import InputPolicy

__all__ = ["DEFAULT_IDLE_TIMEOUT", "DEFAULT_MAX_PER_USER", "DEFAULT_MAX_SIZE", "SessionPool"]

logger = logging.getLogger("mcpbridge")

DEFAULT_IDLE_TIMEOUT: Final = 300.0
"""Seconds an idle session stays open: a user's next message usually comes within minutes."""
DEFAULT_MAX_SIZE: Final = 16
"""Sessions kept open in the process (every loop): at most 16 stdio server processes, under 1 GB."""
DEFAULT_MAX_PER_USER: Final = 4
"""Sessions one user keeps open: a user's usual servers, a quarter of the pool."""


def pool_key(server: ServerConfig, user: str | None, *, samples: bool = False) -> tuple[str | None, str]:
    """The key a session is pooled under: the user, every setting of the server (secrets included).

    And whether the session offers sampling, which its handshake declared.
    """
    data = server.model_dump(mode="json", exclude={"server", "auth", "url_policy"})
    data["__samples__"] = samples
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
    cache: ServerCache | None = None
    policy: InputPolicy | None = None


class _Sessions:
    """A pool's sessions on one event loop, and the task group they live in (`run`)."""

    def __init__(self, loop: object, asyncio_loop: Any) -> None:
        self.loop = loop
        self.asyncio_loop = asyncio_loop  # to ask for `stop` from another thread (asyncio only)
        self.idle: dict[Hashable, list[_Pooled]] = {}
        self.lent: dict[ServerConnection, Hashable] = {}
        self.stopping = False
        self.started = anyio.Event()
        self.stopped = anyio.Event()
        self.task: Any = None  # the loop's task that owns the task group, when the pool is not entered
        self.requests, self._receive = anyio.create_memory_object_stream[_Open](math.inf)

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.idle.values()) + len(self.lent)

    async def run(
        self, pool: SessionPool, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Open the sessions asked for, until `stop`; then close them all and wait for their ends."""
        try:
            async with anyio.create_task_group() as sessions:
                reaper = anyio.CancelScope()
                sessions.start_soon(pool.reap, self, reaper)
                self.started.set()
                task_status.started()
                receive: MemoryObjectReceiveStream[_Open] = self._receive
                async with receive:
                    async for request in receive:
                        sessions.start_soon(self._open, request, sessions)
                # Stopped: close every session gracefully (their tasks end), stop the reaper.
                self.close_all()
                reaper.cancel()
        finally:
            self.stopping = True
            self.close_all()  # cancelled (the loop shuts down): every connection ends closed
            self.requests.close()
            self._receive.close()
            pool.forget(self)
            if self.task is None:  # else `_own` sets it once its task group has ended too
                self.stopped.set()

    def stop(self) -> None:
        """Close every session and take no more requests (on this loop's thread)."""
        self.stopping = True
        self.close_all()
        self.requests.close()

    def stop_from_elsewhere(self) -> None:
        """Ask this loop to `stop`, from another thread; a loop already closed has nothing left."""
        if self.asyncio_loop is None:
            return  # a pool entered outside asyncio is closed when its ``async with`` block ends
        try:
            self.asyncio_loop.call_soon_threadsafe(self.stop)
        except RuntimeError:  # the loop is closed
            pass

    def held(self, counts: Callable[[Hashable], bool]) -> int:
        """Sessions of this loop, idle or lent, whose key ``counts`` (safe to read from another thread)."""
        idle = sum(len(items) for key, items in list(self.idle.items()) if counts(key))
        return idle + sum(1 for key in list(self.lent.values()) if counts(key))

    def make_room(self, counts: Callable[[Hashable], bool], limit: int) -> bool:
        """Close the least recently used idle sessions whose key ``counts`` until one more fits ``limit``.

        False when what is left (lent sessions) still fills it.
        """
        held = self.held(counts)
        while held >= limit:
            candidates = [
                p for k, items in self.idle.items() if counts(k) for p in items if not p.connection.holding
            ]
            if not candidates:
                return False
            oldest = min(candidates, key=lambda p: p.idle_since)
            self.remove_idle(oldest)
            oldest.connection.close()
            held -= 1
        return True

    def remove_idle(self, pooled: _Pooled) -> None:
        items = self.idle[pooled.key]
        items.remove(pooled)
        if not items:
            del self.idle[pooled.key]

    def close_all(self) -> None:
        for items in self.idle.values():
            for pooled in items:
                pooled.connection.close()
        self.idle.clear()
        for connection in list(self.lent):
            connection.close()

    async def _open(self, request: _Open, sessions: anyio.abc.TaskGroup) -> None:
        async with request.reply:
            if self.stopping:
                await request.reply.send(UsageError("the SessionPool is closed"))
                return
            connection = ServerConnection(
                request.config,
                client_info=request.client_info,
                log_level=request.log_level,
                cache=request.cache,
                policy=request.policy,
            )
            connection.pooled = True
            try:
                await sessions.start(connection.run)
            except Exception as exc:
                await request.reply.send(exc)
                return
            try:
                await request.reply.send(connection)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                connection.close()  # the run gave up waiting


class SessionPool:
    """Keeps MCP sessions open between runs, keyed by server and user.

    Enter it (``async with``) to tie its sessions to a block, or use it without
    entering it on asyncio: it then owns one task per event loop, closed by
    ``aclose()`` or when the loop shuts down (see the module's docstring).

    Args:
        idle_timeout: Seconds a session may wait unused before it is closed.
        max_size: The most sessions kept open (on all event loops), lent or idle. A session
            given back to a full pool closes the least recently used idle session in its
            place; when every session is lent, a run beyond the bound gets a session of its
            own, closed when the run ends.
        max_per_user: The most sessions one user keeps open (``None``: no cap below
            ``max_size``). A session given back beyond its user's share closes that user's
            least recently used idle session instead, so that one user (registering many
            servers, say) cannot hold the whole pool.
        ping_after: Check an idle session (a ``tools/list``) before lending it when it has
            been idle this many seconds.

    Raises:
        ConfigError: A bound that is not a positive number (the error names the field).
        UsageError: On entering twice, or after its first use on the loop; on use once closed.

    Example:
        ```python
        async with SessionPool(idle_timeout=300) as pool:
            make_graph = agent_factory(servers, model, pool=pool)
        ```
    """

    def __init__(
        self,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_size: int = DEFAULT_MAX_SIZE,
        max_per_user: int | None = DEFAULT_MAX_PER_USER,
        ping_after: float = 30.0,
    ) -> None:
        if not _positive_number(idle_timeout):
            msg = f"idle_timeout must be a positive number of seconds, not {idle_timeout!r}"
            raise ConfigError(msg, field="idle_timeout")
        if not _count(max_size):
            msg = f"max_size must be a whole number, at least 1, not {max_size!r}"
            raise ConfigError(msg, field="max_size")
        if max_per_user is not None and not _count(max_per_user):
            msg = f"max_per_user must be a whole number, at least 1 (or None), not {max_per_user!r}"
            raise ConfigError(msg, field="max_per_user")
        if not (_positive_number(ping_after) or ping_after == 0):
            msg = f"ping_after must be a number of seconds, at least 0, not {ping_after!r}"
            raise ConfigError(msg, field="ping_after")
        self.idle_timeout = float(idle_timeout)
        self.max_size = max_size
        self.max_per_user = max_size if max_per_user is None else min(max_per_user, max_size)
        self.ping_after = float(ping_after)
        self._loops: dict[object, _Sessions] = {}
        self._entered = False
        self._stack: AsyncExitStack | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether `aclose` was called; a closed pool lends nothing."""
        return self._closed

    @property
    def size(self) -> int:
        """Sessions open in the pool, idle or lent (on every event loop)."""
        return sum(s.size for s in list(self._loops.values()))

    @property
    def idle(self) -> int:
        """Sessions waiting for a run."""
        return sum(len(v) for s in list(self._loops.values()) for v in s.idle.values())

    async def __aenter__(self) -> Self:
        self._check_open()
        if self._entered:
            raise UsageError(
                "the SessionPool is entered already; a pool has one owner: enter it once, "
                "and share the entered pool between runs"
            )
        self._entered = True
        loop = _current_loop()
        if loop in self._loops:
            self._entered = False
            raise UsageError(
                "the SessionPool already runs on this event loop, started by a use before `async with`; "
                "enter the pool before its first use, or do not enter it (then `aclose()` closes it)"
            )
        sessions = self._sessions_of(loop)
        async with AsyncExitStack() as stack:
            group = await stack.enter_async_context(anyio.create_task_group())
            await group.start(sessions.run, self)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def acquire(
        self,
        config: ServerConfig,
        *,
        user: str | None,
        client_info: types.Implementation,
        log_level: types.LoggingLevel | None,
        cache: ServerCache | None = None,
        policy: InputPolicy | None = None,
    ) -> ServerConnection:
        """A connected session for ``user`` on ``config``: an idle one of this event loop, or a new one.

        A new session lists its tools through ``cache``; a lent one lists them again when they went stale.
        ``policy`` answers the server's requests during calls; a session offering sampling is
        lent only to runs whose policy lets the server sample.

        Raises:
            UsageError: The pool is closed, or it is used outside asyncio without ``async with``.
            Exception: Whatever connecting raised (as `Bridge` reports it).
        """
        self._check_open()
        sessions = await self._running()
        samples = policy is not None and policy.sampling is not None and policy.sampling.allows(config.name)
        key = pool_key(config, user, samples=samples)
        while items := sessions.idle.get(key):
            # A session holding a call open for its user's answer first: the run may resume it.
            holding = [i for i, p in enumerate(items) if p.connection.holding]
            pooled = items.pop(holding[-1] if holding else -1)
            if not items:
                del sessions.idle[key]
            if await self._healthy(pooled):
                sessions.lent[pooled.connection] = key
                pooled.connection.renew()
                await pooled.connection.refresh_tools()
                return pooled.connection
            pooled.connection.close()
        reply, answer = anyio.create_memory_object_stream[ServerConnection | BaseException](1)
        async with answer:
            try:
                await sessions.requests.send(_Open(config, client_info, log_level, reply, cache, policy))
                result = await answer.receive()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
                raise UsageError("the SessionPool is closed") from None
        if isinstance(result, BaseException):
            raise result
        sessions.lent[result] = key
        return result

    def release(self, connection: ServerConnection, *, reuse: bool = True) -> None:
        """Give a session back after its run; broken ones (or ``reuse=False``) are closed."""
        for sessions in list(self._loops.values()):
            key = sessions.lent.pop(connection, None)
            if key is not None:
                break
        else:
            return
        if not reuse or self._closed or sessions.stopping or not connection.reusable:
            connection.close()
            return
        user = _user_of(key)
        others = [s for s in list(self._loops.values()) if s is not sessions]

        def users(k: Hashable) -> bool:
            return _user_of(k) == user

        def every(k: Hashable) -> bool:
            return True

        # The bounds hold across loops; only this loop's idle sessions can give way (from its own thread).
        if not (
            sessions.make_room(users, self.max_per_user - sum(s.held(users) for s in others))
            and sessions.make_room(every, self.max_size - sum(s.held(every) for s in others))
        ):
            connection.close()  # nothing idle here to give way
            return
        sessions.idle.setdefault(key, []).append(_Pooled(connection, key))
        connection.watch()

    async def aclose(self) -> None:
        """Close every session and stop their server processes.

        The sessions of the calling event loop are closed when it returns; those of
        other loops are closed on their loops, soon after.
        """
        self._closed = True
        loop = _current_loop()
        waited: list[_Sessions] = []
        for sessions in list(self._loops.values()):
            if sessions.loop is loop:
                sessions.stop()
                waited.append(sessions)
            else:
                sessions.stop_from_elsewhere()
        with anyio.CancelScope(shield=True):
            for sessions in waited:
                await sessions.stopped.wait()

    def forget(self, sessions: _Sessions) -> None:
        """Drop the sessions of a loop whose task group has ended."""
        if self._loops.get(sessions.loop) is sessions:
            del self._loops[sessions.loop]

    async def reap(self, sessions: _Sessions, scope: anyio.CancelScope) -> None:
        """Close the idle sessions of one loop past ``idle_timeout``, or no longer alive, until cancelled."""
        period = min(self.idle_timeout / 4, 5.0)
        with scope:
            while True:
                await anyio.sleep(period)
                now = anyio.current_time()
                for key, items in list(sessions.idle.items()):
                    keep = [
                        p
                        for p in items
                        if p.connection.alive
                        and (now - p.idle_since < self.idle_timeout or p.connection.holding)
                    ]
                    for pooled in items:
                        if pooled not in keep:
                            pooled.connection.close()
                    if keep:
                        sessions.idle[key] = keep
                    else:
                        del sessions.idle[key]

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the SessionPool is closed; make a new one")

    def _sessions_of(self, loop: object) -> _Sessions:
        asyncio_loop: Any = loop if sniffio.current_async_library() == "asyncio" else None
        sessions = _Sessions(loop, asyncio_loop)
        self._loops[loop] = sessions
        return sessions

    async def _running(self) -> _Sessions:
        """This event loop's sessions, started in a task of the loop at first use when not entered."""
        loop = _current_loop()
        sessions = self._loops.get(loop)
        if sessions is None:
            if sniffio.current_async_library() != "asyncio":
                raise UsageError(
                    "outside asyncio a SessionPool must be entered: `async with SessionPool() as pool:` "
                    "around the runs that use it"
                )
            sessions = self._sessions_of(loop)
            import asyncio  # the one task anyio cannot start: one owned by the loop itself

            sessions.task = asyncio.get_running_loop().create_task(
                _own(sessions, self), name="mcpbridge SessionPool"
            )  # kept: the loop holds tasks weakly
        await sessions.started.wait()
        return sessions

    async def _healthy(self, pooled: _Pooled) -> bool:
        connection = pooled.connection
        if not connection.alive:
            return False
        if anyio.current_time() - pooled.idle_since < self.ping_after:
            return True
        with anyio.move_on_after(min(5.0, connection.config.connect_timeout)):
            return await connection.probe()
        return False


async def _own(sessions: _Sessions, pool: SessionPool) -> None:
    """The task a loop runs for a pool that is not entered: it owns the loop's task group."""
    try:
        async with anyio.create_task_group() as group:
            await group.start(sessions.run, pool)
    finally:
        sessions.stopped.set()


def _user_of(key: Hashable) -> object:
    """The user part of a `pool_key`."""
    return cast("tuple[str | None, str]", key)[0]


def _positive_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value > 0 and not math.isnan(value)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _current_loop() -> object:
    """The running event loop (its native object: the asyncio loop, the trio token)."""
    try:
        return anyio.lowlevel.current_token().native_token
    except anyio.NoEventLoopError as exc:
        raise UsageError("a SessionPool is used from async code, in a running event loop") from exc
