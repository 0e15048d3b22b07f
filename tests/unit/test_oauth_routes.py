from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from langgraph.store.memory import InMemoryStore
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from mcpbridge import ConfigError
from mcpbridge.oauth import KeyRing, OAuthFlow, TokenStore, oauth_routes

from ._oauth import ISSUER, MCP, Documents, asm, flow, served

pytestmark = pytest.mark.anyio

KEYS = KeyRing.parse(KeyRing.generate("k1"))
TOKEN = {"access_token": "at-secret", "refresh_token": "rt-secret", "token_type": "Bearer", "expires_in": 300}


class Bearer(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        header = conn.headers.get("authorization", "")
        if header.startswith("Bearer ") and header.endswith("-token"):
            return AuthCredentials(["authenticated"]), SimpleUser(header[7:].removesuffix("-token"))
        return None


def app(oauth: OAuthFlow, tokens: TokenStore) -> httpx.AsyncClient:
    made = Starlette(
        routes=oauth_routes(oauth, tokens, prefix="/oauth"),
        middleware=[Middleware(AuthenticationMiddleware, backend=Bearer())],
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=made), base_url="https://agents.example.com")


def documents() -> Documents:
    served_ = served(asm_doc=asm(revocation_endpoint=f"{ISSUER}/revoke"))
    served_.posted[f"{ISSUER}/token"] = (200, TOKEN)
    served_.posted[f"{ISSUER}/revoke"] = (200, {})
    return served_


async def state_of(oauth: OAuthFlow, user: str) -> str:
    request = await oauth.start(user=user, server="linear", server_url=MCP)
    return parse_qs(urlsplit(request.url).query)["state"][0]


async def test_the_callback_stores_the_tokens_and_answers_a_page_without_secrets() -> None:
    store, docs = InMemoryStore(), documents()
    tokens = TokenStore(store, KEYS)
    with anyio.fail_after(10):
        async with flow(docs, store) as oauth, app(oauth, tokens) as http:
            state = await state_of(oauth, "alice")
            query = {"code": "the-code", "state": state, "iss": ISSUER}
            response = await http.get("/oauth/callback", params=query)
            assert response.status_code == 200, response.text
            assert "return to the chat" in response.text
            for secret in ("the-code", state, "at-secret", "rt-secret"):
                assert secret not in response.text
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["referrer-policy"] == "no-referrer"
            kept = await tokens.get("alice", MCP)
            assert kept is not None and kept.access_token.get_secret_value() == "at-secret"
            # Replayed: refused, nothing more stored.
            again = await http.get("/oauth/callback", params=query)
            assert again.status_code == 400 and "state_unknown" in again.text
            assert [c.server for c in await tokens.connections("alice")] == ["linear"]


async def test_refused_callbacks_answer_400_and_store_nothing() -> None:
    store, docs = InMemoryStore(), documents()
    tokens = TokenStore(store, KEYS)
    with anyio.fail_after(10):
        async with flow(docs, store) as oauth, app(oauth, tokens) as http:
            forged = await http.get("/oauth/callback", params={"code": "c", "state": "forged", "iss": ISSUER})
            assert forged.status_code == 400 and "state_unknown" in forged.text
            assert (await http.get("/oauth/callback")).status_code == 400
            state = await state_of(oauth, "alice")
            # A callback arriving in bob's session for alice's authorization.
            crossed = await http.get(
                "/oauth/callback",
                params={"code": "c", "state": state, "iss": ISSUER},
                headers={"Authorization": "Bearer bob-token"},
            )
            assert crossed.status_code == 400 and "state_user" in crossed.text
            state = await state_of(oauth, "alice")
            denied = {"state": state, "error": "access_denied", "error_description": "<script>x</script>"}
            answer = await http.get("/oauth/callback", params=denied)
            assert answer.status_code == 400 and "<script>" not in answer.text
    assert await store.asearch(("mcpbridge", "oauth", "tokens")) == []
    assert not [u for u in docs.urls() if u.endswith("/token")]


async def test_connections_and_disconnect_need_the_requests_user() -> None:
    store, docs = InMemoryStore(), documents()
    tokens = TokenStore(store, KEYS)
    with anyio.fail_after(10):
        async with flow(docs, store) as oauth, app(oauth, tokens) as http:
            state = await state_of(oauth, "alice")
            await http.get("/oauth/callback", params={"code": "c", "state": state, "iss": ISSUER})
            assert (await http.get("/oauth/connections")).status_code == 401
            assert (await http.post("/oauth/disconnect", json={"server": "linear"})).status_code == 401
            alice = {"Authorization": "Bearer alice-token"}
            bob = {"Authorization": "Bearer bob-token"}
            listed = (await http.get("/oauth/connections", headers=alice)).json()
            assert listed == [{"server": "linear", "server_url": MCP, "issuer": ISSUER}]
            assert (await http.get("/oauth/connections", headers=bob)).json() == []
            missing = await http.post("/oauth/disconnect", json={"server": "linear"}, headers=bob)
            assert missing.status_code == 404
            bad = await http.post("/oauth/disconnect", json={"server": 1}, headers=alice)
            assert bad.status_code == 400
            done = await http.post("/oauth/disconnect", json={"server": "linear"}, headers=alice)
            assert done.status_code == 200 and done.json()["revoked"] is True
            assert await tokens.get("alice", MCP) is None
    revocations = [r for r in docs.requests if str(r.url).endswith("/revoke")]
    assert len(revocations) == 1 and b"rt-secret" in revocations[0].content


async def test_the_redirect_uri_must_point_at_the_callback_route() -> None:
    async with flow(documents()) as oauth:
        with pytest.raises(ConfigError, match="redirect_uri"):
            oauth_routes(oauth, TokenStore(InMemoryStore(), KEYS))  # default prefix: /mcpbridge/oauth
