"""One MCP server's session, owned by one task from connect to teardown.

`ServerConnection.run` connects, lists every page of tools and prepares each one
(see `mcpbridge._listing`) all within ``connect_timeout``, reports readiness, then
holds the session open until `close` is called. A server offering more than
``max_tools`` tools is not connected. With a `ServerCache` (see `mcpbridge.caching`),
a fresh discovery result is adopted and a fresh tool list served without a request;
a pooled session lists again (`refresh_tools`) only once its list went stale
(``ttlMs``, ``list_changed``, a ``subscriptions/listen`` event).

Where a connection is, is one `State` (see `mcpbridge._lifecycle`): a session that
breaks after readiness is reconnected at the next call (up to ``config.reconnect``
times), and the calls that come meanwhile wait for that one reconnect. Failures
before readiness propagate to the starter; failures after it are recorded, never
raised into the owner's task group. Calls translate every transport and protocol
failure into `ToolCallError` within ``call_timeout`` (the messages: `mcpbridge._failures`).
The server's log notifications go to its `ServerLogs` (see `mcpbridge._serverlogs`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Coroutine, Mapping
from contextlib import AsyncExitStack
from typing import Any, Final, overload

import anyio
import anyio.abc
import mcp_types as types
from mcp import Client, MCPError
from mcp.client.session import IncomingMessage
from mcp.shared.dispatcher import ProgressFnT
from mcp_types.jsonrpc import HEADER_MISMATCH
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcpbridge._answering import Answerer
from mcpbridge._failures import (
    ConnectFailed,
    call_failure,
    connect_timeout,
    describe_failure,
    ends_session,
    not_connected,
)
from mcpbridge._holding import HeldCall, HeldCalls
from mcpbridge._lifecycle import Lifecycle, State
from mcpbridge._listing import ListedTool, list_tools, listing_expiry, prepare_tools
from mcpbridge._network import CALL_HEADERS, call_record, end_call_record
from mcpbridge._redact import install_url_redaction
from mcpbridge._serverlogs import ServerLogs
from mcpbridge._transport import StderrLog, open_client
from mcpbridge.caching import ServerCache
from mcpbridge.config import HttpServer, ServerConfig, SseServer
from mcpbridge.interrupts import InputPolicy

__all__ = ["ServerConnection", "State"]

logger = logging.getLogger("mcpbridge")
install_url_redaction()  # every process that connects to an MCP server logs URLs redacted


class ServerConnection:
    """A connected MCP server: its session, its tools, its `state`, and its failure if it has one."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        client_info: types.Implementation,
        log_level: types.LoggingLevel | None,
        cache: ServerCache | None = None,
        policy: InputPolicy | None = None,
    ) -> None:
        self.config = config
        self.answerer = Answerer(config, policy)  # the server's requests during calls (2025-11-25)
        self.held = HeldCalls(config.name, self._spawn)  # calls kept open for their user's answer
        self.answerer.holder = self._sole_held
        self.pooled = False  # a pool lends the session: a held call may outlive its run
        self._watchers: anyio.abc.TaskGroup | None = None  # tasks living as long as the session
        self.name = config.name
        self.tools: list[ListedTool] = []
        self.protocol_version: str | None = None
        self.failure: str | None = None
        self._abandoned = False  # a call was given up (cancelled, timed out) while the server ran it
        self._in_flight = 0
        self._client_info = client_info
        self._log_level: types.LoggingLevel | None = log_level
        self._client: Client | None = None
        self._lifecycle = Lifecycle(config.name)
        self._attempt: anyio.CancelScope | None = None  # the connect in flight: `close` cancels it
        self._shielded: anyio.CancelScope | None = None  # the ready session's: see `_session`
        self._reconnects_left = config.reconnect
        self._stderr = StderrLog()
        self._logs = ServerLogs(config.name, max_log_level=config.max_log_level, log_level=log_level)
        self._cache = cache
        self._listed: list[types.Tool] = []  # the tools as listed, before preparing: `refresh_tools` compares
        self._listed_expires: float | None = None  # when the server said its listing goes stale, if it did
        self._stale = False  # the server said its tools changed
        self._adopted = False  # the session adopted a cached discovery result
        self._watch = anyio.Event()  # set when the session waits in a pool: listen for changes then
        self._records_calls = isinstance(config, HttpServer | SseServer)

    @property
    def state(self) -> State:
        """Where the connection is (see `State`)."""
        return self._lifecycle.state

    @property
    def reusable(self) -> bool:
        """Whether a pool may lend the session to another run: alive, and no call was given up on it.

        A call cancelled, timed out or still running when its run ends may still run on the
        server; closing the session stops it. A held call (`holds`) does not count: it waits
        for its user's next run.
        """
        return self.alive and not self._abandoned and self._in_flight <= len(self.held.running)

    @property
    def holding(self) -> bool:
        """Whether a call is held open on the session for its user's answer (the pool keeps it open)."""
        return bool(self.held.calls)

    @property
    def holds(self) -> float | None:
        """Seconds a call may be held open for its user's answer: pooled 2025-11-25 sessions, by policy."""
        hold = self.answerer.hold
        if hold is None or not self.pooled or self.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return None
        return hold

    def _sole_held(self) -> HeldCall | None:
        """The held call a request serves: the only call open on the session, when it is held."""
        running = self.held.running
        if len(running) == 1 and self._in_flight == 1:
            return running[0]
        return None

    async def _spawn(self, task: Any) -> None:
        """Start ``task`` in the session's own task group (a broken session is reconnected first)."""
        if self._lifecycle.state in (State.BROKEN, State.RECONNECTING):
            await self._reconnected()
        watchers = self._watchers
        if watchers is None:
            raise not_connected(self.config, "a held call", self.failure)
        watchers.start_soon(task)

    @property
    def alive(self) -> bool:
        """Whether the session is open and has not failed."""
        return self._lifecycle.state is State.READY

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, list tools, report readiness, and hold the session until `close`.

        When the session breaks after readiness, wait: a call may ask for a reconnect
        (up to ``config.reconnect`` times), else `close` ends the task.

        Raises:
            ConnectFailed: The first connect failed, or the connection was closed before it was ready.
        """
        lifecycle = self._lifecycle
        try:
            if lifecycle.state is State.CLOSED:
                raise ConnectFailed("the connection was closed before it connected")
            lifecycle.move(State.CONNECTING)
            first_failure: ConnectFailed | None = None  # raised to the starter, outside the guard's group
            async with anyio.create_task_group() as guard:
                guard.start_soon(self._close_when_cancelled)
                try:
                    await self._sessions(task_status)
                except ConnectFailed as exc:
                    first_failure = exc
                guard.cancel_scope.cancel()
            if first_failure is not None:
                raise first_failure
        finally:
            if lifecycle.state is not State.CLOSED:
                lifecycle.move(State.CLOSED)

    async def _sessions(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        """The first session, then one for each reconnect a call asks for."""
        lifecycle = self._lifecycle
        await self._session(task_status)
        while await self._reconnect_asked():
            try:
                await self._session(None)
            except ConnectFailed as exc:
                logger.warning("MCP server %r could not reconnect: %s", self.name, exc)
                self.failure = str(exc)
                if lifecycle.state is State.RECONNECTING:
                    lifecycle.move(self._broken_state())

    async def _close_when_cancelled(self) -> None:
        """Pass the owner's cancellation on to a ready session, whose scope is shielded (see `_session`)."""
        try:
            await anyio.sleep_forever()
        finally:
            scope = self._shielded
            if scope is not None:  # else no session is ready, and the cancellation reaches it as is
                self.close()
                scope.cancel()

    async def _reconnect_asked(self) -> bool:
        """After a session ended: wait until a call asks for a reconnect (True) or the owner closes."""
        if self._lifecycle.state is State.READY:  # the session ended by itself; its failure is recorded
            self._break(self.failure or "the session ended")
        await self._lifecycle.wait_while(State.BROKEN, State.FAILED)
        if self._lifecycle.state is not State.RECONNECTING:
            return False
        self._reconnects_left -= 1
        return True

    async def _session(self, task_status: anyio.abc.TaskStatus[None] | None) -> None:
        """One session, from connect to its end (closed or broken); ``task_status`` on the first one.

        Once ready, the session's scope is shielded: the SDK's tasks check for cancellation
        several times a request, walking every enclosing scope up to a shielded one, and the
        owner's scopes are the longer part of that walk. The owner's cancellation still
        reaches the session: `_close_when_cancelled` closes it and cancels this scope.
        """
        first = task_status is not None
        scope = anyio.CancelScope(deadline=anyio.current_time() + self.config.connect_timeout)
        self._attempt = scope
        ready = False
        try:
            with scope:
                async with AsyncExitStack() as stack:
                    cache = self._cache
                    # A reconnect discovers again: the session it replaces may have broken for that.
                    discovered = cache.discovered() if cache is not None and first else None
                    try:
                        client = await open_client(
                            self.config,
                            stack,
                            stderr=self._stderr,
                            client_info=self._client_info,
                            logging_callback=self._logs.on_log,
                            log_level=self._log_level,
                            message_handler=self._on_message,
                            cache=None if cache is None else cache.config(),
                            discovered=discovered,
                            callbacks=self.answerer.callbacks(),
                        )
                        listed, page = await list_tools(self.config, client)
                    except Exception:
                        if cache is not None and discovered is not None:
                            cache.forget_discovered()  # stale, maybe: the next connect discovers
                        raise
                    self._adopted = discovered is not None
                    result = client.session.discover_result
                    if cache is not None and discovered is None and result is not None:
                        cache.keep_discovered(client.protocol_version, result, page)
                    if first:  # a run's tools stay those it started with
                        self.tools = await prepare_tools(self.config, listed)
                        self._listed = listed
                        self._listed_expires = listing_expiry(self._cache, client, page)
                    self.protocol_version = client.protocol_version
                    scope.deadline = math.inf
                    scope.shield = True
                    self._shielded = scope
                    self._attempt = None
                    if self._lifecycle.state is State.CLOSED:
                        if first:
                            raise ConnectFailed("the connection was closed while it connected")
                        return
                    self._client = client
                    self.failure = None
                    ready = True
                    self._lifecycle.move(State.READY)
                    if task_status is not None:
                        task_status.started()
                    else:
                        logger.info("MCP server %r reconnected", self.name)
                    async with anyio.create_task_group() as watchers:
                        self._watchers = watchers
                        watchers.start_soon(self._listen, client)
                        await self._lifecycle.wait_while(State.READY)  # closed, or broken by a call
                        self._watchers = None
                        watchers.cancel_scope.cancel()
        except ConnectFailed:
            raise
        except Exception as exc:
            tail = await self._stderr.tail()
            if not ready:
                raise ConnectFailed(describe_failure(self.config, exc, tail)) from exc
            # The session broke after it was ready: record it; calls report it to the model.
            self.failure = describe_failure(self.config, exc, tail)
            logger.warning("MCP server %r failed: %s", self.name, self.failure)
        finally:
            self._attempt = None
            self._shielded = None
            self._watchers = None
            self._client = None
            self._logs.report_dropped()
            await self._stderr.aclose()
        if not ready and scope.cancelled_caught:
            if self._lifecycle.state is State.CLOSED:  # `close` cancelled the attempt
                if first:
                    raise ConnectFailed("the connection was closed while it connected")
                return
            raise connect_timeout(self.config, await self._stderr.tail())

    def close(self) -> None:
        """End the connection: `run` tears the session down (a connect in flight is cancelled)."""
        if self._lifecycle.state is State.CLOSED:
            return
        self._lifecycle.move(State.CLOSED)
        if self._attempt is not None:
            self._attempt.cancel()

    def _break(self, reason: str) -> None:
        """The session died (a call saw it, or it ended by itself): the next call may reconnect."""
        self.failure = reason  # the session is gone: no pool may lend it again
        if self._cache is not None and self._adopted:
            self._cache.forget_discovered()  # it may be why: the next connect discovers again
        if self._lifecycle.state is State.READY:
            self._lifecycle.move(self._broken_state())

    def _broken_state(self) -> State:
        return State.BROKEN if self._reconnects_left > 0 else State.FAILED

    def renew(self) -> None:
        """Give back the reconnect budget (a pooled session starting a new run)."""
        self._reconnects_left = self.config.reconnect

    async def _reconnected(self) -> None:
        """Ask `run` to reconnect a broken session (once for all callers), and wait for the outcome."""
        lifecycle = self._lifecycle
        if lifecycle.state is State.BROKEN:  # no attempt in flight: ask for one
            lifecycle.move(State.RECONNECTING)
        with anyio.move_on_after(self.config.connect_timeout + 5):  # + the broken session's teardown
            await lifecycle.wait_while(State.RECONNECTING)

    async def probe(self) -> bool:
        """Whether the server still answers (a ``tools/list``: ``ping`` is gone from the 2026 protocol).

        Bound it with a timeout (``anyio.move_on_after``).
        """
        client = self._client
        if client is None:
            return False
        try:
            await client.list_tools(cache_mode="bypass")  # a cached answer proves nothing
        except Exception:  # any failure means the session is not usable
            return False
        return True

    def watch(self) -> None:
        """The session waits in a pool for its next run: listen for tool changes (2026-07-28 servers).

        A 2025 server's ``notifications/tools/list_changed`` is heard without it. Listening
        starts only here, so a run costs no request before its first tool call.
        """
        self._watch.set()

    async def refresh_tools(self) -> None:
        """Before a pooled session's next run: list the tools again if they changed or went stale.

        Stale means the server said so (``list_changed``, a ``subscriptions/listen`` event)
        or its listing's ``ttlMs`` passed; the listing goes through the cache, so another
        session's fresher entry serves it. Without a `ToolCache` nothing is re-listed. A
        failure keeps the tools the session has, with a warning.
        """
        client, cache = self._client, self._cache
        if client is None or cache is None:
            return
        expired = self._listed_expires is not None and cache.clock() >= self._listed_expires
        if not (self._stale or expired):
            return
        self._stale = False
        try:
            with anyio.fail_after(self.config.connect_timeout):
                listed, page = await list_tools(self.config, client)
                if listed != self._listed:
                    self.tools = await prepare_tools(self.config, listed)
                    logger.info("MCP server %r: its tools changed; the next run gets the new list", self.name)
                self._listed = listed
                self._listed_expires = listing_expiry(self._cache, client, page)
        except Exception as exc:  # the session keeps its tools; a broken one is found at the next call
            logger.warning("MCP server %r: could not list its tools again: %s", self.name, exc)

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._stale = True
        await anyio.lowlevel.checkpoint()

    async def _listen(self, client: Client) -> None:
        """Once the session waits in a pool, hear a 2026-07-28 server's tool changes until it ends."""
        await self._watch.wait()
        capabilities = client.server_capabilities
        if (
            self._cache is None
            or client.protocol_version not in MODERN_PROTOCOL_VERSIONS
            or capabilities.tools is None
            or not capabilities.tools.list_changed
        ):
            return
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _ in subscription:
                    self._stale = True
        except Exception as exc:  # no listening: the TTL still bounds how stale the tools get
            logger.debug("MCP server %r: subscriptions/listen ended: %s", self.name, exc)

    input_rounds: Final = True
    """`call_tool` takes ``input_round``: a server's input requests become interrupts."""

    @overload
    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        meta: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        progress_callback: ProgressFnT | None = None,
        input_round: None = None,
    ) -> types.CallToolResult: ...

    @overload
    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        meta: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        progress_callback: ProgressFnT | None = None,
        input_round: tuple[types.InputResponses | None, str | None],
    ) -> types.CallToolResult | types.InputRequiredResult: ...

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        meta: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        progress_callback: ProgressFnT | None = None,
        input_round: tuple[types.InputResponses | None, str | None] | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Call one tool; every failure becomes `ToolCallError` within ``call_timeout``.

        ``headers`` are added to the HTTP request of this call (HTTP transports only).
        With ``input_round`` (the answers and ``requestState`` of the round before, or
        ``(None, None)`` first), a server's ``input_required`` result is returned to the caller.

        Raises:
            ToolTimeoutError: No answer within ``call_timeout``; the request was cancelled.
            ToolCallError: The server is gone or answered with a protocol error.
        """
        state = self._lifecycle.state
        if state is State.BROKEN or state is State.RECONNECTING:
            await self._reconnected()
            state = self._lifecycle.state
        client = self._client if state is State.READY else None
        if client is None:
            raise not_connected(self.config, name, self.failure)
        timeout = self.config.call_timeout
        reset = CALL_HEADERS.set(headers) if headers else None
        # Only an HTTP response has a byte cap to note a call's oversized answer in.
        record, recording = call_record() if self._records_calls else (None, None)
        answerer = self.answerer
        answered = answerer.answered  # a request answered during the call is noted in its result
        opened = answerer.open(name) if answerer.tracking else None  # only for a policy that asks
        request_meta: types.RequestParamsMeta | None = dict(meta) if meta else None  # pyright: ignore[reportAssignmentType]
        self._in_flight += 1
        try:
            # The SDK's own request clock bounds the answer (its cancel scope is there anyway, so a
            # call costs no second one); the transport bounds the write (`_transport`).
            if input_round is None:
                result = await client.call_tool(
                    name,
                    dict(arguments),
                    read_timeout_seconds=timeout,
                    progress_callback=progress_callback,
                    meta=request_meta,
                )
            else:
                try:
                    result = await self._call_round(
                        client, name, arguments, request_meta, progress_callback, input_round
                    )
                except MCPError as exc:
                    # As `Client.call_tool` does, a 2026-era server's `HEADER_MISMATCH` (the tool's listed
                    # schema is stale) is answered by listing the tools again and resending once.
                    if exc.code != HEADER_MISMATCH or client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
                        raise
                    await client.list_tools(cache_mode="refresh")
                    result = await self._call_round(
                        client, name, arguments, request_meta, progress_callback, input_round
                    )
            if answerer.answered != answered and isinstance(result, types.CallToolResult):
                result = answerer.noted(result, answered)
            return result
        except anyio.get_cancelled_exc_class():
            self._abandoned = True  # the server may still run the call: no later run gets this session
            raise
        except Exception as exc:  # boundary: every failure becomes a readable tool error
            timed_out = isinstance(exc, TimeoutError) or (
                isinstance(exc, MCPError) and exc.code == types.REQUEST_TIMEOUT
            )
            if timed_out:
                self._abandoned = True
            tail = await self._stderr.tail() if ends_session(exc) else ""
            oversized = record.oversized if record is not None else None
            failure = call_failure(self.config, name, exc, oversized=oversized, stderr_tail=tail)
            if failure.broken is not None and self._client in (client, None):  # not a newer session
                self._break(failure.broken)
            raise failure.error from (None if timed_out else exc)
        finally:
            self._in_flight -= 1
            if opened is not None:
                answerer.close(opened)
            if recording is not None:
                end_call_record(recording)
            if reset is not None:
                CALL_HEADERS.reset(reset)

    def _call_round(
        self,
        client: Client,
        name: str,
        arguments: Mapping[str, Any],
        meta: types.RequestParamsMeta | None,
        progress_callback: ProgressFnT | None,
        input_round: tuple[types.InputResponses | None, str | None],
    ) -> Coroutine[Any, Any, types.CallToolResult | types.InputRequiredResult]:
        """One round of a call whose ``input_required`` answers go back to the caller."""
        return client.session.call_tool(
            name,
            dict(arguments),
            read_timeout_seconds=self.config.call_timeout,
            progress_callback=progress_callback,
            input_responses=input_round[0],
            request_state=input_round[1],
            meta=meta,
            allow_input_required=True,
        )
