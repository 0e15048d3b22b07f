"""`mcpbridge._failures`: how a failed call is sorted, and what each failure says."""

from __future__ import annotations

from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import MCPError
from pydantic import BaseModel, ValidationError

from mcpbridge import HttpServer, StdioServer, ToolCallError, ToolTimeoutError, UrlPolicy
from mcpbridge._failures import (
    UNREACHABLE,
    ConnectFailed,
    call_failure,
    connect_timeout,
    describe_failure,
    ends_session,
    not_connected,
    too_many_tools,
)

_HTTP = HttpServer(name="search", url="https://user:pw@search.example.com/mcp?k=v", call_timeout=7)
_STDIO = StdioServer(name="files", command="files-mcp")


def _invalid() -> ValidationError:
    class Result(BaseModel):
        n: int

    try:
        Result.model_validate({"n": "x"})
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


def test_timeouts_are_tool_timeouts_and_keep_the_session() -> None:
    for exc in (TimeoutError(), MCPError(types.REQUEST_TIMEOUT, "late")):
        failure = call_failure(_HTTP, "find", exc)
        assert isinstance(failure.error, ToolTimeoutError) and failure.broken is None
        assert str(failure.error) == (
            "MCP server 'search' did not answer tool 'find' within call_timeout=7s; the call was cancelled"
        )


def test_an_oversized_answer_keeps_the_session() -> None:
    capped = call_failure(_HTTP, "find", MCPError(types.INTERNAL_ERROR, "stream error"), oversized=1000)
    assert capped.broken is None
    assert "more than max_response_bytes=1,000 bytes; the answer was dropped unread" in str(capped.error)
    # The SDK's own per-event cap reports itself in text: the server's cap is named.
    sse = MCPError(types.INTERNAL_ERROR, "Server-sent event exceeded the 5 byte limit")
    assert f"max_response_bytes={_HTTP.max_response_bytes:,}" in str(call_failure(_HTTP, "find", sse).error)


def test_a_closed_connection_ends_the_session() -> None:
    failure = call_failure(_HTTP, "find", MCPError(types.CONNECTION_CLOSED, "closed"))
    assert failure.broken == "MCP server 'search' closed the connection during tool 'find'"
    assert str(failure.error) == failure.broken and failure.error.code == types.CONNECTION_CLOSED


def test_a_protocol_error_keeps_its_code_and_data_and_the_session() -> None:
    failure = call_failure(_HTTP, "find", MCPError(types.INVALID_PARAMS, "bad query", {"field": "q"}))
    assert failure.broken is None
    assert str(failure.error) == "MCP server 'search' answered tool 'find' with error -32602: bad query"
    assert (failure.error.code, failure.error.data) == (types.INVALID_PARAMS, {"field": "q"})


@pytest.mark.parametrize("exc", [_invalid(), RuntimeError("unexpected content")])
def test_an_invalid_result_keeps_the_session(exc: Exception) -> None:
    failure = call_failure(_HTTP, "find", exc)
    assert failure.broken is None and not ends_session(exc)
    assert str(failure.error).startswith("MCP server 'search' answered tool 'find' with an invalid result: ")


def test_a_transport_failure_ends_the_session_with_the_stderr_tail() -> None:
    exc = BrokenPipeError("pipe closed")
    assert ends_session(exc)
    failure = call_failure(_STDIO, "read", exc, stderr_tail="Traceback: boom")
    assert isinstance(failure.error, ToolCallError) and type(failure.error) is ToolCallError
    assert failure.broken == "files-mcp: BrokenPipeError: pipe closed; its stderr ends with:\nTraceback: boom"
    assert str(failure.error) == f"MCP server 'files' failed during tool 'read': {failure.broken}"


@pytest.mark.parametrize(
    ("config", "exc", "reason"),
    [
        (_STDIO, FileNotFoundError(), "command 'files-mcp' was not found; install it or give its full path"),
        (_STDIO, PermissionError(), "command 'files-mcp' is not executable; check its permissions"),
        (_HTTP, httpx2.ConnectError("refused"), "cannot reach https://search.example.com/mcp (refused)"),
        (_HTTP, MCPError(types.CONNECTION_CLOSED, "closed"), "closed the connection; check the server logs"),
        (_STDIO, TimeoutError(), "files-mcp did not answer in time"),
    ],
)
def test_connection_failures_say_what_to_do(config: Any, exc: Exception, reason: str) -> None:
    assert reason in describe_failure(config, exc)
    assert "user:pw" not in describe_failure(config, exc) and "k=v" not in describe_failure(config, exc)


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "check the credentials (`bearer_token`, `headers` or `auth`)"),
        (404, "check the URL path (streamable HTTP servers usually serve /mcp)"),
    ],
)
def test_http_statuses_get_their_hint(status: int, hint: str) -> None:
    request = httpx2.Request("POST", "https://search.example.com/mcp")
    exc = httpx2.HTTPStatusError("no", request=request, response=httpx2.Response(status, request=request))
    assert describe_failure(_HTTP, exc) == f"https://search.example.com/mcp answered HTTP {status}; {hint}"


def test_connect_messages() -> None:
    assert str(too_many_tools(50)).startswith("offers more than max_tools=50 tools")
    assert describe_failure(_STDIO, ConnectFailed("as said")) == "as said"
    timed_out = str(connect_timeout(_STDIO, "last line"))
    assert timed_out.startswith("did not finish connecting within connect_timeout=")
    assert timed_out.endswith("; its stderr ends with:\nlast line")
    assert str(not_connected(_STDIO, "read", None)) == "MCP server 'files' is not connected"
    assert str(not_connected(_STDIO, "read", "gone")) == "MCP server 'files' is not connected: gone"


def test_a_server_with_a_url_policy_shows_one_text() -> None:
    registered = _HTTP.model_copy(update={"url_policy": UrlPolicy()})
    assert describe_failure(registered, httpx2.ConnectError("refused")) == UNREACHABLE
    assert str(connect_timeout(registered, "")) == UNREACHABLE
    assert call_failure(registered, "find", OSError("reset")).broken == UNREACHABLE
