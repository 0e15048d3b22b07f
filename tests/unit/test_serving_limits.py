"""`BoundedBody`: no request body past the limit is read; the client gets 413 and the connection closes."""

from __future__ import annotations

import anyio
import pytest
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from starlette.types import Message, Receive, Scope, Send

from mcpbridge.serving.limits import BoundedBody

pytestmark = pytest.mark.anyio

LIMIT = 1000
CHUNK = b"x" * 300


class Inner:
    """The served app: reads the whole body, answers 200 with it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


class Upload:
    """A client streaming ``chunks`` chunks of `CHUNK` (``None``: without end); it counts what was read."""

    def __init__(self, chunks: int | None) -> None:
        self.chunks = chunks
        self.read = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        self.read += 1
        last = self.chunks is not None and self.read >= self.chunks
        return {"type": "http.request", "body": CHUNK, "more_body": not last}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    def status(self) -> int:
        return int(self.sent[0]["status"])

    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])


def _post(content_length: int | None = None) -> Scope:
    headers = [(b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    return {"type": "http", "method": "POST", "path": "/mcp", "headers": headers}


async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    inner, client = Inner(), Upload(None)
    with anyio.fail_after(5):
        await BoundedBody(inner, LIMIT)(_post(content_length=LIMIT + 1), client.receive, client.send)
    assert client.read == 0
    assert inner.bodies == []
    assert client.status() == 413
    assert client.headers()[b"connection"] == b"close"
    assert client.sent[-1]["body"] == b"Request body too large"


async def test_a_body_streaming_past_the_limit_stops_being_read_there() -> None:
    inner, client = Inner(), Upload(None)
    with anyio.fail_after(5):
        await BoundedBody(inner, LIMIT)(_post(), client.receive, client.send)
    assert client.read == LIMIT // len(CHUNK) + 1  # the chunk that crosses the limit is the last read
    assert inner.bodies == []
    assert client.status() == 413
    assert client.headers()[b"connection"] == b"close"


async def test_a_body_within_the_limit_reaches_the_app_as_sent() -> None:
    inner, client = Inner(), Upload(3)
    with anyio.fail_after(5):
        await BoundedBody(inner, LIMIT)(_post(content_length=3 * len(CHUNK)), client.receive, client.send)
    assert inner.bodies == [CHUNK * 3]
    assert client.status() == 200
    assert b"connection" not in client.headers()  # the connection stays open for the next request


def test_the_limit_is_the_mcp_sdks_by_default() -> None:
    assert BoundedBody(Inner()).limit == DEFAULT_MAX_REQUEST_BODY_SIZE == 4 * 1024 * 1024
