"""What a failed connection or call is, and what the run is told about it.

`describe_failure` turns a connection or transport failure into one readable
reason with what to do about it; `call_failure` sorts a failed tool call into an
answer the session survives or a break that ends it, with its `ToolCallError`.
Every message a run shows of a server failure is written here. A server with a
URL policy (a user-registered one) shows one fixed text (`shown_failure`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Final

import httpx2
import mcp_types as types
from mcp import MCPError
from pydantic import ValidationError

from mcpbridge._content import describe_invalid_result
from mcpbridge.config import HttpServer, MemoryServer, ServerConfig, SseServer, StdioServer, safe_url
from mcpbridge.errors import MCPBridgeError, ToolCallError, ToolTimeoutError

__all__ = [
    "UNREACHABLE",
    "CallFailure",
    "ConnectFailed",
    "call_failure",
    "call_timeout",
    "connect_timeout",
    "describe_failure",
    "ends_session",
    "leaf",
    "not_connected",
    "shown_failure",
    "too_many_tools",
]

logger = logging.getLogger("mcpbridge")

UNREACHABLE: Final = (
    "the server could not be connected, or did not answer as an MCP server; check its URL and that "
    "it serves MCP over HTTP (the deployment's log has the details)"
)
"""What users see of every connection failure of a server with a URL policy (a user-registered one):
whether a port is closed, silent or serving something else would make the bridge a port scanner."""

_SSE_EVENT_TOO_LARGE: Final = re.compile(r"Server-sent event exceeded the \d+ byte limit")
"""How the SDK reports an event past ``max_sse_event_size`` (it resolves the request with this text)."""


class ConnectFailed(MCPBridgeError):
    """A server could not be connected; the message is the readable reason."""


@dataclass(frozen=True, slots=True)
class CallFailure:
    """A failed tool call, sorted.

    Attributes:
        error: What the caller raises (``from`` the original exception).
        broken: Why the session is gone, when the failure ended it; ``None`` when it goes on.
    """

    error: ToolCallError
    broken: str | None = None


def call_failure(
    config: ServerConfig, tool: str, exc: Exception, *, oversized: int | None = None, stderr_tail: str = ""
) -> CallFailure:
    """Sort a failed call of ``tool``: an answer the session survives, or a break that ends it.

    Args:
        config: The server called.
        tool: The tool's MCP name.
        exc: What the SDK raised.
        oversized: The byte cap, when the transport dropped an answer past it.
        stderr_tail: The end of a stdio server's stderr (read only when `ends_session` says so).
    """
    name = config.name
    match exc:
        case TimeoutError():  # a bounded write inside the SDK's transport
            return CallFailure(call_timeout(config, tool))
        case MCPError() if exc.code == types.REQUEST_TIMEOUT:
            return CallFailure(call_timeout(config, tool))
        case MCPError():
            limit = oversized
            if limit is None and _SSE_EVENT_TOO_LARGE.search(exc.message):
                limit = getattr(config, "max_response_bytes", None)
            if limit is not None:
                # Only this answer was dropped: the session goes on serving the next calls.
                message = (
                    f"MCP server {name!r} answered tool {tool!r} with more than "
                    f"max_response_bytes={limit:,} bytes; the answer was dropped unread. Ask for less at a "
                    "time (a narrower query, a page), or ask the deployment to raise `max_response_bytes`"
                )
                return CallFailure(ToolCallError(message, server=name, tool=tool, code=exc.code))
            if exc.code == types.CONNECTION_CLOSED:
                message = f"MCP server {name!r} closed the connection during tool {tool!r}"
                error = ToolCallError(message, server=name, tool=tool, code=exc.code, data=exc.data)
                return CallFailure(error, broken=message)
            message = f"MCP server {name!r} answered tool {tool!r} with error {exc.code}: {exc.message}"
            return CallFailure(ToolCallError(message, server=name, tool=tool, code=exc.code, data=exc.data))
        case ValidationError() | RuntimeError():
            # The server answered, with a result the SDK refuses; the session itself is fine.
            reason = describe_invalid_result(exc)
            message = f"MCP server {name!r} answered tool {tool!r} with an invalid result: {reason}"
            return CallFailure(ToolCallError(message, server=name, tool=tool))
        case _:  # any transport failure: the session is gone
            detail = describe_failure(config, exc, stderr_tail)
            message = f"MCP server {name!r} failed during tool {tool!r}: {detail}"
            return CallFailure(ToolCallError(message, server=name, tool=tool), broken=detail)


def ends_session(exc: Exception) -> bool:
    """Whether a call's failure is the transport's (the session is gone), not an answer of the server."""
    return not isinstance(exc, TimeoutError | MCPError | ValidationError | RuntimeError)


def call_timeout(config: ServerConfig, tool: str) -> ToolTimeoutError:
    """No answer to a call of ``tool`` within ``call_timeout``."""
    return ToolTimeoutError(
        f"MCP server {config.name!r} did not answer tool {tool!r} within "
        f"call_timeout={config.call_timeout:g}s; the call was cancelled",
        server=config.name,
        tool=tool,
    )


def not_connected(config: ServerConfig, tool: str, failure: str | None) -> ToolCallError:
    """A call of ``tool`` on a server with no session, with the reason when it has one."""
    reason = f": {failure}" if failure else ""
    message = f"MCP server {config.name!r} is not connected{reason}"
    return ToolCallError(message, server=config.name, tool=tool)


def connect_timeout(config: ServerConfig, stderr_tail: str) -> ConnectFailed:
    """Connecting (and listing and preparing the tools) took longer than ``connect_timeout``."""
    return ConnectFailed(
        shown_failure(
            config,
            f"did not finish connecting within connect_timeout={config.connect_timeout:g}s; "
            "check that the server is up and answers MCP, or raise `connect_timeout`"
            + _tail_note(stderr_tail),
        )
    )


def too_many_tools(limit: int) -> ConnectFailed:
    """The server lists more tools than ``max_tools``."""
    return ConnectFailed(
        f"offers more than max_tools={limit} tools; ask its operator to offer fewer, "
        "or raise `max_tools` (and narrow the tools with `include_tools`)"
    )


def shown_failure(config: ServerConfig, detail: str) -> str:
    """What a run shows of a failure: ``detail``, or for a server with a URL policy one fixed text.

    A user-registered server's failures differ by what the address is (a closed port, a silent
    one, another service): users get `UNREACHABLE`, the deployment's log gets ``detail``.
    """
    if getattr(config, "url_policy", None) is None:
        return detail
    logger.warning("MCP server %r (user-registered) failed: %s", config.name, detail)
    return UNREACHABLE


def describe_failure(config: ServerConfig, exc: BaseException, stderr_tail: str = "") -> str:
    """A readable reason for a connection or transport failure, with what to do about it.

    For a server with a URL policy, the fixed text of `shown_failure` (the reason is logged).
    A group of several errors is described as several: each one's reason, numbered.
    """
    exc = leaf(exc)
    if isinstance(exc, ConnectFailed):
        return str(exc)
    return shown_failure(config, _detail(config, exc, stderr_tail))


def leaf(exc: BaseException) -> BaseException:
    """The one error inside nested groups of one; a group of several is returned as it is."""
    while isinstance(exc, BaseExceptionGroup):
        group: BaseExceptionGroup[BaseException] = exc  # pyright: ignore[reportUnknownVariableType]
        if len(group.exceptions) != 1:
            return group
        exc = group.exceptions[0]
    return exc


def _detail(config: ServerConfig, exc: BaseException, stderr_tail: str) -> str:
    exc = leaf(exc)
    if isinstance(exc, ConnectFailed):
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


def _tail_note(tail: str) -> str:
    return f"; its stderr ends with:\n{tail}" if tail else ""
