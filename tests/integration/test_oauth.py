"""Per-user OAuth against a real authorization server (oidc-provider) and a real protected MCP server.

The authorization server runs on Node.js (the test support installs it from npm
once); the MCP server is the SDK's resource server, verifying JWTs with the
authorization server's keys. A headless client stands in for the user's browser.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import jwt
import pytest
from langgraph.store.memory import InMemoryStore
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from examples.oauth_servers import AuthorizationServer, authorization_server, protected_server
from mcpbridge import OAuthError, UrlPolicy
from mcpbridge.oauth import (
    OAuthClient,
    OAuthFlow,
    OAuthSettings,
    StoreClientRegistry,
    StoreStateStore,
    Tokens,
)
from tests.support.oidc import login, metadata_document
from tests.support.processes import REPO_ROOT, child, free_port, port_open, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.anyio,
]

REDIRECT_URI = "http://127.0.0.1:9/mcpbridge/oauth/callback"
"""The deployment's callback; nothing listens there (the headless login stops at the redirect)."""

CONFIGURED_ID = "mcpbridge-configured"
CONFIGURED_SECRET = "configured-client-secret-" + "x" * 24
CONFIGURED: dict[str, Any] = {
    "client_id": CONFIGURED_ID,
    "client_secret": CONFIGURED_SECRET,
    "redirect_uris": [REDIRECT_URI],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic",
}
"""A client the deployment registered at the authorization server beforehand."""

LOCAL = UrlPolicy(allow=["127.0.0.1:*"])


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthorizationServer]:
    with authorization_server(tmp_path_factory.mktemp("oidc"), clients=[CONFIGURED]) as server:
        yield server


@pytest.fixture(scope="module")
def mcp_url(auth_server: AuthorizationServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The protected MCP server's URL (a process of its own, stopped by its handle)."""
    with protected_server(auth_server.issuer, tmp_path_factory.mktemp("protected")) as url:
        yield url


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


def settings(**options: Any) -> OAuthSettings:
    base: dict[str, Any] = {"redirect_uri": REDIRECT_URI, "url_policy": LOCAL}
    return OAuthSettings(**{**base, **options})


def flow_of(store: InMemoryStore, **options: Any) -> OAuthFlow:
    return OAuthFlow(settings(**options), states=StoreStateStore(store), clients=StoreClientRegistry(store))


def pending_count(store: InMemoryStore) -> int:
    return len(store.search(("mcpbridge", "oauth", "pending")))


async def challenge(url: str) -> str:
    """The ``WWW-Authenticate`` of the server's 401 to a request without a token."""
    async with httpx2.AsyncClient() as http:
        response = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 401
    return response.headers["www-authenticate"]


async def authorize(flow: OAuthFlow, url: str, user: str) -> Tokens:
    request = await flow.start(user=user, server="protected", server_url=url)
    params = await login(request.url, user, redirect_uri=REDIRECT_URI)
    done = await flow.complete(user=user, params=params)
    assert (done.user, done.server, done.server_url) == (user, "protected", url)
    return done.tokens


async def whoami(url: str, tokens: Tokens) -> dict[str, Any]:
    """Call the protected server's ``whoami`` with the access token."""
    headers = {"Authorization": f"Bearer {tokens.access_token.get_secret_value()}"}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as c,
    ):
        result = await c.call_tool("whoami", {})
    return json.loads(result.content[0].text)  # pyright: ignore[reportAttributeAccessIssue]


def claims(tokens: Tokens) -> dict[str, Any]:
    return jwt.decode(tokens.access_token.get_secret_value(), options={"verify_signature": False})


# --- discovery --------------------------------------------------------------------------------


async def test_discovery_from_the_401_and_from_the_well_known_url(
    auth_server: AuthorizationServer, mcp_url: str, store: InMemoryStore
) -> None:
    async with flow_of(store) as flow:
        from_challenge = await flow.discover(
            mcp_url, server="protected", www_authenticate=await challenge(mcp_url)
        )
        up_front = await flow.discover(mcp_url, server="protected")
    for found in (from_challenge, up_front):
        assert found.issuer == auth_server.issuer
        assert found.resource == mcp_url
        assert str(found.metadata.token_endpoint) == f"{auth_server.issuer}/token"
        assert found.scope is not None and "mcp:tools" in found.scope.split()


