"""One MCP server's session, owned by one task from connect to teardown.

`ServerConnection.run` connects, lists every page of tools and prepares each one
(its schema checked, its validator built, its description cut) all within
``connect_timeout``, reports readiness, then holds the session open until `close`
is called. A server offering more than ``max_tools`` tools is not connected: listing
stops at the page that passes the cap. Preparing yields to the event loop every few
dozen tools, so a big catalogue never stalls other runs.

Failures before readiness propagate to the starter; failures after it are
recorded, never raised into the owner's task group. Calls translate every
transport and protocol failure into `ToolCallError` within ``call_timeout``.

The server's log notifications go to the ``mcpbridge.server.<name>`` logger with
control characters escaped (a server cannot forge log lines), their text cut to
`LOG_TEXT_CHARS`, their level capped at ``max_log_level``, and their rate bounded
per session (a burst of `LOG_BURST`, then `LOG_PER_SECOND`); a line says how many
were dropped.
"""

from __future__ import annotations

import fnmatch
import functools
import io
import json
import logging
import math
import re
import tempfile
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Final

import anyio
import httpx2
import mcp_types as types
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.dispatcher import ProgressFnT
from pydantic import ValidationError

from mcpbridge._content import describe_invalid_result
from mcpbridge._network import CALL_HEADERS, call_record, end_call_record, http_client
from mcpbridge._redact import install_url_redaction, redact_urls
from mcpbridge._schema import ArgumentsValidator, InvalidSchemaError, normalize_input_schema
from mcpbridge.config import HttpServer, MemoryServer, ServerConfig, SseServer, StdioServer, safe_url
from mcpbridge.errors import MCPBridgeError, ToolCallError, ToolTimeoutError, UsageError

__all__ = ["ListedTool", "ServerConnection", "describe_failure", "shown_failure"]

logger = logging.getLogger("mcpbridge")
install_url_redaction()  # every process that connects to an MCP server logs URLs redacted

