from __future__ import annotations

import base64
import dataclasses
import time
from urllib.parse import parse_qs, parse_qsl, urlsplit

import anyio
import pytest
from langgraph.store.memory import InMemoryStore
from pydantic import SecretStr

from mcpbridge import ConfigError, OAuthError
from mcpbridge.oauth import OAuthClient, OAuthSettings, Tokens

from ._oauth import ISSUER, MCP, REDIRECT, asm, flow, served

pytestmark = pytest.mark.anyio


async def test_start_builds_the_authorization_url_with_pkce_state_and_resource() -> None:
    documents = served()
    store = InMemoryStore()
    with anyio.fail_after(10):
        async with flow(documents, store) as oauth:
            request = await oauth.start(user="alice", server="linear", server_url=MCP)
    url = urlsplit(request.url)
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{ISSUER}/auth"
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["resource"] == [MCP] and query["client_id"] == ["dyn-1"]
    assert query["scope"] == ["mcp:tools offline_access"] and query["prompt"] == ["consent"]
    assert len(query["state"][0]) >= 43
    [item] = await store.asearch(("mcpbridge", "oauth", "pending"))
    assert item.value["user"] == "alice" and item.value["server"] == "linear"
    assert query["state"][0] not in str(item.value)


async def test_registration_order_configured_then_metadata_document_then_dynamic() -> None:
    configured = OAuthClient(client_id="configured", client_secret=SecretStr("s"), issuer=ISSUER)
    elsewhere = OAuthClient(client_id="elsewhere", issuer="https://other.example.com")
    cimd = "https://agents.example.com/oauth/client.json"
    with anyio.fail_after(10):
        documents = served(asm_doc=asm(client_id_metadata_document_supported=True))
        async with flow(documents, clients=[elsewhere, configured], client_metadata_url=cimd) as oauth:
            assert (await oauth.client_for(await oauth.discover(MCP, server="s"))).client_id == "configured"
        async with flow(documents, clients=[elsewhere], client_metadata_url=cimd) as oauth:
            client = await oauth.client_for(await oauth.discover(MCP, server="s"))
            assert (client.client_id, client.registration) == (cimd, "metadata_document")
        assert not any(u.endswith("/reg") for u in documents.urls())
        documents = served()  # no metadata document support: dynamic registration, once
        store = InMemoryStore()
        async with flow(documents, store, client_metadata_url=cimd) as oauth:
            first = await oauth.client_for(await oauth.discover(MCP, server="s"))
            again = await oauth.client_for(await oauth.discover(MCP, server="s"))
        assert first == again and first.registration == "dynamic"
        assert [u for u in documents.urls() if u.endswith("/reg")] == [f"{ISSUER}/reg"]


async def test_no_way_to_register() -> None:
    documents = served(asm_doc=asm(registration_endpoint=None))
    with anyio.fail_after(10):
        async with flow(documents) as oauth:
            with pytest.raises(OAuthError, match="pre-registered client") as caught:
                await oauth.start(user="alice", server="s", server_url=MCP)
    assert caught.value.reason == "registration"


async def test_a_refused_registration_names_the_error_code_only() -> None:
    documents = served()
    documents.posted[f"{ISSUER}/reg"] = (
        400,
        {"error": "invalid_client_metadata", "error_description": "<b>x"},
    )
    with anyio.fail_after(10):
        async with flow(documents) as oauth:
            with pytest.raises(OAuthError) as caught:
                await oauth.start(user="alice", server="s", server_url=MCP)
    assert caught.value.reason == "registration"
    assert "invalid_client_metadata" in str(caught.value) and "<b>" not in str(caught.value)


def callback(request_url: str, **extra: str) -> dict[str, str]:
    state = parse_qs(urlsplit(request_url).query)["state"][0]
    return {"state": state, "code": "the-code", "iss": ISSUER, **extra}


