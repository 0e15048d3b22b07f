"""Access tokens of an external authorization server, checked for a served agent (`ProtectedResource`).

The authorization server is made of documents served from memory (its metadata,
its JWKS, its introspection answers); the tokens are signed here with real keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from mcpbridge import UrlPolicy
from mcpbridge.cli import main
from mcpbridge.errors import ConfigError
from mcpbridge.serving import AgentMCPServer, Introspection, ProtectedResource, ServedUser
from mcpbridge.serving.oauth import AuthorizationServerUnavailable, ResourceTokenVerifier
from mcpbridge.serving.users import user_of_scope
from tests.serve.graphs import memo

from ._oauth import Documents

pytestmark = pytest.mark.anyio

RESOURCE = "https://agents.example.com/mcp"
ISSUER = "https://auth.example.com"
OTHER = "https://other.example.com"
POLICY = UrlPolicy(allow=["auth.example.com", "other.example.com"])
JWKS = f"{ISSUER}/jwks"
INTROSPECT = f"{ISSUER}/token/introspection"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def public_jwk(key: PrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


def metadata(issuer: str = ISSUER, **changes: Any) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "introspection_endpoint": f"{issuer}/token/introspection",
        **changes,
    }


def authorization_server(*keys: tuple[PrivateKey, str], issuer: str = ISSUER) -> Documents:
    return Documents(
        documents={
            f"{issuer}/.well-known/oauth-authorization-server": metadata(issuer),
            f"{issuer}/jwks": {"keys": [public_jwk(key, kid) for key, kid in keys]},
        }
    )


def claims(**changes: Any) -> dict[str, Any]:
    """The claims of a valid token, with ``changes``; a callable change is given the time of signing."""
    now = int(time.time())
    changes = {k: v(now) if callable(v) else v for k, v in changes.items()}
    base = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": RESOURCE,
        "exp": now + 300,
        "iat": now,
        "scope": "agents:run",
    }
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def sign(key: PrivateKey, kid: str = "k1", algorithm: str = "RS256", **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm=algorithm, headers={"kid": kid, "typ": "at+jwt"})


def resource(**changes: Any) -> ProtectedResource:
    base: dict[str, Any] = {"issuers": [ISSUER], "scopes": ["agents:run"], "policy": POLICY}
    return ProtectedResource(RESOURCE, **{**base, **changes})


def verifier_of(
    documents: Documents | Callable[[httpx2.Request], httpx2.Response], **changes: Any
) -> ResourceTokenVerifier:
    handle = documents.handle if isinstance(documents, Documents) else documents
    return ResourceTokenVerifier(resource(**changes), transport=httpx2.MockTransport(handle))


@pytest.fixture
async def rsa_as(rsa_key: rsa.RSAPrivateKey) -> AsyncIterator[tuple[ResourceTokenVerifier, Documents]]:
    documents = authorization_server((rsa_key, "k1"))
    async with verifier_of(documents) as verifier:
        yield verifier, documents


# --- JWTs ----------------------------------------------------------------------------------------


async def test_a_token_of_the_issuer_for_this_resource_is_its_subjects(
    rsa_as: tuple[ResourceTokenVerifier, Documents], rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier, documents = rsa_as
    token = sign(rsa_key, scope="agents:run other")
    checked = await verifier.verify_token(token)
    assert checked is not None
    assert (checked.subject, checked.client_id, checked.resource) == ("alice", "alice", RESOURCE)
    assert checked.scopes == ["agents:run", "other"]
    user = user_of_scope({"user": _authenticated(checked)})
    assert user is not None and user.identity == "alice"
    assert tuple(user.permissions) == ("agents:run",)  # only the scopes the resource declares
    assert await verifier.verify_token(token) is not None
    assert documents.urls() == [f"{ISSUER}/.well-known/oauth-authorization-server", JWKS]  # fetched once


@pytest.mark.parametrize("kind", ["ec", "ed"])
async def test_ec_and_eddsa_keys(kind: str, ec_key: ec.EllipticCurvePrivateKey, ed_key: Any) -> None:
    key, algorithm = (ec_key, "ES256") if kind == "ec" else (ed_key, "EdDSA")
    async with verifier_of(authorization_server((key, "k1"))) as verifier:
        checked = await verifier.verify_token(sign(key, algorithm=algorithm))
    assert checked is not None and checked.subject == "alice"


@pytest.mark.parametrize(
    ("why", "changes"),
    [
        ("expired", {"exp": int(time.time()) - 120}),
        ("not yet valid", {"nbf": lambda now: now + 120}),  # parametrized long before it runs
        ("another resource", {"aud": "https://elsewhere.example.com/mcp"}),
        ("no audience", {"aud": None}),
        ("no expiry", {"exp": None}),
        ("no subject", {"sub": None}),
        ("an empty subject", {"sub": ""}),
        ("a subject too long", {"sub": "a" * 256}),
        ("a subject with control characters", {"sub": "alice\nbob"}),
        ("a numeric subject", {"sub": 7}),
    ],
)
async def test_refused_claims(
    why: str, changes: dict[str, Any], rsa_as: tuple[ResourceTokenVerifier, Documents], rsa_key: Any
) -> None:
    verifier, _ = rsa_as
    assert await verifier.verify_token(sign(rsa_key, **changes)) is None, why


async def test_clock_skew_within_the_leeway_is_allowed(
    rsa_as: tuple[ResourceTokenVerifier, Documents], rsa_key: Any
) -> None:
    verifier, _ = rsa_as
    assert await verifier.verify_token(sign(rsa_key, nbf=int(time.time()) + 10)) is not None


async def test_another_issuer_is_refused_without_fetching_anything(
    rsa_as: tuple[ResourceTokenVerifier, Documents], rsa_key: Any
) -> None:
    verifier, documents = rsa_as
    assert await verifier.verify_token(sign(rsa_key, iss=OTHER)) is None
    assert await verifier.verify_token("not a jwt") is None
    assert documents.requests == []


def _hs256(secret: bytes, payload: dict[str, Any], kid: str = "k1") -> str:
    def part(data: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")

    signing_input = part({"alg": "HS256", "typ": "JWT", "kid": kid}) + b"." + part(payload)
    mac = base64.urlsafe_b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + mac).decode()


async def test_hs256_with_the_public_key_as_secret_and_alg_none_are_refused(
    rsa_as: tuple[ResourceTokenVerifier, Documents], rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier, _ = rsa_as
    public = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_secret = json.dumps(public_jwk(rsa_key, "k1")).encode()
    for secret in (public, jwk_secret):
        assert await verifier.verify_token(_hs256(secret, claims())) is None
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"})  # pyright: ignore[reportArgumentType]
    assert await verifier.verify_token(unsigned) is None


async def test_a_key_not_in_the_jwks_is_refused(rsa_key: Any) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with verifier_of(authorization_server((rsa_key, "k1"))) as verifier:
        assert await verifier.verify_token(sign(stranger)) is None  # same kid, another key
        assert await verifier.verify_token(sign(stranger, kid="k9")) is None


async def test_an_unknown_kid_refetches_the_jwks_at_most_so_often(rsa_key: Any) -> None:
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    documents = authorization_server((rsa_key, "k1"))
    async with verifier_of(documents, jwks_min_refetch=3600) as verifier:
        assert await verifier.verify_token(sign(rsa_key)) is not None
        documents.documents[JWKS] = {"keys": [public_jwk(rsa_key, "k1"), public_jwk(rotated, "k2")]}
        for _ in range(5):
            assert await verifier.verify_token(sign(rotated, kid="k2")) is None  # not refetched yet
    assert documents.urls().count(JWKS) == 1
    async with verifier_of(documents, jwks_min_refetch=0) as verifier:
        documents.documents[JWKS] = {"keys": [public_jwk(rsa_key, "k1")]}
        assert await verifier.verify_token(sign(rsa_key)) is not None
        documents.documents[JWKS] = {"keys": [public_jwk(rsa_key, "k1"), public_jwk(rotated, "k2")]}
        assert await verifier.verify_token(sign(rotated, kid="k2")) is not None  # refetched for k2


async def test_several_issuers_qualify_the_identity(rsa_key: Any, ec_key: Any) -> None:
    first = authorization_server((rsa_key, "k1"))
    second = authorization_server((ec_key, "e1"), issuer=OTHER)

    def handle(request: httpx2.Request) -> httpx2.Response:
        return (second if request.url.host == "other.example.com" else first).handle(request)

    async with verifier_of(handle, issuers=[ISSUER, OTHER]) as verifier:
        one = await verifier.verify_token(sign(rsa_key))
        two = await verifier.verify_token(sign(ec_key, kid="e1", algorithm="ES256", iss=OTHER))
    assert one is not None and two is not None
    assert (one.client_id, two.client_id) == (f"{ISSUER}#alice", f"{OTHER}#alice")


async def test_claims_fill_only_the_identity(
    rsa_as: tuple[ResourceTokenVerifier, Documents], rsa_key: Any
) -> None:
    verifier, _ = rsa_as
    hostile: dict[str, Any] = {
        "identity": "root",
        "permissions": ["admin"],
        "display_name": "Root",
        "dev.mcpbridge/user": {"identity": "root"},
    }
    token = sign(rsa_key, **hostile)
    checked = await verifier.verify_token(token)
    assert checked is not None
    user = user_of_scope({"user": _authenticated(checked)})
    assert isinstance(user, ServedUser)
    assert (user.identity, tuple(user.permissions), user.display_name) == ("alice", ("agents:run",), "alice")
    assert dict(user.items()).keys() == {"identity", "permissions", "display_name", "is_authenticated"}


# --- the authorization server unavailable --------------------------------------------------------


async def test_an_unreachable_authorization_server_raises_and_is_not_asked_again_at_once(
    rsa_key: Any,
) -> None:
    sent: list[httpx2.Request] = []

    def down(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        raise httpx2.ConnectError("connection refused", request=request)

    async with verifier_of(down) as verifier:
        for _ in range(3):
            with pytest.raises(AuthorizationServerUnavailable):
                await verifier.verify_token(sign(rsa_key))
    assert len(sent) == 1


@pytest.mark.parametrize(
    ("why", "change"),
    [
        ("another issuer", {"issuer": OTHER}),
        ("no jwks_uri", {"jwks_uri": None}),
        ("a jwks_uri the policy refuses", {"jwks_uri": "http://169.254.169.254/jwks"}),
    ],
)
async def test_unusable_metadata_makes_the_server_unavailable(
    why: str, change: dict[str, Any], rsa_key: Any
) -> None:
    documents = authorization_server((rsa_key, "k1"))
    document = {**metadata(), **change}
    documents.documents[f"{ISSUER}/.well-known/oauth-authorization-server"] = {
        k: v for k, v in document.items() if v is not None
    }
    async with verifier_of(documents) as verifier:
        with pytest.raises(AuthorizationServerUnavailable):
            await verifier.verify_token(sign(rsa_key))
    assert "http://169.254.169.254/jwks" not in documents.urls(), why


async def test_a_loopback_authorization_server_must_be_allowed(rsa_key: Any) -> None:
    local = "http://127.0.0.1:9000"
    documents = authorization_server((rsa_key, "k1"), issuer=local)
    async with verifier_of(documents, issuers=[local], policy=UrlPolicy()) as verifier:
        with pytest.raises(AuthorizationServerUnavailable):
            await verifier.verify_token(sign(rsa_key, iss=local))
    assert documents.requests == []
    allowed = UrlPolicy(allow=["127.0.0.1:9000"])
    async with verifier_of(documents, issuers=[local], policy=allowed) as verifier:
        assert await verifier.verify_token(sign(rsa_key, iss=local)) is not None


# --- introspection -------------------------------------------------------------------------------


def introspection_server(answer: dict[str, Any], status: int = 200) -> Documents:
    return Documents(
        documents={f"{ISSUER}/.well-known/oauth-authorization-server": metadata()},
        posted={INTROSPECT: (status, answer)},
    )


def active(**changes: Any) -> dict[str, Any]:
    return {k: v for k, v in {"active": True, **claims(), **changes}.items() if v is not None}


async def test_introspection_accepts_an_active_token_and_caches_the_answer() -> None:
    documents = introspection_server(active())
    async with verifier_of(documents, introspection=Introspection("rs", "rs-secret")) as verifier:
        first = await verifier.verify_token("opaque-1")
        again = await verifier.verify_token("opaque-1")
    assert first is not None and again is not None and first.subject == "alice"
    posts = [r for r in documents.requests if r.method == "POST"]
    assert len(posts) == 1
    assert posts[0].headers["authorization"] == "Basic " + base64.b64encode(b"rs:rs-secret").decode()
    assert b"token=opaque-1" in posts[0].content


async def test_the_introspection_cache_is_bounded() -> None:
    documents = introspection_server(active())
    options = {"introspection": Introspection("rs", "s", max_cached=2)}
    async with verifier_of(documents, **options) as verifier:
        for token in ("a", "b", "c", "a"):
            assert await verifier.verify_token(token) is not None
    assert len([r for r in documents.requests if r.method == "POST"]) == 4  # "a" was dropped for "c"


@pytest.mark.parametrize(
    ("why", "answer"),
    [
        ("inactive", {"active": False}),
        ("active as a string", active(active="true")),
        ("another resource", active(aud="https://elsewhere.example.com/mcp")),
        ("no audience", active(aud=None)),
        ("another issuer", active(iss=OTHER)),
        ("expired", active(exp=int(time.time()) - 120)),
        ("no subject", active(sub=None)),
        ("answered 400", {"error": "invalid_request"}),
    ],
)
async def test_introspection_refusals(why: str, answer: dict[str, Any]) -> None:
    documents = introspection_server(answer, status=400 if "error" in answer else 200)
    async with verifier_of(documents, introspection=Introspection("rs", "s")) as verifier:
        assert await verifier.verify_token("opaque") is None, why
        assert await verifier.verify_token("opaque") is None
    assert len([r for r in documents.requests if r.method == "POST"]) == 2  # refusals are not cached


@pytest.mark.parametrize("status", [401, 500])
async def test_an_introspection_endpoint_that_fails_makes_the_server_unavailable(status: int) -> None:
    documents = introspection_server({"error": "invalid_client"}, status=status)
    async with verifier_of(documents, introspection=Introspection("rs", "wrong")) as verifier:
        with pytest.raises(AuthorizationServerUnavailable):
            await verifier.verify_token("opaque")


# --- settings ------------------------------------------------------------------------------------


def test_the_metadata_document() -> None:
    settings = resource(issuers=[ISSUER, OTHER], resource_name="Agents")
    document = settings.metadata().model_dump(mode="json", exclude_none=True)
    assert document == {
        "resource": RESOURCE,
        "authorization_servers": [ISSUER, OTHER],
        "scopes_supported": ["agents:run"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Agents",
    }
    assert settings.metadata_url() == "https://agents.example.com/.well-known/oauth-protected-resource/mcp"
    assert resource(issuers=ISSUER).issuers == (ISSUER,)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"algorithms": ["RS256", "HS256"]}, "algorithms"),
        ({"algorithms": ["none"]}, "algorithms"),
        ({"algorithms": []}, "algorithms"),
        ({"issuers": []}, "issuers"),
        ({"issuers": ["auth.example.com"]}, "issuers"),
        ({"introspection": Introspection("a", "b"), "issuers": [ISSUER, OTHER]}, "introspection"),
    ],
)
def test_bad_settings(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        resource(**changes)
    assert raised.value.field == field


def test_bad_resource_url() -> None:
    with pytest.raises(ConfigError, match="public MCP URL"):
        ProtectedResource("/mcp", issuers=[ISSUER])


def test_oauth_with_auth_or_remote_assistants_is_refused() -> None:
    async def verify(token: str) -> None:
        return None

    with pytest.raises(ConfigError, match="not both"):
        AgentMCPServer.from_graphs({"memo": memo}, auth=verify, oauth=resource())
    with pytest.raises(ConfigError, match="token passthrough"):
        AgentMCPServer.from_remote("http://127.0.0.1:2024", oauth=resource())


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--oauth-issuer", ISSUER, "--resource", RESOURCE], "for --transport http"),
        (["--transport", "http", "--oauth-issuer", ISSUER], "needs --resource URL"),
        (["--transport", "http", "--scope", "s"], "--scope needs --oauth-issuer"),
        (["--transport", "http", "--resource", RESOURCE, "--oauth-allow", "x"], "need --oauth-issuer"),
        (
            ["--transport", "http", "--oauth-issuer", ISSUER, "--resource", RESOURCE, "--auth", "m:v"],
            "not both",
        ),
        (
            ["--transport", "http", "--oauth-issuer", ISSUER, "--resource", RESOURCE, "--introspect"],
            "CLIENT_ID",
        ),
        (["--transport", "http", "--oauth-issuer", "nope", "--resource", RESOURCE], "issuer identifier"),
    ],
)
def test_cli_refuses_bad_combinations(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MCPBRIDGE_INTROSPECTION_CLIENT_ID", raising=False)
    assert main(["serve", "tests.serve.graphs:memo", *argv]) == 2
    assert says in capsys.readouterr().err


def test_cli_refuses_oauth_with_remote(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["serve", "--remote", "http://127.0.0.1:2024", "--transport", "http"]
    assert main([*argv, "--oauth-issuer", ISSUER, "--resource", RESOURCE]) == 2
    assert "token passthrough" in capsys.readouterr().err


def _authenticated(token: Any) -> Any:
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

    return AuthenticatedUser(token)


# --- the served app, in memory -------------------------------------------------------------------

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


@asynccontextmanager
async def app_client(
    handle: Callable[[httpx2.Request], httpx2.Response], monkeypatch: pytest.MonkeyPatch
) -> AsyncGenerator[httpx2.AsyncClient, None]:
    """A client of the served app (its lifespan running), the authorization server answering ``handle``."""
    original = ResourceTokenVerifier.__init__

    def in_memory(self: ResourceTokenVerifier, settings: ProtectedResource, **_: Any) -> None:
        original(self, settings, transport=httpx2.MockTransport(handle))

    monkeypatch.setattr(ResourceTokenVerifier, "__init__", in_memory)
    server = AgentMCPServer.from_graphs({"memo": memo}, oauth=resource())
    app = server.http_app(host="agents.example.com")
    transport = httpx2.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=transport, base_url="https://agents.example.com") as client,
    ):
        yield client


def bearer(token: str) -> dict[str, str]:
    return {**HEADERS, "Authorization": f"Bearer {token}"}


async def test_the_app_serves_the_metadata_and_answers_401_and_403(
    rsa_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app_client(authorization_server((rsa_key, "k1")).handle, monkeypatch) as client:
        documents = [
            (await client.get(path)).json()
            for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource")
        ]
        unauthenticated = await client.post("/mcp", json=PING, headers=HEADERS)
        forged = await client.post("/mcp", json=PING, headers=bearer(sign(rsa_key, aud=OTHER)))
        unscoped = await client.post("/mcp", json=PING, headers=bearer(sign(rsa_key, scope="other")))
    assert documents[0] == documents[1]
    assert (documents[0]["resource"], documents[0]["authorization_servers"]) == (RESOURCE, [ISSUER])
    metadata_url = "https://agents.example.com/.well-known/oauth-protected-resource/mcp"
    for refused in (unauthenticated, forged):
        assert refused.status_code == 401
        assert f'resource_metadata="{metadata_url}"' in refused.headers["www-authenticate"]
    assert unscoped.status_code == 403
    assert 'error="insufficient_scope"' in unscoped.headers["www-authenticate"]


async def test_the_app_answers_503_when_the_authorization_server_is_down(
    rsa_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    async with app_client(down, monkeypatch) as client:
        answer = await client.post("/mcp", json=PING, headers=bearer(sign(rsa_key)))
    assert answer.status_code == 503
    assert answer.json()["error"] == "temporarily_unavailable"
    assert answer.headers["retry-after"] == "5"