async def test_the_url_policy_applies_to_the_authorization_servers_documents(
    auth_server: AuthorizationServer, mcp_url: str, store: InMemoryStore
) -> None:
    """The MCP server is allow-listed, its authorization server is not: refused, nothing kept."""
    only_mcp = UrlPolicy(allow=[f"127.0.0.1:{urlsplit(mcp_url).port}"])
    async with flow_of(store, url_policy=only_mcp) as flow:
        with pytest.raises(OAuthError) as caught:
            await flow.start(user="alice", server="protected", server_url=mcp_url)
    assert caught.value.reason == "url_refused"
    assert caught.value.field == "authorization server metadata URL"
    assert pending_count(store) == 0


# --- registration paths and the split flow ------------------------------------------------------


async def test_dynamic_registration_and_the_split_flow_for_alice(
    auth_server: AuthorizationServer, mcp_url: str, store: InMemoryStore
) -> None:
    registered = len(auth_server.events("registration_create.success"))
    async with flow_of(store) as flow:
        request = await flow.start(user="alice", server="protected", server_url=mcp_url)
        query = parse_qs(urlsplit(request.url).query)
        assert query["code_challenge_method"] == ["S256"]
        assert query["resource"] == [mcp_url]
        assert query["redirect_uri"] == [REDIRECT_URI]
        assert pending_count(store) == 1
        # The browser's trip, then the callback: another request, with only the query to go on.
        params = await login(request.url, "alice", redirect_uri=REDIRECT_URI)
        assert params["state"] == query["state"][0] and params["iss"] == auth_server.issuer
        done = await flow.complete(user="alice", params=params)
        server, tokens = done.server, done.tokens
        # A second user of the same authorization server reuses the registered client.
        bob = await authorize(flow, mcp_url, "bob")
    assert server == "protected"
    assert pending_count(store) == 0
    assert len(auth_server.events("registration_create.success")) == registered + 1
    client = await StoreClientRegistry(store).get(auth_server.issuer, REDIRECT_URI)
    assert client is not None and client.registration == "dynamic"
    assert tokens.client_id == bob.client_id == client.client_id
    assert claims(tokens)["sub"] == "alice" and claims(tokens)["aud"] == mcp_url
    assert tokens.refresh_token is not None and tokens.expires_at is not None
    assert (await whoami(mcp_url, tokens))["subject"] == "alice"
    assert (await whoami(mcp_url, bob))["subject"] == "bob"
    # Secrets stay out of reprs.
    assert tokens.access_token.get_secret_value() not in repr(tokens)


async def test_a_pre_registered_client_comes_first(
    auth_server: AuthorizationServer, mcp_url: str, store: InMemoryStore
) -> None:
    configured = OAuthClient(
        client_id=CONFIGURED_ID,
        client_secret=SecretStr(CONFIGURED_SECRET),
        issuer=auth_server.issuer,
    )
    registered = len(auth_server.events("registration_create.success"))
    async with flow_of(store, clients=[configured]) as flow:
        tokens = await authorize(flow, mcp_url, "alice")
        refreshed = await flow.refresh(tokens, server="protected")
    assert tokens.client_id == refreshed.client_id == CONFIGURED_ID
    assert claims(tokens)["client_id"] == CONFIGURED_ID and claims(tokens)["sub"] == "alice"
    assert len(auth_server.events("registration_create.success")) == registered
    assert CONFIGURED_SECRET not in repr(configured)


async def test_refresh_rotates_the_refresh_token_and_a_reused_one_is_refused(
    auth_server: AuthorizationServer, mcp_url: str, store: InMemoryStore
) -> None:
    async with flow_of(store) as flow:
        tokens = await authorize(flow, mcp_url, "alice")
        consumed = len(auth_server.events("refresh_token.consumed"))
        fresh = await flow.refresh(tokens, server="protected")
        assert fresh.refresh_token is not None and tokens.refresh_token is not None
        assert fresh.refresh_token.get_secret_value() != tokens.refresh_token.get_secret_value()
        assert fresh.access_token.get_secret_value() != tokens.access_token.get_secret_value()
        assert claims(fresh)["sub"] == "alice"
        assert len(auth_server.events("refresh_token.consumed")) == consumed + 1
        assert (await whoami(mcp_url, fresh))["subject"] == "alice"
        # The rotated-out refresh token is refused: the authorization server detects the reuse
        # and revokes the whole grant, the fresh refresh token with it.
        revoked = len(auth_server.events("grant.revoked"))
        with pytest.raises(OAuthError) as caught:
            await flow.refresh(tokens, server="protected")
        assert len(auth_server.events("grant.revoked")) == revoked + 1
        with pytest.raises(OAuthError):
            await flow.refresh(fresh, server="protected")
    assert caught.value.reason == "authorization_needed"
    assert "invalid_grant" in str(caught.value)
    assert tokens.refresh_token.get_secret_value() not in str(caught.value)


