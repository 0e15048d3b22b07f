"""One MCP server's session, owned by one task from connect to teardown.

`ServerConnection.run` connects, lists every page of tools and prepares each one
(its schema checked, its validator built, its description cut) all within
``connect_timeout``, reports readiness, then holds the session open until `close`
is called. A server offering more than ``max_tools`` tools is not connected: listing
stops at the page that passes the cap. Preparing yields to the event loop every few
dozen tools, so a big catalogue never stalls other runs. With a `ServerCache`
(see `mcpbridge.caching`), a fresh discovery result is adopted and a fresh tool list
served without a request; a pooled session lists again (`refresh_tools`) only once
its list went stale (``ttlMs``, ``list_changed``, a ``subscriptions/listen`` event).

Where a connection is, is one `State` (see `mcpbridge._lifecycle`): a session that
breaks after readiness is reconnected at the next call (up to ``config.reconnect``
times), and the calls that come meanwhile wait for that one reconnect. Failures
before readiness propagate to the starter; failures after it are recorded, never
raised into the owner's task group. Calls translate every transport and protocol
failure into `ToolCallError` within ``call_timeout`` (the messages: `mcpbridge._failures`).

The server's log notifications go to the ``mcpbridge.server.<name>`` logger with
control characters escaped (a server cannot forge log lines), their text cut to
`LOG_TEXT_CHARS`, their level capped at ``max_log_level``, and their rate bounded
per session (a burst of `LOG_BURST`, then `LOG_PER_SECOND`); a line says how many
were dropped.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import re
import time
from collections.abc import Coroutine, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
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
    too_many_tools,
)
from mcpbridge._holding import HeldCall, HeldCalls
from mcpbridge._lifecycle import Lifecycle, State
from mcpbridge._network import CALL_HEADERS, call_record, end_call_record
from mcpbridge._redact import install_url_redaction, redact_urls
from mcpbridge._schema import ArgumentsValidator, InvalidSchemaError, normalize_input_schema
from mcpbridge._transport import StderrLog, open_client
from mcpbridge.caching import ServerCache
from mcpbridge.config import HttpServer, ServerConfig, SseServer
from mcpbridge.interrupts import InputPolicy

__all__ = ["ListedTool", "ServerConnection", "State"]

logger = logging.getLogger("mcpbridge")
install_url_redaction()  # every process that connects to an MCP server logs URLs redacted

_MAX_TOOL_PAGES: Final = 1000

_PREPARE_BATCH: Final = 32
"""Tools prepared between two yields to the event loop (~0.1 ms each when their schema is new)."""

LOG_TEXT_CHARS: Final = 2000
"""The most characters of one server log message that are logged; the rest is cut, with a note."""
LOG_BURST: Final = 50
"""Server log messages one session may send at once before the rate bound applies."""
LOG_PER_SECOND: Final = 10.0
"""Server log messages per second one session may send after its burst; more are dropped and counted."""
_LOGGER_NAME_CHARS: Final = 100
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

_LOG_LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}


@dataclass(frozen=True, slots=True)
class ListedTool:
    """A tool of a server, prepared at connect time: its schema checked and its validator built.

    Attributes:
        tool: The tool as the server listed it.
        schema: The complete object schema the model sees.
        description: The description the model sees (cut to ``max_description_chars``).
        validator: Checks a call's arguments against ``schema``.
    """

    tool: types.Tool
    schema: dict[str, Any]
    description: str
    validator: ArgumentsValidator


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
        self._reconnects_left = config.reconnect
        self._stderr = StderrLog()
        self._server_logger = logging.getLogger(f"mcpbridge.server.{config.name}")
        self._log_cap = _LOG_LEVELS[config.max_log_level]
        self._log_floor = _LOG_LEVELS[log_level] if log_level is not None else logging.CRITICAL + 1
        self._log_tokens = float(LOG_BURST)
        self._log_refilled = time.monotonic()
        self._log_dropped = 0
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
            await self._session(task_status)
            while await self._reconnect_asked():
                try:
                    await self._session(None)
                except ConnectFailed as exc:
                    logger.warning("MCP server %r could not reconnect: %s", self.name, exc)
                    self.failure = str(exc)
                    if lifecycle.state is State.RECONNECTING:
                        lifecycle.move(self._broken_state())
        finally:
            if lifecycle.state is not State.CLOSED:
                lifecycle.move(State.CLOSED)

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
        """One session, from connect to its end (closed or broken); ``task_status`` on the first one."""
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
                            logging_callback=self._on_log,
                            log_level=self._log_level,
                            message_handler=self._on_message,
                            cache=None if cache is None else cache.config(),
                            discovered=discovered,
                            callbacks=self.answerer.callbacks(),
                        )
                        listed, page = await self._list_tools(client)
                    except Exception:
                        if cache is not None and discovered is not None:
                            cache.forget_discovered()  # stale, maybe: the next connect discovers
                        raise
                    self._adopted = discovered is not None
                    result = client.session.discover_result
                    if cache is not None and discovered is None and result is not None:
                        cache.keep_discovered(client.protocol_version, result, page)
                    if first:  # a run's tools stay those it started with
                        self.tools = await self._prepare(listed)
                        self._listed = listed
                        self._listed_expires = self._expiry(client, page)
                    self.protocol_version = client.protocol_version
                    scope.deadline = math.inf
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
            self._watchers = None
            self._client = None
            self._report_dropped_logs()
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
                listed, page = await self._list_tools(client)
                if listed != self._listed:
                    self.tools = await self._prepare(listed)
                    logger.info("MCP server %r: its tools changed; the next run gets the new list", self.name)
                self._listed = listed
                self._listed_expires = self._expiry(client, page)
        except Exception as exc:  # the session keeps its tools; a broken one is found at the next call
            logger.warning("MCP server %r: could not list its tools again: %s", self.name, exc)

    def _expiry(self, client: Client, page: types.ListToolsResult) -> float | None:
        """When the listing goes stale, if the server said (2026-07-28 hints only)."""
        cache = self._cache
        if cache is None or client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return None
        if "ttl_ms" not in page.model_fields_set:
            return None
        return cache.clock() + min(page.ttl_ms / 1000, cache.max_ttl)

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

    async def _list_tools(self, client: Client) -> tuple[list[types.Tool], types.ListToolsResult]:
        """The wanted tools of every page, and the first page (its cache hints)."""
        tools: list[types.Tool] = []
        cursor: str | None = None
        seen: set[str] = set()
        limit = self.config.max_tools
        first: types.ListToolsResult | None = None
        for _ in range(_MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor)
            first = first or page
            tools.extend(page.tools)
            # Counted before filtering: listing and holding the tools is what costs the process.
            if len(tools) > limit:
                raise too_many_tools(limit)
            cursor = page.next_cursor
            if cursor is None:
                break
            if cursor in seen:
                logger.warning(
                    "MCP server %r repeated a tools/list cursor; stopping at %d tools", self.name, len(tools)
                )
                break
            seen.add(cursor)
        assert first is not None  # the loop runs at least once
        return [tool for tool in tools if self._wanted(tool.name)], first

    async def _prepare(self, tools: list[types.Tool]) -> list[ListedTool]:
        """Check every tool's schema and build its validator, yielding to the event loop as it goes.

        A tool with an invalid schema is skipped with a warning. Runs under the connect
        deadline, so ``connect_timeout`` bounds it too.
        """
        prepared: list[ListedTool] = []
        for index, tool in enumerate(tools):
            if index % _PREPARE_BATCH == _PREPARE_BATCH - 1:
                await anyio.lowlevel.checkpoint()
            try:
                schema = normalize_input_schema(tool.input_schema)
            except InvalidSchemaError as exc:
                logger.warning("skipping tool %r of MCP server %r: %s", tool.name, self.name, exc)
                continue
            prepared.append(ListedTool(tool, schema, self._description(tool), ArgumentsValidator(schema)))
        return prepared

    def _description(self, tool: types.Tool) -> str:
        text = tool.description or tool.title or tool.name
        limit = self.config.max_description_chars
        if len(text) <= limit:
            return text
        logger.warning(
            "cutting the description of tool %r of MCP server %r from %d to %d characters "
            "(max_description_chars)",
            tool.name,
            self.name,
            len(text),
            limit,
        )
        return text[:limit] + f"\n[Description cut: {limit:,} of {len(text):,} characters shown.]"

    def _wanted(self, name: str) -> bool:
        include = self.config.include_tools
        if include is not None and not any(fnmatch.fnmatchcase(name, p) for p in include):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.config.exclude_tools)

    async def _on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        level = _LOG_LEVELS.get(params.level, logging.INFO)
        if level < self._log_floor:  # below what was asked for: a server ignoring the level
            return
        if not self._admit_log():
            return
        self._report_dropped_logs()
        source = f"[{_log_text(params.logger, _LOGGER_NAME_CHARS)}] " if params.logger else ""
        # The server picks its level; the deployment caps it, so a server cannot raise alarms.
        self._server_logger.log(min(level, self._log_cap), "%s%s", source, _log_text(params.data))

    def _admit_log(self) -> bool:
        """A token bucket per session: a burst, then a steady rate; what is over it is counted, not logged."""
        now = time.monotonic()
        refill = (now - self._log_refilled) * LOG_PER_SECOND
        self._log_tokens = min(float(LOG_BURST), self._log_tokens + refill)
        self._log_refilled = now
        if self._log_tokens < 1:
            self._log_dropped += 1
            return False
        self._log_tokens -= 1
        return True

    def _report_dropped_logs(self) -> None:
        dropped, self._log_dropped = self._log_dropped, 0
        if dropped:
            self._server_logger.log(
                min(logging.WARNING, self._log_cap),
                "dropped %d log messages of MCP server %r: it sent more than %d at once or %g a second",
                dropped,
                self.name,
                LOG_BURST,
                LOG_PER_SECOND,
            )


def _log_text(data: Any, limit: int = LOG_TEXT_CHARS) -> str:
    """A server's log data as one line: cut to ``limit`` characters, URLs redacted, controls escaped."""
    if isinstance(data, str):
        text = data
    else:
        try:
            text = json.dumps(data, ensure_ascii=False, default=str)
        except (TypeError, ValueError):  # not JSON data (the SDK parsed it, so rare): its repr
            text = repr(data)
    note = ""
    if len(text) > limit:
        note = f" [cut: {limit:,} of {len(text):,} characters shown]"
        text = text[:limit]
    # The server's text may hold URLs with tokens, like any other log line.
    return _CONTROL_RE.sub(_escape, redact_urls(text)) + note


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")
