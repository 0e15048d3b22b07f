"""Serving the assistants of a running Agent Server (``mcpbridge.serving.remote``), without a network."""

from __future__ import annotations

import functools

import httpx
import pytest

from mcpbridge.serving import RemoteAssistants, RemoteTokenCheck

pytestmark = pytest.mark.anyio


def test_the_url_and_options_are_kept() -> None:
    backend = RemoteAssistants("http://127.0.0.1:2024/", assistants=["agent"], headers={"X-Team": "a"})
    assert backend.url == "http://127.0.0.1:2024"
    assert backend.assistants == ("agent",) and backend.headers == {"X-Team": "a"}


async def test_the_token_check_asks_the_agent_server_once_per_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("Authorization"))
        ok = request.headers.get("Authorization") == "Bearer good"
        return httpx.Response(200 if ok else 401, json=[], request=request)

    client = functools.partial(httpx.AsyncClient, transport=httpx.MockTransport(answer))
    monkeypatch.setattr(httpx, "AsyncClient", client)
    check = RemoteTokenCheck("http://agent.test/", ttl=60)
    first, again = await check("good"), await check("good")
    assert first is not None and again is not None and first.identity == again.identity
    assert first.identity.startswith("token-") and "good" not in first.identity
    assert await check("bad") is None
    assert asked == ["Bearer good", "Bearer bad"]  # the accepted token was remembered