async def test_the_code_exchange_with_a_configured_confidential_client() -> None:
    documents = served()
    documents.posted[f"{ISSUER}/token"] = (
        200,
        {"access_token": "at-1", "refresh_token": "rt-1", "token_type": "Bearer", "expires_in": 30},
    )
    configured = OAuthClient(client_id="cfg", client_secret=SecretStr("p@ss:word"), issuer=ISSUER)
    with anyio.fail_after(10):
        async with flow(documents, clients=[configured]) as oauth:
            request = await oauth.start(user="alice", server="linear", server_url=MCP)
            done = await oauth.complete(user="alice", params=callback(request.url))
    assert (done.user, done.server, done.server_url) == ("alice", "linear", MCP)
    tokens = done.tokens
    exchange = documents.requests[-1]
    form = dict(parse_qsl(exchange.content.decode()))
    assert form["grant_type"] == "authorization_code" and form["code"] == "the-code"
    assert form["resource"] == MCP and form["redirect_uri"] == REDIRECT and len(form["code_verifier"]) >= 43
    assert "client_secret" not in form
    assert exchange.headers["authorization"] == "Basic " + base64.b64encode(b"cfg:p%40ss%3Aword").decode()
    assert tokens.access_token.get_secret_value() == "at-1" and tokens.scope == "mcp:tools offline_access"
    assert tokens.expires_within(60) and not tokens.expires_within(0)
    assert "at-1" not in repr(tokens) and "rt-1" not in repr(tokens)


async def test_a_refused_exchange_stores_nothing_and_hides_the_code() -> None:
    documents = served()
    documents.posted[f"{ISSUER}/token"] = (400, {"error": "invalid_grant"})
    store = InMemoryStore()
    with anyio.fail_after(10):
        async with flow(documents, store) as oauth:
            request = await oauth.start(user="alice", server="linear", server_url=MCP)
            with pytest.raises(OAuthError) as caught:
                await oauth.complete(user="alice", params=callback(request.url))
    assert caught.value.reason == "token" and "invalid_grant" in str(caught.value)
    assert "the-code" not in str(caught.value)
    assert await store.asearch(("mcpbridge", "oauth", "pending")) == []


async def test_refresh_keeps_a_refresh_token_that_was_not_rotated() -> None:
    documents = served()
    documents.posted[f"{ISSUER}/token"] = (200, {"access_token": "at-2", "token_type": "Bearer"})
    tokens = Tokens(
        access_token=SecretStr("at-1"),
        refresh_token=SecretStr("rt-1"),
        expires_at=time.time(),
        scope="mcp:tools",
        token_type="Bearer",
        issuer=ISSUER,
        resource=MCP,
        client_id="public",
        token_endpoint=f"{ISSUER}/token",
    )
    with anyio.fail_after(10):
        async with flow(documents) as oauth:
            fresh = await oauth.refresh(tokens, server="linear")
    form = dict(parse_qsl(documents.requests[-1].content.decode()))
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": "rt-1",
        "resource": MCP,
        "client_id": "public",
    }
    assert fresh.access_token.get_secret_value() == "at-2"
    assert (
        fresh.refresh_token == tokens.refresh_token
        and fresh.scope == "mcp:tools"
        and fresh.expires_at is None
    )


async def test_refresh_without_a_refresh_token() -> None:
    documents = served()
    tokens = Tokens(SecretStr("a"), None, None, None, "Bearer", ISSUER, MCP, "c", f"{ISSUER}/token")
    with anyio.fail_after(10):
        async with flow(documents) as oauth:
            with pytest.raises(OAuthError) as caught:
                await oauth.refresh(tokens, server="linear")
    assert caught.value.reason == "authorization_needed"


def test_the_metadata_document_url_must_be_https_with_a_path() -> None:
    with pytest.raises(ConfigError):
        OAuthSettings(redirect_uri=REDIRECT, client_metadata_url="http://agents.example.com/client.json")
    with pytest.raises(ConfigError):
        OAuthSettings(redirect_uri=REDIRECT, client_metadata_url="https://agents.example.com/")


async def test_revoke_sends_the_refresh_token_and_needs_an_endpoint() -> None:
    documents = served()
    documents.posted[f"{ISSUER}/revoke"] = (200, {})
    tokens = Tokens(
        SecretStr("at"),
        SecretStr("rt"),
        None,
        None,
        "Bearer",
        ISSUER,
        MCP,
        "c",
        f"{ISSUER}/token",
        f"{ISSUER}/revoke",
    )
    with anyio.fail_after(10):
        async with flow(documents) as oauth:
            await oauth.revoke(tokens, server="linear")
            with pytest.raises(OAuthError) as caught:
                await oauth.revoke(dataclasses.replace(tokens, revocation_endpoint=None), server="linear")
    form = dict(parse_qsl(documents.requests[-1].content.decode()))
    assert form == {"token": "rt", "token_type_hint": "refresh_token", "client_id": "c"}
    assert caught.value.reason == "revoke"
