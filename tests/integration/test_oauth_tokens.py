"""Users' tokens kept sealed, refreshed once, and the callback route, against a real authorization server.

oidc-provider (rotated refresh tokens, reuse detection revoking the grant) and the
SDK's protected MCP server as in ``test_oauth.py``; the callback route is served by
uvicorn on 127.0.0.1, and a headless client stands in for the user's browser.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import jwt
import pytest
import uvicorn
from langgraph.store.memory import InMemoryStore
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from examples.oauth_servers import AuthorizationServer, authorization_server, protected_server
from mcpbridge import OAuthError, UrlPolicy
from mcpbridge.oauth import (
    KeyRing,
    OAuthFlow,
    OAuthSettings,
    StoreClientRegistry,
    StoreStateStore,
    Tokens,
    TokenStore,
    oauth_routes,
)
from tests.support.oidc import login
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

LOCAL = UrlPolicy(allow=["127.0.0.1:*"])
KEYS = KeyRing.parse(KeyRing.generate("k1"))
SERVER = "protected"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthorizationServer]:
    with authorization_server(tmp_path_factory.mktemp("oidc")) as server:
        yield server


@pytest.fixture(scope="module")
def mcp_url(auth_server: AuthorizationServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The protected MCP server's URL (a process of its own, stopped by its handle)."""
    with protected_server(auth_server.issuer, tmp_path_factory.mktemp("protected")) as url:
        yield url


@pytest.fixture(scope="module")
def app_port() -> int:
    return free_port()


@pytest.fixture
def redirect_uri(app_port: int) -> str:
    return f"http://127.0.0.1:{app_port}/mcpbridge/oauth/callback"


def flow_of(store: InMemoryStore, redirect_uri: str) -> OAuthFlow:
    settings = OAuthSettings(redirect_uri=redirect_uri, url_policy=LOCAL)
    return OAuthFlow(settings, states=StoreStateStore(store), clients=StoreClientRegistry(store))


