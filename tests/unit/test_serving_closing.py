"""`CancelOnClose`: a session's request whose response the client closes unanswered is cancelled."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from starlette.types import Message, Receive, Scope, Send

from mcpbridge.serving.closing import CancelOnClose

pytestmark = pytest.mark.anyio

CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "agent", "arguments": {}}}


class Inner:
    """The MCP app: records each POST; a ``tools/call`` answers once ``answer`` is set."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[bytes, bytes], Any]] = []
        self.started = anyio.Event()
        self.answer = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        body = json.loads(message["body"])
        self.posts.append((dict(scope["headers"]), body))
        if body.get("method") != "tools/call":
            await send({"type": "http.response.start", "status": 202, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        self.started.set()
        async with anyio.create_task_group() as group:

            async def until_gone() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(until_gone)
            await self.answer.wait()
            await send({"type": "http.response.body", "body": b"answer", "more_body": False})
            group.cancel_scope.cancel()


def _scope(*, session: bool = True) -> Scope:
    headers = [(b"content-type", b"application/json"), (b"authorization", b"Bearer t")]
    if session:
        headers.append((b"mcp-session-id", b"abc"))
    return {"type": "http", "method": "POST", "path": "/mcp", "headers": headers}


class Client:
    """One POST of ``CALL``: the body, then the disconnect once ``leave`` is set."""

    def __init__(self) -> None:
        self.leave = anyio.Event()
        self.sent: list[Message] = []
        self._read = False

    async def receive(self) -> Message:
        if not self._read:
            self._read = True
            return {"type": "http.request", "body": json.dumps(CALL).encode(), "more_body": False}
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)


async def _post(gate: CancelOnClose, inner: Inner, client: Client, *, then: Callable[[], None]) -> None:
    """Serve the client's POST through ``gate``; once the call runs, ``then`` (leave, or answer)."""
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(gate, _scope(), client.receive, client.send)
            await inner.started.wait()
            then()


EVENTS = pytest.mark.parametrize("events", [True, False], ids=["event-stream answers", "JSON answers"])


@EVENTS
async def test_closing_the_response_before_the_answer_cancels_the_request(events: bool) -> None:
    inner, client = Inner(), Client()
    await _post(CancelOnClose(inner, "/mcp", events=events), inner, client, then=client.leave.set)
    [(_, call), (headers, cancel)] = inner.posts
    assert call == CALL
    assert cancel["method"] == "notifications/cancelled"
    assert cancel["params"]["requestId"] == 7
    assert "id" not in cancel
    assert headers[b"mcp-session-id"] == b"abc" and headers[b"authorization"] == b"Bearer t"
    assert int(headers[b"content-length"]) == len(json.dumps(cancel).encode())


@EVENTS
async def test_an_answered_request_is_not_cancelled(events: bool) -> None:
    inner, client = Inner(), Client()
    await _post(CancelOnClose(inner, "/mcp", events=events), inner, client, then=inner.answer.set)
    client.leave.set()
    assert [body for _, body in inner.posts] == [CALL]
    assert client.sent[-1]["body"] == b"answer"


async def test_requests_without_a_session_pass_through() -> None:
    """A 2026-era or stateless request ends with its exchange: the MCP SDK cancels it itself."""
    inner, client = Inner(), Client()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(CancelOnClose(inner, "/mcp"), _scope(session=False), client.receive, client.send)
            await inner.started.wait()
            client.leave.set()
    assert [body for _, body in inner.posts] == [CALL]
