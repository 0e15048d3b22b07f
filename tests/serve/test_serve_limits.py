"""``mcpbridge serve`` over HTTP reads no request body past the MCP SDK's limit (4 MiB): 413.

A body declared too large is refused before any of it is sent; one that streams on
(chunked) stops being read at the limit, the connection closes, and the server's peak
memory stays far below the body. The same server goes on answering calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE

from .conftest import ServeProcess, http_client, raw_session

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

MiB = 1024 * 1024
TIMEOUT = 60.0
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def peak_memory(pid: int) -> int:
    """The process's peak resident memory so far (``VmHWM``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


async def still_serves(served: ServeProcess) -> None:
    """A normal tool call on ``served`` answers."""
    async with http_client(served.url) as client:
        with anyio.fail_after(TIMEOUT):
            result = await client.call_tool("repeat", {"text": "ok", "times": 2})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["output"] == {"result": "okok"}


async def test_a_declared_too_large_body_is_refused_unread(served_tests: ServeProcess) -> None:
    url = urlsplit(served_tests.url)
    assert url.hostname is not None and url.port is not None
    head = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nContent-Length: {1024 * MiB}\r\n\r\n"
    )
    answer = b""
    with anyio.fail_after(TIMEOUT):
        async with await anyio.connect_tcp(url.hostname, url.port) as stream:
            await stream.send(head.encode())  # not a byte of the body: the answer comes without it
            while True:  # to the server's close: it reads nothing more of this request
                try:
                    answer += await stream.receive()
                except anyio.EndOfStream:
                    break
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large", answer
    assert b"connection: close" in rest.lower()
    assert rest.endswith(b"Request body too large")
    await still_serves(served_tests)


async def test_a_chunked_body_past_the_limit_stops_being_read(served_tests: ServeProcess) -> None:
    total = 256 * MiB
    chunk = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"arguments": "'
    chunk += b"a" * (64 * 1024 - len(chunk))
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        while sent < total:
            sent += len(chunk)
            yield chunk

    def post() -> httpx.Response:
        # httpx's sync client: once its upload is cut, it still reads the answer the server sent
        # (an asyncio socket has stopped reading while it writes, and loses it to the reset).
        with httpx.Client(timeout=httpx.Timeout(TIMEOUT)) as http:
            return http.post(served_tests.url, content=body(), headers=HEADERS)

    before = peak_memory(served_tests.process.pid)
    response = await anyio.to_thread.run_sync(post)
    grown = peak_memory(served_tests.process.pid) - before
    assert grown < 32 * MiB, f"the server's peak memory grew by {grown / MiB:.0f} MiB"
    assert sent < 64 * MiB, f"the client sent {sent / MiB:.0f} MiB before the server closed"
    assert response.status_code == 413
    assert response.text == "Request body too large"
    assert response.headers["connection"] == "close"
    await still_serves(served_tests)


async def test_a_body_of_the_limit_is_served(served_tests: ServeProcess) -> None:
    """A call of exactly the limit (whitespace padded) reaches its tool."""
    async with raw_session(served_tests.url) as session:
        params = {"name": "repeat", "arguments": {"text": "ok", "times": 2}}
        call = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}
        encoded = json.dumps(call).encode()
        body = encoded[:-1] + b" " * (DEFAULT_MAX_REQUEST_BODY_SIZE - len(encoded)) + b"}"
        assert len(body) == DEFAULT_MAX_REQUEST_BODY_SIZE
        with anyio.fail_after(TIMEOUT):
            response = await session.http.post(session.url, content=body, headers=session.headers)
    assert response.status_code == 200, response.text
    assert '\\"result\\": \\"okok\\"' in response.text