class Bearer(AuthenticationBackend):
    """The deployment's own authentication: ``Bearer <user>-token``."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        header = conn.headers.get("authorization", "")
        if header.startswith("Bearer ") and header.endswith("-token"):
            return AuthCredentials(["authenticated"]), SimpleUser(header[7:].removesuffix("-token"))
        return None


@asynccontextmanager
async def serving(oauth: OAuthFlow, tokens: TokenStore, port: int) -> AsyncGenerator[str]:
    """The routes in a Starlette app served by uvicorn on 127.0.0.1:``port``; stopped on exit."""
    app = Starlette(
        routes=oauth_routes(oauth, tokens),
        middleware=[Middleware(AuthenticationMiddleware, backend=Bearer())],
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none")
    )
    # A socket listening before uvicorn runs: connections wait in its backlog until it serves.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True


def claims(tokens: Tokens) -> dict[str, Any]:
    return jwt.decode(tokens.access_token.get_secret_value(), options={"verify_signature": False})


async def whoami(url: str, tokens: Tokens) -> str:
    headers = {"Authorization": f"Bearer {tokens.access_token.get_secret_value()}"}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as c,
    ):
        result = await c.call_tool("whoami", {})
    return json.loads(result.content[0].text)["subject"]  # pyright: ignore[reportAttributeAccessIssue]


async def test_alices_flow_through_the_callback_route_stores_her_sealed_tokens(
    auth_server: AuthorizationServer, mcp_url: str, app_port: int, redirect_uri: str
) -> None:
    store = InMemoryStore()
    tokens = TokenStore(store, KEYS)
    with anyio.fail_after(60):
        async with (
            flow_of(store, redirect_uri) as oauth,
            serving(oauth, tokens, app_port) as base,
            httpx2.AsyncClient(base_url=base) as browser,
        ):
            request = await oauth.start(user="alice", server=SERVER, server_url=mcp_url)
            params = await login(request.url, "alice", redirect_uri=redirect_uri)
            # The browser follows the authorization server's redirect to the deployment's callback.
            page = await browser.get("/mcpbridge/oauth/callback", params=params)
            assert page.status_code == 200 and "return to the chat" in page.text
            [item] = await store.asearch(("mcpbridge", "oauth", "tokens", "alice"))
            kept = await tokens.get("alice", mcp_url)
            assert kept is not None and claims(kept)["sub"] == "alice"
            assert kept.refresh_token is not None
            secrets_ = [kept.access_token.get_secret_value(), kept.refresh_token.get_secret_value()]
            for secret in [*secrets_, params["code"], params["state"]]:
                assert secret not in page.text and secret not in json.dumps(item.value)
            assert await whoami(mcp_url, kept) == "alice"
            # Replayed and forged states: 400, nothing more stored, no code exchanged.
            exchanged = len(auth_server.events("authorization_code.consumed"))
            replayed = await browser.get("/mcpbridge/oauth/callback", params=params)
            forged = await browser.get("/mcpbridge/oauth/callback", params={**params, "state": "forged"})
            assert (replayed.status_code, forged.status_code) == (400, 400)
            assert "state_unknown" in replayed.text and "state_unknown" in forged.text
            assert len(auth_server.events("authorization_code.consumed")) == exchanged
            assert len(await store.asearch(("mcpbridge", "oauth", "tokens"))) == 1
            # Bob's session cannot complete an authorization alice started.
            request = await oauth.start(user="alice", server=SERVER, server_url=mcp_url)
            params = await login(request.url, "alice", redirect_uri=redirect_uri)
            crossed = await browser.get(
                "/mcpbridge/oauth/callback", params=params, headers={"Authorization": "Bearer bob-token"}
            )
            assert crossed.status_code == 400 and "state_user" in crossed.text
            assert await store.asearch(("mcpbridge", "oauth", "tokens", "bob")) == []
            # Disconnecting: authenticated as alice; revoked at the authorization server, then deleted.
            revoked = len(auth_server.events("grant.revoked"))
            anonymous = await browser.post("/mcpbridge/oauth/disconnect", json={"server": SERVER})
            assert anonymous.status_code == 401
            done = await browser.post(
                "/mcpbridge/oauth/disconnect",
                json={"server": SERVER},
                headers={"Authorization": "Bearer alice-token"},
            )
            assert done.status_code == 200 and done.json()["revoked"] is True
            assert len(auth_server.events("grant.revoked")) == revoked + 1
            assert await tokens.get("alice", mcp_url) is None


async def authorized(store: InMemoryStore, oauth: OAuthFlow, url: str, user: str, redirect: str) -> None:
    """Authorize ``user`` and keep their tokens, already expired."""
    request = await oauth.start(user=user, server=SERVER, server_url=url)
    done = await oauth.complete(user=user, params=await login(request.url, user, redirect_uri=redirect))
    expired = dataclasses.replace(done.tokens, expires_at=time.time() - 1)
    await TokenStore(store, KEYS).put(user, SERVER, url, expired)


@pytest.mark.parametrize("workers", [1, 2])
async def test_concurrent_runs_with_an_expired_token_refresh_once(
    auth_server: AuthorizationServer,
    mcp_url: str,
    redirect_uri: str,
    workers: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Eight callers, on one token store or two over one store (two workers): one refresh, no revocation."""
    caplog.set_level(logging.DEBUG)
    store = InMemoryStore()
    stores = [TokenStore(store, KEYS, poll=0.02) for _ in range(workers)]
    seen: list[Tokens] = []

    async def run(kept: TokenStore) -> None:
        seen.append(await kept.usable(oauth, user="alice", server=SERVER, server_url=mcp_url))

    with anyio.fail_after(60):
        async with flow_of(store, redirect_uri) as oauth:
            await authorized(store, oauth, mcp_url, "alice", redirect_uri)
            consumed = len(auth_server.events("refresh_token.consumed"))
            revoked = len(auth_server.events("grant.revoked"))
            async with anyio.create_task_group() as group:
                for i in range(8):
                    group.start_soon(run, stores[i % workers])
            assert len(auth_server.events("refresh_token.consumed")) == consumed + 1
            assert len(auth_server.events("grant.revoked")) == revoked
            assert len({t.access_token.get_secret_value() for t in seen}) == 1
            assert await whoami(mcp_url, seen[0]) == "alice"
            # The 401 path: the server refused that token; one refresh however many runs saw it.
            rejected = seen[0].access_token
            again = [
                await stores[-1].usable(
                    oauth, user="alice", server=SERVER, server_url=mcp_url, rejected=rejected
                )
                for _ in range(2)
            ]
            assert again[0] == again[1] and again[0].access_token != rejected
            assert len(auth_server.events("refresh_token.consumed")) == consumed + 2
            assert len(auth_server.events("grant.revoked")) == revoked
    logged = "\n".join(caplog.messages)
    assert "tokens refreshed for user 'alice'" in logged  # the log was captured
    for kept in [*seen, *again]:
        assert kept.refresh_token is not None
        assert kept.access_token.get_secret_value() not in logged
        assert kept.refresh_token.get_secret_value() not in logged


async def test_a_revoked_grant_deletes_the_tokens_and_asks_for_authorization(
    auth_server: AuthorizationServer, mcp_url: str, redirect_uri: str
) -> None:
    store = InMemoryStore()
    kept = TokenStore(store, KEYS)
    with anyio.fail_after(60):
        async with flow_of(store, redirect_uri) as oauth:
            await authorized(store, oauth, mcp_url, "alice", redirect_uri)
            await authorized(store, oauth, mcp_url, "bob", redirect_uri)
            alice = await kept.get("alice", mcp_url)
            assert alice is not None
            await oauth.revoke(alice, server=SERVER)
            with pytest.raises(OAuthError) as caught:
                await kept.usable(oauth, user="alice", server=SERVER, server_url=mcp_url)
            assert caught.value.reason == "authorization_needed"
            assert await kept.get("alice", mcp_url) is None
            bob = await kept.usable(oauth, user="bob", server=SERVER, server_url=mcp_url)
            assert await whoami(mcp_url, bob) == "bob"
