"""A token in a registered server's URL never reaches a log record.

Alice registers the example echo server (a real HTTP process) with ``?token=<secret>``
in its URL (userinfo is refused by the URL policy, so the query is where a URL holds a
token) and her run calls a tool. With every logger at DEBUG, no record holds the secret,
although httpx2 logged the request's URL. Control: with the redaction filter taken off
httpx2's logger, the same run logs the secret, so the capture sees what it must.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from langchain_core.messages import ToolMessage
from langgraph.store.memory import InMemoryStore

from mcpbridge import Bridge, UrlPolicy
from mcpbridge._redact import UrlRedactor, install_url_redaction
from mcpbridge.scoping import RegisteredServers, UserContext, UserServers
from tests.integration.support import HttpServerProcess, start_http_server

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CALL_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServerProcess]:
    server = start_http_server("echo", tmp_path_factory.mktemp("echo-redaction"))
    yield server
    server.stop()


def texts(records: list[logging.LogRecord]) -> list[str]:
    """Everything a handler could write of each record: its message and its exception."""
    formatter = logging.Formatter()
    found: list[str] = []
    for record in records:
        found.append(record.getMessage())
        if record.exc_info:  # what a handler prints: the text the filter set, else the exception
            found.append(record.exc_text or formatter.formatException(record.exc_info))
    return found


async def run_with_token(echo: HttpServerProcess, secret: str) -> None:
    store = InMemoryStore()
    url = f"{echo.url}?token={secret}"
    await store.aput(("alice", "mcp_servers"), "notes", {"url": url})
    user = UserContext.from_user({"identity": "alice", "permissions": []}, store)
    policy = UrlPolicy(allow=[f"127.0.0.1:{echo.port}"], require_https=False)
    selection = await UserServers([], registered=RegisteredServers(policy=policy)).select(user)
    assert not selection.refused, selection.refused
    with anyio.fail_after(CALL_TIMEOUT):
        async with Bridge(selection.servers, guests=selection.registered, user="alice") as bridge:
            [tool] = [t for t in bridge.tools if t.mcp_name == "add"]
            call = {"name": tool.name, "args": {"a": 1, "b": 2}, "id": "call-1", "type": "tool_call"}
            config: dict[str, Any] = {"configurable": {"thread_id": str(uuid.uuid4())}}
            message = await tool.ainvoke(call, config)  # pyright: ignore[reportArgumentType]
    assert isinstance(message, ToolMessage) and message.status == "success", message


async def test_no_log_record_holds_a_token_from_a_registered_url(
    echo: HttpServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = secrets.token_hex(16)
    await run_with_token(echo, secret)
    logged = texts(caplog.records)
    assert any(t.startswith("HTTP Request: POST") and echo.url in t for t in logged)  # httpx2 did log it
    leaks = [t for t in logged if secret in t]
    assert not leaks, leaks


async def test_control_without_the_filter_httpx2_logs_the_token(
    echo: HttpServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    httpx_logger = logging.getLogger("httpx2")
    removed = [f for f in httpx_logger.filters if isinstance(f, UrlRedactor)]
    assert removed, "the bridge installs the filter on httpx2's logger"
    for f in removed:
        httpx_logger.removeFilter(f)
    try:
        secret = secrets.token_hex(16)
        await run_with_token(echo, secret)
    finally:
        install_url_redaction()
    assert any(secret in t for t in texts(caplog.records) if t.startswith("HTTP Request"))
