"""``mcpbridge serve`` as an OAuth protected resource of a real authorization server (``oidc-provider``).

The authorization server runs on Node.js (``examples/oauth_servers.py``; users alice
and bob), signing with a key this module generates, so that the refused tokens
below can be made with its very key. ``mcpbridge serve --transport http
--oauth-issuer ...`` runs as its own process. The MCP client that logs in is the
SDK's ``OAuthClientProvider``; a headless HTTP client signs the user in at the
provider's pages. Tokens for chosen resources and scopes come from the same
authorization code flow, done by hand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from examples.oauth_servers import AuthorizationServer, authorization_server
from tests.integration.support import RecordFile
from tests.support.oidc import login
from tests.support.processes import free_port

from .conftest import ServeProcess, serve_env, start_serve
from .test_serve_auth import INITIALIZE, structured, text

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CALL_TIMEOUT = 90.0
REDIRECT = "http://127.0.0.1:9/oauth/callback"
"""The MCP client's redirect URI; nothing listens there (the headless login stops at the redirect)."""
KID = "serve-test-key"
SCOPE = "mcp:tools"
OTHER_SCOPE = "mcp:admin"
INTROSPECTOR: dict[str, Any] = {
    "client_id": "agents-resource",
    "client_secret": "introspection-secret-" + "x" * 24,
    "redirect_uris": [],
    "response_types": [],
    "grant_types": [],
}
"""The served agent's own client at the authorization server, for introspection."""
GRAPHS = [f"{name}=tests.serve.graphs:{name}" for name in ("plain_factory", "memo")]
AGENT = "echo_agent=tests.serve.graphs:echo_agent"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass
class Deployment:
    """The authorization server, its signing key, and the served agents protected by it."""

    auth: AuthorizationServer
    key: rsa.RSAPrivateKey
    jwt_served: ServeProcess
    introspected: ServeProcess
    down_issuer: str
    down_served: ServeProcess


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("serve-oauth")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**RSAAlgorithm.to_jwk(key, as_dict=True), "kid": KID, "alg": "RS256", "use": "sig"}
    jwt_port, introspected_port, down_port = free_port(), free_port(), free_port()
    opaque = f"http://127.0.0.1:{introspected_port}/mcp"
    with authorization_server(
        directory,
        scopes=(SCOPE, OTHER_SCOPE),
        clients=[INTROSPECTOR],
        opaque_resources=[opaque],
        jwks={"keys": [jwk]},
        access_token_ttl=600,
    ) as auth:
        records = RecordFile(directory / "calls.jsonl")
        allow = f"127.0.0.1:{auth.port}"
        common = ["--oauth-issuer", auth.issuer, "--scope", SCOPE, "--oauth-allow", allow]
        served: list[ServeProcess] = []
        try:
            served.append(
                start_serve(
                    [*GRAPHS, AGENT, *common, "--resource", f"http://127.0.0.1:{jwt_port}/mcp"],
                    directory / "jwt",
                    serve_env(records),
                    records,
                    port=jwt_port,
                )
            )
            introspection_env = serve_env(
                records,
                MCPBRIDGE_INTROSPECTION_CLIENT_ID=INTROSPECTOR["client_id"],
                MCPBRIDGE_INTROSPECTION_CLIENT_SECRET=INTROSPECTOR["client_secret"],
            )
            served.append(
                start_serve(
                    [*GRAPHS, *common, "--resource", opaque, "--introspect"],
                    directory / "introspected",
                    introspection_env,
                    records,
                    port=introspected_port,
                )
            )
            down_issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
            down_args = ["--oauth-issuer", down_issuer, "--oauth-allow", "127.0.0.1:*"]
            served.append(
                start_serve(
                    [*GRAPHS, *down_args, "--resource", f"http://127.0.0.1:{down_port}/mcp"],
                    directory / "down",
                    serve_env(records),
                    records,
                    port=down_port,
                )
            )
            yield Deployment(auth, key, served[0], served[1], down_issuer, served[2])
        finally:
            for process in served:
                process.stop()