async def test_a_client_id_metadata_document_before_dynamic_registration(
    tmp_path: Path, store: InMemoryStore
) -> None:
    """A server that fetches Client ID Metadata Documents gets the deployment's URL as client id."""
    document = {
        "client_name": "mcpbridge tests",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    with (
        metadata_document(tmp_path, document) as served,
        authorization_server(
            tmp_path, client_id_metadata_documents=True, trusted_ca=served.ca_path
        ) as server,
    ):
        port, log = free_port(), tmp_path / "protected.log"
        command = [sys.executable, "-m", "examples.protected_server", "--port", str(port)]
        command += ["--issuer", server.issuer]
        with child(command, cwd=REPO_ROOT, env=dict(os.environ), log=log) as process:
            wait_until(lambda: port_open(port), process, log, "the protected MCP server", 30)
            url = f"http://127.0.0.1:{port}/mcp"
            async with flow_of(store, client_metadata_url=served.url) as flow:
                discovery = await flow.discover(url, server="protected")
                assert discovery.metadata.client_id_metadata_document_supported
                tokens = await authorize(flow, url, "alice")
                fresh = await flow.refresh(tokens, server="protected")
            assert (await whoami(url, fresh))["client_id"] == served.url
    assert tokens.client_id == served.url and claims(tokens)["client_id"] == served.url
    assert claims(fresh)["sub"] == "alice"
    assert served.fetches >= 1
    assert server.events("registration_create.success") == []


async def test_revoking_alices_grant_leaves_bobs(
    auth_server: AuthorizationServer, mcp_url: str, store: InMemoryStore
) -> None:
    async with flow_of(store) as flow:
        alice = await authorize(flow, mcp_url, "alice")
        bob = await authorize(flow, mcp_url, "bob")
        assert alice.revocation_endpoint == f"{auth_server.issuer}/token/revocation"
        revoked = len(auth_server.events("grant.revoked"))
        await flow.revoke(alice, server="protected")
        assert len(auth_server.events("grant.revoked")) == revoked + 1
        with pytest.raises(OAuthError) as caught:
            await flow.refresh(alice, server="protected")
        fresh = await flow.refresh(bob, server="protected")
    assert caught.value.reason == "authorization_needed"
    assert claims(fresh)["sub"] == "bob"
    assert (await whoami(mcp_url, fresh))["subject"] == "bob"


# --- refusals: nothing stored -------------------------------------------------------------------


async def started(flow: OAuthFlow, url: str, user: str = "alice") -> dict[str, str]:
    """Start an authorization for ``user`` and log in: the callback's query, not yet completed."""
    request = await flow.start(user=user, server="protected", server_url=url)
    return await login(request.url, user, redirect_uri=REDIRECT_URI)


async def refused(flow: OAuthFlow, params: dict[str, str], *, user: str | None = "alice") -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        await flow.complete(user=user, params=params)
    for name in ("code", "state"):  # the callback's secrets stay out of the message
        assert name not in params or params[name] not in str(caught.value)
    return caught.value


async def test_forged_replayed_and_expired_states_are_refused(
    auth_server: AuthorizationServer, mcp_url: str, store: InMemoryStore
) -> None:
    async with flow_of(store) as flow:
        params = await started(flow, mcp_url)
        forged = {**params, "state": secrets.token_urlsafe(32)}
        assert (await refused(flow, forged)).reason == "state_unknown"
        assert (
            await refused(flow, {k: v for k, v in params.items() if k != "state"})
        ).reason == "state_missing"
        exchanged = len(auth_server.events("authorization_code.consumed"))
        await flow.complete(user="alice", params=params)
        assert len(auth_server.events("authorization_code.consumed")) == exchanged + 1
        assert (await refused(flow, params)).reason == "state_unknown"  # replayed
    async with flow_of(store, state_ttl=0.0) as late:
        params = await started(late, mcp_url)
        assert (await refused(late, params)).reason == "state_expired"
    assert pending_count(store) == 0
    assert len(auth_server.events("authorization_code.consumed")) == exchanged + 1  # no other code exchanged


async def test_alices_state_completed_as_bob_is_refused(
    auth_server: AuthorizationServer, mcp_url: str, store: InMemoryStore
) -> None:
    async with flow_of(store) as flow:
        params = await started(flow, mcp_url, "alice")
        exchanged = len(auth_server.events("authorization_code.consumed"))
        error = await refused(flow, params, user="bob")
        assert error.reason == "state_user" and error.server == "protected"
        # Used up: alice cannot complete it either, and no code was exchanged.
        assert (await refused(flow, params, user="alice")).reason == "state_unknown"
    assert pending_count(store) == 0
    assert len(auth_server.events("authorization_code.consumed")) == exchanged


async def test_a_wrong_or_missing_iss_is_refused(
    auth_server: AuthorizationServer, mcp_url: str, store: InMemoryStore
) -> None:
    async with flow_of(store) as flow:
        exchanged = len(auth_server.events("authorization_code.consumed"))
        params = await started(flow, mcp_url)
        assert (await refused(flow, {**params, "iss": "http://127.0.0.1:1"})).reason == "issuer_mismatch"
        params = await started(flow, mcp_url)
        without = {k: v for k, v in params.items() if k != "iss"}  # the server promised iss
        assert (await refused(flow, without)).reason == "issuer_mismatch"
    assert pending_count(store) == 0
    assert len(auth_server.events("authorization_code.consumed")) == exchanged


async def test_a_denied_authorization_is_refused(mcp_url: str, store: InMemoryStore) -> None:
    async with flow_of(store) as flow:
        request = await flow.start(user="alice", server="protected", server_url=mcp_url)
        state = parse_qs(urlsplit(request.url).query)["state"][0]
        error = await refused(
            flow, {"state": state, "error": "access_denied", "error_description": "<script>"}
        )
    assert error.reason == "denied" and "access_denied" in str(error) and "<script>" not in str(error)


async def test_concurrent_authorizations_for_alice_and_bob(mcp_url: str, store: InMemoryStore) -> None:
    results: dict[str, Tokens] = {}
    async with flow_of(store) as flow:

        async def one(user: str) -> None:
            results[user] = await authorize(flow, mcp_url, user)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(one, "alice")
                tasks.start_soon(one, "bob")
    assert {user: claims(t)["sub"] for user, t in results.items()} == {"alice": "alice", "bob": "bob"}


async def test_no_secret_reaches_the_logs_at_debug(
    mcp_url: str, store: InMemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    configured = OAuthClient(client_id=CONFIGURED_ID, client_secret=SecretStr(CONFIGURED_SECRET), issuer=None)
    logged: list[str] = []

    def keep() -> None:
        logged.extend(caplog.messages + [r.exc_text or "" for r in caplog.records])
        caplog.clear()

    async with flow_of(store, clients=[configured]) as flow:
        request = await flow.start(user="alice", server="protected", server_url=mcp_url)
        keep()
        # The user's browser is not the deployment: its log (the redirect with the code) is not kept.
        params = await login(request.url, "alice", redirect_uri=REDIRECT_URI)
        caplog.clear()
        tokens = (await flow.complete(user="alice", params=params)).tokens
        fresh = await flow.refresh(tokens, server="protected")
        with pytest.raises(OAuthError):
            await flow.refresh(tokens, server="protected")  # a refusal's log lines too
    assert tokens.refresh_token is not None and fresh.refresh_token is not None
    secrets_seen = [
        params["code"],
        params["state"],
        CONFIGURED_SECRET,
        tokens.access_token.get_secret_value(),
        tokens.refresh_token.get_secret_value(),
        fresh.access_token.get_secret_value(),
        fresh.refresh_token.get_secret_value(),
    ]
    keep()
    text = "\n".join(logged)
    assert "authorized for user 'alice'" in text  # the log was captured
    assert [s for s in secrets_seen if s in text] == []


async def test_a_code_issued_to_another_client_is_refused(
    auth_server: AuthorizationServer, mcp_url: str, store: InMemoryStore
) -> None:
    """A code obtained through another client, slipped under alice's own state: the exchange fails."""
    configured = OAuthClient(client_id=CONFIGURED_ID, client_secret=SecretStr(CONFIGURED_SECRET))
    async with flow_of(store) as flow, flow_of(InMemoryStore(), clients=[configured]) as other:
        mine = await flow.start(user="alice", server="protected", server_url=mcp_url)
        theirs = await started(other, mcp_url)
        state = parse_qs(urlsplit(mine.url).query)["state"][0]
        error = await refused(flow, {**theirs, "state": state})
    assert error.reason == "token" and "invalid_grant" in str(error)
    assert pending_count(store) == 0


async def test_a_callback_without_an_identity_of_its_own_completes_for_the_states_user(
    mcp_url: str, store: InMemoryStore
) -> None:
    async with flow_of(store) as flow:
        params = await started(flow, mcp_url, "bob")
        done = await flow.complete(user=None, params=params)
        assert (await refused(flow, params, user=None)).reason == "state_unknown"
    assert done.user == "bob" and claims(done.tokens)["sub"] == "bob"