_MAX_TOOL_PAGES: Final = 1000
_STDERR_TAIL_CHARS: Final = 2000
_SSE_EVENT_TOO_LARGE: Final = re.compile(r"Server-sent event exceeded the \d+ byte limit")
"""How the SDK reports an event past ``max_sse_event_size`` (it resolves the request with this text)."""
_UNREACHABLE: Final = (
    "the server could not be connected, or did not answer as an MCP server; check its URL and that "
    "it serves MCP over HTTP (the deployment's log has the details)"
)
"""What users see of every connection failure of a server with a URL policy (a user-registered one):
whether a port is closed, silent or serving something else would make the bridge a port scanner."""

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
    """A connected MCP server: its session, its tools, and its failure if it has one."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        client_info: types.Implementation,
        log_level: types.LoggingLevel | None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.tools: list[ListedTool] = []
        self.protocol_version: str | None = None
        self.failure: str | None = None
        self._client_info = client_info
        self._log_level: types.LoggingLevel | None = log_level
        self._client: Client | None = None
        self._closing = anyio.Event()
        self._wake = anyio.Event()
        self._attempt_done = anyio.Event()
        self._reconnects_left = config.reconnect
        self._reconnect_wanted = False
        self._stderr: io.TextIOBase | None = None
        self._server_logger = logging.getLogger(f"mcpbridge.server.{config.name}")
        self._log_cap = _LOG_LEVELS[config.max_log_level]
        self._log_floor = _LOG_LEVELS[log_level] if log_level is not None else logging.CRITICAL + 1
        self._log_tokens = float(LOG_BURST)
        self._log_refilled = time.monotonic()
        self._log_dropped = 0

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, list tools, report readiness, and hold the session until `close`.

        When the session breaks after readiness, wait: a call may ask for a reconnect
        (up to ``config.reconnect`` times), else `close` ends the task.
        """
        started = False
        while True:
            try:
                await self._session(started, task_status)
            except _ConnectFailed as exc:
                if not started:
                    raise
                self.failure = str(exc)
                logger.warning("MCP server %r could not reconnect: %s", self.name, self.failure)
                self._attempt_done.set()  # wakes the calls waiting for this reconnect
            started = True
            if not self._reconnect_wanted and not self._closing.is_set():
                if self._reconnects_left <= 0:
                    await self._closing.wait()
                    return
                self._wake = anyio.Event()
                await self._wake.wait()  # a call asks for a reconnect, or the owner closes
            if self._closing.is_set():
                return
            self._reconnect_wanted = False
            self._reconnects_left -= 1

    async def _session(self, started: bool, task_status: anyio.abc.TaskStatus[None]) -> None:
        """One session, from connect to its end (closed or broken)."""
        scope = anyio.CancelScope(deadline=anyio.current_time() + self.config.connect_timeout)
        ready = False
        try:
            with scope:
                async with AsyncExitStack() as stack:
                    client = await self._open(stack)
                    listed = await self._list_tools(client)
                    if not started:  # a run's tools stay those it started with
                        self.tools = await self._prepare(listed)
                    self.protocol_version = client.protocol_version
                    scope.deadline = math.inf
                    self._client = client
                    self.failure = None
                    ready = True
                    if not started:
                        task_status.started()
                    else:
                        logger.info("MCP server %r reconnected", self.name)
                    self._attempt_done.set()
                    self._wake = anyio.Event()
                    if not self._closing.is_set():
                        await self._wake.wait()  # closed, or broken by a call
        except Exception as exc:
            tail = await self._read_stderr_tail()
            if not ready:
                raise _ConnectFailed(describe_failure(self.config, exc, tail)) from exc
            # The session broke after it was ready: record it; calls report it to the model.
            self.failure = describe_failure(self.config, exc, tail)
            logger.warning("MCP server %r failed: %s", self.name, self.failure)
        finally:
            self._client = None
            self._report_dropped_logs()
            if self._stderr is not None:
                await self._read_stderr_tail()  # keep the tail for messages after the file is gone
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._stderr.close)
                self._stderr = None
        if not ready and scope.cancelled_caught:
            raise _ConnectFailed(
                shown_failure(
                    self.config,
                    f"did not finish connecting within connect_timeout={self.config.connect_timeout:g}s; "
                    "check that the server is up and answers MCP, or raise `connect_timeout`"
                    + _tail_note(self._stderr_tail_cached),
                )
            )

    def close(self) -> None:
        """Ask `run` to tear the session down."""
        self._closing.set()
        self._wake.set()

    def _broken(self, reason: str) -> None:
        """The session died during a call: end it, so the next call may reconnect."""
        self.failure = reason  # the session is gone: no pool may lend it again
        self._wake.set()

    def renew(self) -> None:
        """Give back the reconnect budget (a pooled session starting a new run)."""
        self._reconnects_left = self.config.reconnect

    async def _reconnected(self) -> None:
        """Ask `run` to reconnect a broken session, and wait (up to ``connect_timeout``) for it."""
        if self._closing.is_set() or self._reconnects_left <= 0:
            return
        if not self._reconnect_wanted:  # no attempt in flight: ask for one
            self._reconnect_wanted = True
            self._attempt_done = anyio.Event()
            self._wake.set()
        done = self._attempt_done
        with anyio.move_on_after(self.config.connect_timeout + 5):  # + the broken session's teardown
            await done.wait()

    @property
    def alive(self) -> bool:
        """Whether the session is open and has not failed."""
        return self._client is not None and self.failure is None and not self._closing.is_set()

    async def probe(self) -> bool:
        """Whether the server still answers (a ``tools/list``: ``ping`` is gone from the 2026 protocol).

        Bound it with a timeout (``anyio.move_on_after``).
        """
        client = self._client
        if client is None:
            return False
        try:
            await client.list_tools()
        except Exception:  # any failure means the session is not usable
            return False
        return True

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        meta: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        progress_callback: ProgressFnT | None = None,
    ) -> types.CallToolResult:
        """Call one tool; every failure becomes `ToolCallError` within ``call_timeout``.

        ``headers`` are added to the HTTP request of this call (HTTP transports only).

        Raises:
            ToolTimeoutError: No answer within ``call_timeout``; the request was cancelled.
            ToolCallError: The server is gone or answered with a protocol error.
        """
        if self.failure is not None:  # the session broke (it may still be tearing down)
            await self._reconnected()
        client = self._client if self.failure is None else None
        if client is None:
            reason = f": {self.failure}" if self.failure else ""
            raise ToolCallError(
                f"MCP server {self.name!r} is not connected{reason}", server=self.name, tool=name
            )
        timeout = self.config.call_timeout
        reset = CALL_HEADERS.set(headers) if headers else None
        record, recording = call_record()
        try:
            # The SDK's own timeout starts after the request is written; this one also covers the write.
            with anyio.CancelScope(deadline=anyio.current_time() + timeout):
                return await client.call_tool(
                    name,
                    dict(arguments),
                    read_timeout_seconds=timeout,
                    progress_callback=progress_callback,
                    meta=types.RequestParamsMeta(**meta) if meta else None,
                )
        except TimeoutError:  # a bounded write inside the SDK's transport
            raise self._timeout(name) from None
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                raise self._timeout(name) from exc
            limit = record.oversized
            if limit is None and _SSE_EVENT_TOO_LARGE.search(exc.message):
                limit = getattr(self.config, "max_response_bytes", None)
            if limit is not None:
                # Only this answer was dropped: the session goes on serving the next calls.
                raise ToolCallError(
                    f"MCP server {self.name!r} answered tool {name!r} with more than "
                    f"max_response_bytes={limit:,} bytes; the answer was dropped unread. Ask for less at a "
                    "time (a narrower query, a page), or ask the deployment to raise `max_response_bytes`",
                    server=self.name,
                    tool=name,
                    code=exc.code,
                ) from exc
            if exc.code == types.CONNECTION_CLOSED:
                message = f"MCP server {self.name!r} closed the connection during tool {name!r}"
                self._broken(message)
            else:
                message = (
                    f"MCP server {self.name!r} answered tool {name!r} with error {exc.code}: {exc.message}"
                )
            raise ToolCallError(message, server=self.name, tool=name, code=exc.code, data=exc.data) from exc
        except (ValidationError, RuntimeError) as exc:
            # The server answered, with a result the SDK refuses; the session itself is fine.
            raise ToolCallError(
                f"MCP server {self.name!r} answered tool {name!r} with an invalid result: "
                f"{describe_invalid_result(exc)}",
                server=self.name,
                tool=name,
            ) from exc
        except Exception as exc:  # boundary: any transport failure becomes a readable tool error
            detail = describe_failure(self.config, exc, await self._read_stderr_tail())
            self._broken(detail)
            raise ToolCallError(
                f"MCP server {self.name!r} failed during tool {name!r}: {detail}", server=self.name, tool=name
            ) from exc
        finally:
            end_call_record(recording)
            if reset is not None:
                CALL_HEADERS.reset(reset)
        raise self._timeout(name)  # only the deadline ends the scope without an answer

    def _timeout(self, tool: str) -> ToolTimeoutError:
        return ToolTimeoutError(
            f"MCP server {self.name!r} did not answer tool {tool!r} within "
            f"call_timeout={self.config.call_timeout:g}s; the call was cancelled",
            server=self.name,
            tool=tool,
        )

    async def _open(self, stack: AsyncExitStack) -> Client:
        config = self.config
        mode = config.protocol
        transport: Any
        match config:
            case StdioServer():
                # File work off the event loop: the Agent Server refuses blocking calls on it.
                self._stderr = await anyio.to_thread.run_sync(
                    functools.partial(tempfile.TemporaryFile, "w+", encoding="utf-8", errors="replace")
                )
                params = StdioServerParameters(
                    command=config.command,
                    args=list(config.args),
                    env=dict(config.env) if config.env else None,
                    cwd=config.cwd,
                )
                transport = stdio_client(params, errlog=self._stderr)  # pyright: ignore[reportArgumentType]
            case HttpServer():
                client = await stack.enter_async_context(http_client(config))
                transport = streamable_http_client(
                    config.url, http_client=client, max_sse_event_size=config.max_response_bytes
                )
            case SseServer():
                cfg = config

                def factory(
                    headers: dict[str, str] | None = None,
                    timeout: httpx2.Timeout | None = None,
                    auth: httpx2.Auth | None = None,
                ) -> httpx2.AsyncClient:
                    # The SDK caps no event of the legacy stream: the client counts them.
                    return http_client(cfg, events_counted=True, timeout=timeout, auth=auth)

                transport = sse_client(
                    config.url,
                    timeout=config.http_timeout,
                    sse_read_timeout=config.sse_read_timeout,
                    httpx_client_factory=factory,
                    auth=config.auth,
                )
                mode = "legacy"
            case MemoryServer():
                transport = config.server
            case _:  # check_servers admits only the kinds above
                raise UsageError(f"MCP server {config.name!r}: unknown kind {type(config).__name__}")
        client = Client(
            transport,
            mode=mode,
            client_info=self._client_info,
            logging_callback=self._on_log,
            log_level=self._log_level,
            read_timeout_seconds=config.connect_timeout,
        )
        return await stack.enter_async_context(client)

    async def _list_tools(self, client: Client) -> list[types.Tool]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        seen: set[str] = set()
        limit = self.config.max_tools
        for _ in range(_MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            # Counted before filtering: listing and holding the tools is what costs the process.
            if len(tools) > limit:
                raise _ConnectFailed(
                    f"offers more than max_tools={limit} tools; ask its operator to offer fewer, "
                    "or raise `max_tools` (and narrow the tools with `include_tools`)"
                )
            cursor = page.next_cursor
            if cursor is None:
                break
            if cursor in seen:
                logger.warning(
                    "MCP server %r repeated a tools/list cursor; stopping at %d tools", self.name, len(tools)
                )
                break
            seen.add(cursor)
        return [tool for tool in tools if self._wanted(tool.name)]

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

    _stderr_tail_cached: str = ""

    async def _read_stderr_tail(self) -> str:
        if self._stderr is None:
            return self._stderr_tail_cached
        tail = self._stderr_tail_cached
        with anyio.CancelScope(shield=True):
            tail = await anyio.to_thread.run_sync(self._stderr_tail)
        return tail

    def _stderr_tail(self) -> str:
        stderr = self._stderr
        if stderr is None or stderr.closed:
            return self._stderr_tail_cached
        try:
            stderr.flush()
            size = stderr.seek(0, io.SEEK_END)
            stderr.seek(max(0, size - _STDERR_TAIL_CHARS * 4))
            text = stderr.read()[-_STDERR_TAIL_CHARS:]
        except (OSError, ValueError):
            return self._stderr_tail_cached
        self._stderr_tail_cached = text.strip()
        return self._stderr_tail_cached


class _ConnectFailed(MCPBridgeError):
    """A server could not be connected; the message is the readable reason."""


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


def _tail_note(tail: str) -> str:
    return f"; its stderr ends with:\n{tail}" if tail else ""


def shown_failure(config: ServerConfig, detail: str) -> str:
    """What a run shows of a failure: ``detail``, or for a server with a URL policy one fixed text.

    A user-registered server's failures differ by what the address is (a closed port, a silent
    one, another service): users get `_UNREACHABLE`, the deployment's log gets ``detail``.
    """
    if getattr(config, "url_policy", None) is None:
        return detail
    logger.warning("MCP server %r (user-registered) failed: %s", config.name, detail)
    return _UNREACHABLE


def describe_failure(config: ServerConfig, exc: BaseException, stderr_tail: str = "") -> str:
    """A readable reason for a connection or transport failure, with what to do about it.

    For a server with a URL policy, the fixed text of `shown_failure` (the reason is logged).
    A group of several errors is described as several: each one's reason, numbered.
    """
    exc = _leaf(exc)
    if isinstance(exc, _ConnectFailed):
        return str(exc)
    return shown_failure(config, _detail(config, exc, stderr_tail))


def _detail(config: ServerConfig, exc: BaseException, stderr_tail: str) -> str:
    exc = _leaf(exc)
    if isinstance(exc, _ConnectFailed):
        return str(exc)
    if isinstance(exc, BaseExceptionGroup):
        group: BaseExceptionGroup[BaseException] = exc  # pyright: ignore[reportUnknownVariableType]
        reasons = [_detail(config, member, "") for member in group.exceptions]
        listed = "; ".join(f"({n}) {reason}" for n, reason in enumerate(reasons, 1))
        return f"{len(reasons)} failures: {listed}{_tail_note(stderr_tail)}"
    return _describe(config, exc, stderr_tail)


def _describe(config: ServerConfig, exc: BaseException, stderr_tail: str) -> str:
    match config:
        case StdioServer():
            where = config.command
        case MemoryServer():
            where = "in-process server"
        case HttpServer() | SseServer():
            where = safe_url(config.url)
        case _:
            where = type(config).__name__
    tail = _tail_note(stderr_tail)
    match exc:
        case FileNotFoundError() if isinstance(config, StdioServer):
            return f"command {config.command!r} was not found; install it or give its full path in `command`"
        case PermissionError() if isinstance(config, StdioServer):
            return f"command {config.command!r} is not executable; check its permissions"
        case httpx2.ConnectError() | httpx2.ConnectTimeout():
            return (
                f"cannot reach {where} ({exc or type(exc).__name__}); check that the server runs and the URL"
            )
        case httpx2.HTTPStatusError():
            status = exc.response.status_code
            hint = {
                401: "check the credentials (`bearer_token`, `headers` or `auth`)",
                403: "the credentials are not allowed to use this server",
                404: "check the URL path (streamable HTTP servers usually serve /mcp)",
            }.get(status, "check the server's logs")
            return f"{where} answered HTTP {status}; {hint}"
        case MCPError() if exc.code == types.CONNECTION_CLOSED:
            return f"{where} closed the connection{tail or '; check the server logs'}"
        case MCPError():
            return f"{where} answered with MCP error {exc.code}: {exc.message}"
        case TimeoutError():
            return f"{where} did not answer in time{tail}"
        case _:
            text = str(exc) or type(exc).__name__
            return f"{where}: {type(exc).__name__}: {text}{tail}"


def _leaf(exc: BaseException) -> BaseException:
    """The one error inside nested groups of one; a group of several is returned as it is."""
    while isinstance(exc, BaseExceptionGroup):
        group: BaseExceptionGroup[BaseException] = exc  # pyright: ignore[reportUnknownVariableType]
        if len(group.exceptions) != 1:
            return group
        exc = group.exceptions[0]
    return exc