# --- tokens ----------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def issue(auth: AuthorizationServer, user: str, *, resource: str, scope: str = SCOPE) -> str:
    """An access token for ``user`` and ``resource``: registration, the code flow with PKCE, the exchange."""
    async with httpx2.AsyncClient(timeout=30) as http:
        endpoints = (await http.get(f"{auth.issuer}/.well-known/openid-configuration")).json()
        registered = await http.post(
            endpoints["registration_endpoint"],
            json={
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            },
        )
        client_id = registered.json()["client_id"]
        verifier = secrets.token_urlsafe(48)
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": secrets.token_urlsafe(16),
            "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
            "resource": resource,
        }
        answer = await login(
            f"{endpoints['authorization_endpoint']}?{urlencode(query)}", user, redirect_uri=REDIRECT
        )
        exchanged = await http.post(
            endpoints["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": answer["code"],
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
                "client_id": client_id,
                "resource": resource,
            },
        )
        assert exchanged.status_code == 200, exchanged.text
        return exchanged.json()["access_token"]


def forged(deployment: Deployment, real: str, **changes: Any) -> str:
    """``real``'s claims, changed, signed with the authorization server's own key."""
    claims = {**jwt.decode(real, options={"verify_signature": False}), **changes}
    return jwt.encode(claims, deployment.key, algorithm="RS256", headers={"kid": KID, "typ": "at+jwt"})


def hs256_with_public_key(deployment: Deployment, real: str) -> str:
    """``real``'s claims signed HS256 with the public key as HMAC secret (algorithm confusion)."""
    secret = deployment.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = jwt.decode(real, options={"verify_signature": False})
    signing_input = (
        _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": KID}).encode())
        + "."
        + _b64(json.dumps(claims).encode())
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


async def post(url: str, token: str | None, message: dict[str, Any] = INITIALIZE) -> httpx2.Response:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(timeout=30) as http:
        return await http.post(url, json=message, headers={**HEADERS, **auth})


@asynccontextmanager
async def bearer_client(url: str, token: str) -> AsyncGenerator[Client, None]:
    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=90)
        ) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


# --- an OAuth-capable MCP client -------------------------------------------------------------------


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@asynccontextmanager
async def oauth_client(url: str, user: str, storage: MemoryStorage) -> AsyncGenerator[Client, None]:
    """The SDK's OAuth client; its browser is the headless login of ``user``."""
    answers: list[dict[str, str]] = []

    async def redirect(authorization_url: str) -> None:
        answers.append(await login(authorization_url, user, redirect_uri=REDIRECT))

    async def callback() -> AuthorizationCodeResult:
        answer = answers.pop()
        return AuthorizationCodeResult(code=answer["code"], state=answer.get("state"), iss=answer.get("iss"))

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            redirect_uris=[REDIRECT],  # pyright: ignore[reportArgumentType]
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
            client_name="serve-oauth-test",
        ),
        storage=storage,
        redirect_handler=redirect,
        callback_handler=callback,
    )
    async with (
        httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30, read=90)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


# --- tests -----------------------------------------------------------------------------------------


async def test_without_a_token_the_401_names_the_resource_metadata(deployment: Deployment) -> None:
    served = deployment.jwt_served
    response = await post(served.url, None)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    metadata_url = served.url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{metadata_url}"' in challenge
    async with httpx2.AsyncClient(timeout=30) as http:
        documents = [
            (await http.get(url)).json()
            for url in (metadata_url, served.url.replace("/mcp", "/.well-known/oauth-protected-resource"))
        ]
    assert (
        documents[0]
        == documents[1]
        == {
            "resource": served.url,
            "authorization_servers": [deployment.auth.issuer],
            "scopes_supported": [SCOPE],
            "bearer_methods_supported": ["header"],
        }
    )


async def test_an_oauth_client_logs_in_and_runs_the_agent_as_its_user(deployment: Deployment) -> None:
    served = deployment.jwt_served
    records = served.records.view()
    storage = MemoryStorage()
    with anyio.fail_after(CALL_TIMEOUT):
        async with oauth_client(served.url, "alice", storage) as alice:
            tools = {tool.name for tool in (await alice.list_tools()).tools}
            result = await alice.call_tool("plain_factory", {"message": "who?"})
            called = await alice.call_tool("echo_agent", {"message": "call echo_whoami"})
    assert tools == {"plain_factory", "memo", "echo_agent"}
    assert not result.is_error, text(result)
    assert text(result) == "built for alice (threads.create_run)"
    # The agent's own MCP server receives the subject as the run's user, in _meta.
    assert not called.is_error, text(called)
    [call] = records.entries(tool="whoami")
    assert call["meta"]["dev.mcpbridge/user_id"] == "alice"
    assert call["meta"]["dev.mcpbridge/thread_id"] == structured(called)["thread_id"]
    assert (
        storage.tokens is not None and storage.client is not None
    )  # logged in through DCR and the code flow
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert (claims["sub"], claims["aud"]) == ("alice", served.url)
    assert deployment.auth.events("authorization.success")


async def test_two_users_threads_stay_apart(deployment: Deployment) -> None:
    served = deployment.jwt_served
    alice_token = await issue(deployment.auth, "alice", resource=served.url)
    bob_token = await issue(deployment.auth, "bob", resource=served.url)
    with anyio.fail_after(CALL_TIMEOUT):
        async with bearer_client(served.url, alice_token) as alice:
            first = await alice.call_tool("memo", {"message": "alice's secret"})
            thread_id = structured(first)["thread_id"]
        async with bearer_client(served.url, bob_token) as bob:
            theirs = await bob.call_tool("memo", {"message": "show me", "thread_id": thread_id})
            built = await bob.call_tool("plain_factory", {"message": "who?"})
        async with bearer_client(served.url, alice_token) as alice:
            again = await alice.call_tool("memo", {"message": "and more", "thread_id": thread_id})
    assert theirs.is_error and text(theirs).startswith(f"There is no thread {thread_id}")
    assert "secret" not in text(theirs)
    assert text(built) == "built for bob (threads.create_run)"
    assert text(again) == "you said: alice's secret | and more"


async def test_refused_tokens_run_nothing(deployment: Deployment) -> None:
    served = deployment.jwt_served
    records = served.records.view()
    real = await issue(deployment.auth, "alice", resource=served.url)
    elsewhere = await issue(deployment.auth, "alice", resource="http://127.0.0.1:9/other/mcp")
    hour_ago = int(time.time()) - 3600
    refused = {
        "expired": forged(deployment, real, exp=hour_ago, iat=hour_ago - 600),
        "another audience": elsewhere,
        "another issuer": forged(deployment, real, iss="http://127.0.0.1:9"),
        "HS256 with the public key": hs256_with_public_key(deployment, real),
        "malformed": "not-a-token",
    }
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "memo", "arguments": {}}}
    for why, token in refused.items():
        for message in (INITIALIZE, call):
            response = await post(served.url, token, message)
            assert response.status_code == 401, (why, response.text)
            assert 'error="invalid_token"' in response.headers["www-authenticate"], why
            assert "resource_metadata=" in response.headers["www-authenticate"], why
    assert (await post(served.url, real)).status_code == 200  # the real token itself is accepted
    assert records.entries() == []


async def test_a_token_without_the_scope_is_refused_403(deployment: Deployment) -> None:
    served = deployment.jwt_served
    token = await issue(deployment.auth, "bob", resource=served.url, scope=OTHER_SCOPE)
    assert jwt.decode(token, options={"verify_signature": False})["scope"] == OTHER_SCOPE
    response = await post(served.url, token)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_an_unreachable_authorization_server_is_503_never_an_accepted_token(
    deployment: Deployment,
) -> None:
    served = deployment.down_served
    real = await issue(deployment.auth, "alice", resource=deployment.jwt_served.url)
    token = forged(deployment, real, iss=deployment.down_issuer, aud=served.url)
    for _ in range(2):  # the second within the back-off: answered at once, still 503
        response = await post(served.url, token)
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "temporarily_unavailable"
        assert response.headers["retry-after"]
    assert (await post(served.url, None)).status_code == 401


async def test_opaque_tokens_are_introspected(deployment: Deployment) -> None:
    served = deployment.introspected
    token = await issue(deployment.auth, "bob", resource=served.url)
    assert token.count(".") != 2  # opaque, not a JWT
    jwt_for_another = await issue(deployment.auth, "bob", resource=deployment.jwt_served.url)
    with anyio.fail_after(CALL_TIMEOUT):
        async with bearer_client(served.url, token) as bob:
            result = await bob.call_tool("plain_factory", {"message": "who?"})
    assert text(result) == "built for bob (threads.create_run)"
    assert (await post(served.url, jwt_for_another)).status_code == 401
    assert (await post(served.url, "opaque-and-unknown")).status_code == 401


def test_the_served_log_holds_no_token(deployment: Deployment) -> None:
    for served in (deployment.jwt_served, deployment.introspected, deployment.down_served):
        log = Path(served.log).read_text(errors="replace")
        assert "eyJ" not in log  # no JWT (their header always starts so)
        assert INTROSPECTOR["client_secret"] not in log
