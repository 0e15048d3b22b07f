"""IdentitySigner: signing each call's identity, key and option checks, signed calls behind a real Bridge."""

from __future__ import annotations

import time
import uuid
from typing import Any

import anyio
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from mcp.server.mcpserver import Context, MCPServer

from mcpbridge import (
    Bridge,
    ConfigError,
    ConnectError,
    IdentityMeta,
    IdentitySigner,
    MemoryServer,
    RunIdentity,
)
from mcpbridge.server import (
    IDENTITY_HEADER,
    TOKEN_FIELD,
    IdentityVerifier,
    VerifiedIdentity,
    verified_identity,
)
from mcpbridge.signing import REGISTERED_AUDIENCE_PREFIX, registered_audience

from ._helpers import Protocol, ai_calls, entry_error, tool_graph
from ._signing import (
    IDENTITY,
    OTHER_SECRET,
    SECRET,
    private_pem,
    public_pem,
    rejection,
    varied,
    verifier,
)

# --- signing and verifying -------------------------------------------------------------------------


def test_hs256_round_trip() -> None:
    signer = IdentitySigner(SECRET, ttl=90)
    before = time.time()
    token = signer.sign(IDENTITY, server="files")
    raw = jwt.decode(token, SECRET, algorithms=["HS256"], audience="files")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert raw["sub"] == "alice"
    assert (raw["thread_id"], raw["run_id"], raw["assistant_id"], raw["graph_id"]) == (
        "thread-1",
        "run-1",
        "asst-1",
        "graph-1",
    )
    assert raw["aud"] == "files"
    assert raw["iss"] == "mcpbridge"
    assert raw["exp"] - raw["iat"] == 90
    assert int(before) <= raw["iat"] <= time.time()
    assert "user_id" not in raw  # the user is the subject

    identity = verifier().verify(token)
    assert isinstance(identity, VerifiedIdentity)
    assert isinstance(identity, RunIdentity)
    assert (identity.user_id, identity.thread_id, identity.run_id) == ("alice", "thread-1", "run-1")
    assert (identity.assistant_id, identity.graph_id) == ("asst-1", "graph-1")
    assert identity.audience == "files"
    assert identity.issuer == "mcpbridge"
    assert identity.expires_at == raw["exp"]
    assert identity.token_id == raw["jti"]


def test_every_token_is_unique() -> None:
    signer = IdentitySigner(SECRET)
    first, second = signer.sign(IDENTITY, server="files"), signer.sign(IDENTITY, server="files")
    assert first != second
    assert verifier().verify(first).token_id != verifier().verify(second).token_id


def test_unknown_fields_are_left_out() -> None:
    token = IdentitySigner(SECRET).sign(RunIdentity(thread_id="t"), server="files")
    raw = jwt.decode(token, SECRET, algorithms=["HS256"], audience="files")
    assert "sub" not in raw and "run_id" not in raw
    identity = verifier().verify(token)
    assert (identity.user_id, identity.thread_id, identity.run_id) == (None, "t", None)


def test_audience_key_id_and_issuer() -> None:
    signer = IdentitySigner(SECRET, audiences={"files": "urn:acme:files"}, key_id="k-2026", issuer="acme")
    assert signer.audience("files") == "urn:acme:files"
    assert signer.audience("other") == "other"
    token = signer.sign(IDENTITY, server="files")
    assert jwt.get_unverified_header(token)["kid"] == "k-2026"
    identity = verifier("urn:acme:files", issuer="acme").verify(token)
    assert identity.audience == "urn:acme:files" and identity.issuer == "acme"
    assert "kid" not in jwt.get_unverified_header(IdentitySigner(SECRET).sign(IDENTITY, server="f"))


def test_a_short_ttl_still_gives_a_second() -> None:
    token = IdentitySigner(SECRET, ttl=0.5).sign(IDENTITY, server="files")
    raw = jwt.decode(token, SECRET, algorithms=["HS256"], audience="files")
    assert raw["exp"] - raw["iat"] == 1


def test_leeway_tolerates_small_clock_skew() -> None:
    signer = IdentitySigner(SECRET, ttl=60)
    just_expired = signer.sign(IDENTITY, server="files", now=time.time() - 62)
    assert verifier(leeway=5).verify(just_expired).user_id == "alice"
    assert rejection(verifier(leeway=0), just_expired).reason == "expired"
    slightly_ahead = signer.sign(IDENTITY, server="files", now=time.time() + 2)
    assert verifier(leeway=5).verify(slightly_ahead).user_id == "alice"


# --- asymmetric keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_asymmetric_round_trips(
    algorithm: str,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    key = {"RS256": rsa_key, "ES256": ec_key, "EdDSA": ed_key}[algorithm]
    for signing_key in (key, private_pem(key)):
        token = IdentitySigner(signing_key, algorithm=algorithm).sign(IDENTITY, server="files")
        assert jwt.get_unverified_header(token)["alg"] == algorithm
        for public in (key.public_key(), public_pem(key)):
            identity = verifier(key=public, algorithms=[algorithm]).verify(token)
            assert (identity.user_id, identity.run_id) == ("alice", "run-1")


def test_a_token_from_another_key_pair_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = IdentitySigner(other, algorithm="RS256").sign(IDENTITY, server="files")
    assert (
        rejection(verifier(key=rsa_key.public_key(), algorithms=["RS256"]), token).reason == "bad_signature"
    )


def test_a_verifier_accepting_several_algorithms() -> None:
    secret = varied(64)
    check = verifier(key=secret, algorithms=["HS256", "HS512"])
    for algorithm in ("HS256", "HS512"):
        token = IdentitySigner(secret, algorithm=algorithm).sign(IDENTITY, server="files")
        assert check.verify(token).user_id == "alice"
    hs384 = IdentitySigner(secret, algorithm="HS384").sign(IDENTITY, server="files")
    assert "accepted: HS256, HS512" in str(rejection(check, hs384))


def test_a_public_key_cannot_sign(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    """Regression: a public key was accepted, and every call then failed with AttributeError."""
    for key, algorithm in ((rsa_key, "RS256"), (ec_key, "ES256"), (ed_key, "EdDSA")):
        for public in (key.public_key(), public_pem(key)):
            with pytest.raises(ConfigError, match="private key") as caught:
                IdentitySigner(public, algorithm=algorithm)
            assert caught.value.field == "key"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_a_verifier_given_the_private_key_verifies_with_its_public_half(
    algorithm: str,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
    ed_key: ed25519.Ed25519PrivateKey,
) -> None:
    """Regression: a private key was accepted, and every verify then raised AttributeError."""
    key = {"RS256": rsa_key, "ES256": ec_key, "EdDSA": ed_key}[algorithm]
    token = IdentitySigner(key, algorithm=algorithm).sign(IDENTITY, server="files")
    other = IdentitySigner(SECRET).sign(IDENTITY, server="files")
    for private in (key, private_pem(key)):
        check = verifier(key=private, algorithms=[algorithm])
        assert check.verify(token).user_id == "alice"
        assert rejection(check, other).reason == "bad_signature"


# --- configuration errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["short", b"x" * 31, "", None, 12345])
def test_a_short_or_missing_hmac_secret_is_refused(key: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        IdentitySigner(key)
    assert caught.value.field == "key"
    assert "at least 32 bytes" in str(caught.value)
    assert "secrets.token_urlsafe" in str(caught.value)
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        IdentityVerifier(key, audience="files")


def test_a_32_byte_secret_is_enough() -> None:
    IdentitySigner(varied(32))
    IdentitySigner(varied(32).encode())


@pytest.mark.parametrize(("algorithm", "least"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_hmac_secrets_as_long_as_the_hash(algorithm: str, least: int) -> None:
    """Regression: 32 bytes were enough for every HS algorithm (pyjwt then warned on every sign)."""
    with pytest.raises(ConfigError, match=f"at least {least} bytes"):
        IdentitySigner(varied(least - 1), algorithm=algorithm)
    with pytest.raises(ConfigError, match=f"at least {least} bytes"):
        IdentityVerifier(varied(least - 1), audience="files", algorithms=[algorithm])
    # The shortest secret allowed signs and verifies without a warning (warnings are errors here).
    token = IdentitySigner(varied(least), algorithm=algorithm).sign(IDENTITY, server="files")
    assert verifier(key=varied(least), algorithms=[algorithm]).verify(token).user_id == "alice"


@pytest.mark.parametrize("algorithm", ["none", "NONE", "HS999", "", "hs256"])
def test_unknown_algorithms_are_refused(algorithm: str) -> None:
    with pytest.raises(ConfigError) as caught:
        IdentitySigner(SECRET, algorithm=algorithm)
    assert caught.value.field == "algorithm"
    assert "HS256" in str(caught.value)  # lists the choices
    assert "'none'" not in str(caught.value).split("use one of")[1]
    with pytest.raises(ConfigError):
        IdentityVerifier(SECRET, audience="files", algorithms=["HS256", algorithm])


@pytest.mark.parametrize("ttl", [0, -1, 3600.5, 86400])
def test_ttl_out_of_range(ttl: float) -> None:
    with pytest.raises(ConfigError) as caught:
        IdentitySigner(SECRET, ttl=ttl)
    assert caught.value.field == "ttl"


def test_ttl_bounds_are_inclusive_at_the_top() -> None:
    assert IdentitySigner(SECRET, ttl=3600).ttl == 3600


def test_unusable_keys_are_refused(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> None:
    for key, algorithm in [
        ("not a pem", "RS256"),
        (ec_key, "RS256"),
        (rsa_key, "ES256"),
        (b"garbage", "EdDSA"),
    ]:
        with pytest.raises(ConfigError) as caught:
            IdentitySigner(key, algorithm=algorithm)
        assert caught.value.field == "key"
        assert algorithm in str(caught.value)
    with pytest.raises(ConfigError, match="public key"):
        IdentityVerifier("not a pem", audience="files", algorithms=["RS256"])


def test_the_signers_repr_hides_the_key() -> None:
    signer = IdentitySigner(SECRET, key_id="k1")
    assert SECRET not in repr(signer)
    assert SECRET not in str(signer)
    assert SECRET not in repr(IdentityMeta(signer=signer))
    assert "k1" in repr(signer)


# --- IdentityMeta.for_call -----------------------------------------------------------------------------


def test_for_call_without_a_signer() -> None:
    meta, headers = IdentityMeta().for_call(IDENTITY, server="files")
    assert meta["dev.mcpbridge/user_id"] == "alice"
    assert f"dev.mcpbridge/{TOKEN_FIELD}" not in meta
    assert headers == {}


def test_for_call_with_a_signer() -> None:
    identity = IdentityMeta(signer=IdentitySigner(SECRET))
    meta, headers = identity.for_call(IDENTITY, server="files")
    token = meta[f"dev.mcpbridge/{TOKEN_FIELD}"]
    assert headers == {IDENTITY_HEADER: token}
    assert meta["dev.mcpbridge/thread_id"] == "thread-1"
    assert verifier("files").verify(token).user_id == "alice"
    assert rejection(verifier("other"), token).reason == "wrong_audience"


def test_for_call_signs_for_each_server() -> None:
    identity = IdentityMeta(signer=IdentitySigner(SECRET))
    meta_a, _ = identity.for_call(IDENTITY, server="a")
    meta_b, _ = identity.for_call(IDENTITY, server="b")
    assert verifier("a").verify(meta_a[f"dev.mcpbridge/{TOKEN_FIELD}"]).audience == "a"
    assert verifier("b").verify(meta_b[f"dev.mcpbridge/{TOKEN_FIELD}"]).audience == "b"


def test_for_call_options() -> None:
    no_header = IdentityMeta(signer=IdentitySigner(SECRET, header=None))
    meta, headers = no_header.for_call(IDENTITY, server="files")
    assert headers == {} and f"dev.mcpbridge/{TOKEN_FIELD}" in meta
    custom = IdentityMeta(signer=IdentitySigner(SECRET, header="X-Identity"), prefix="com.acme/")
    meta, headers = custom.for_call(IDENTITY, server="files")
    assert list(headers) == ["X-Identity"]
    assert meta[f"com.acme/{TOKEN_FIELD}"] == headers["X-Identity"]
    disabled = IdentityMeta(enabled=False, signer=IdentitySigner(SECRET))
    assert disabled.for_call(IDENTITY, server="files") == ({}, {})


# --- the middleware behind a real Bridge ---------------------------------------------------------------

THREAD = "thread-signed"


def run_config(run_id: uuid.UUID, user: str = "alice") -> RunnableConfig:
    return {
        "configurable": {"thread_id": THREAD, "langgraph_auth_user": {"identity": user}},
        "run_id": run_id,
        "metadata": {"assistant_id": "asst-1", "graph_id": "graph-1"},
    }


class Seen:
    """What the server's tools saw: the verified identity and the raw ``_meta`` of each call."""

    def __init__(self) -> None:
        self.identities: list[VerifiedIdentity] = []
        self.meta: list[dict[str, Any]] = []


def guarded_server(check: IdentityVerifier, seen: Seen) -> MCPServer:
    server = MCPServer("files", middleware=[check.middleware()])

    @server.tool()
    async def whoami(ctx: Context) -> str:
        """Report the verified caller."""
        identity = verified_identity()
        seen.identities.append(identity)
        seen.meta.append(dict(ctx.request_context.meta or {}))
        return f"user={identity.user_id} thread={identity.thread_id} run={identity.run_id}"

    @server.tool()
    async def lookup(user_id: str = "", thread_id: str = "", run_id: str = "", sub: str = "") -> str:
        """A tool whose arguments are named like identity fields."""
        identity = verified_identity()
        seen.identities.append(identity)
        return f"user={identity.user_id} asked about {user_id}"

    return server


async def run_one(
    servers: list[MemoryServer],
    identity: IdentityMeta,
    name: str,
    args: dict[str, Any],
    config: RunnableConfig,
) -> ToolMessage:
    with anyio.fail_after(10):
        async with Bridge(servers, identity=identity) as bridge:
            assert [t.name for t in bridge.tools] == ["whoami", "lookup"]  # tools/list needs no signature
            out = await tool_graph(bridge.tools).ainvoke(ai_calls((name, args)), config)
    message = out["messages"][-1]
    assert isinstance(message, ToolMessage)
    return message


def text(message: ToolMessage) -> str:
    content = message.content
    return content if isinstance(content, str) else "".join(str(b.get("text", "")) for b in content)  # pyright: ignore[reportAttributeAccessIssue]


@pytest.mark.anyio
async def test_a_signed_call_reaches_the_tool_with_the_runs_identity(protocol: Protocol) -> None:
    seen = Seen()
    server = MemoryServer(name="files", server=guarded_server(verifier("files"), seen), protocol=protocol)
    run_id = uuid.uuid4()
    message = await run_one(
        [server], IdentityMeta(signer=IdentitySigner(SECRET)), "whoami", {}, run_config(run_id)
    )
    assert message.status == "success", text(message)
    assert text(message) == f"user=alice thread={THREAD} run={run_id}"
    [identity] = seen.identities
    assert identity == VerifiedIdentity(
        thread_id=THREAD,
        run_id=str(run_id),
        user_id="alice",
        assistant_id="asst-1",
        graph_id="graph-1",
        audience="files",
        issuer="mcpbridge",
        expires_at=identity.expires_at,
        token_id=identity.token_id,
    )
    assert identity.token_id and identity.expires_at > time.time()
    [meta] = seen.meta
    assert meta["dev.mcpbridge/user_id"] == "alice"
    assert verifier("files").verify(meta[f"dev.mcpbridge/{TOKEN_FIELD}"]).token_id == identity.token_id


@pytest.mark.anyio
async def test_an_unsigned_call_is_rejected_before_the_tool_runs(protocol: Protocol) -> None:
    seen = Seen()
    server = MemoryServer(name="files", server=guarded_server(verifier("files"), seen), protocol=protocol)
    message = await run_one([server], IdentityMeta(), "whoami", {}, run_config(uuid.uuid4()))
    assert message.status == "error"
    assert "identity rejected" in text(message)
    assert "carries no signed identity" in text(message)
    assert "'files'" in text(message)  # the model learns which server refused
    assert seen.identities == []


@pytest.mark.anyio
async def test_a_call_signed_for_another_audience_is_rejected(protocol: Protocol) -> None:
    seen = Seen()
    server = MemoryServer(name="files", server=guarded_server(verifier("files"), seen), protocol=protocol)
    signer = IdentitySigner(SECRET, audiences={"files": "billing"})
    message = await run_one([server], IdentityMeta(signer=signer), "whoami", {}, run_config(uuid.uuid4()))
    assert message.status == "error"
    assert "identity rejected" in text(message)
    assert "addressed to another server" in text(message)
    assert seen.identities == []


@pytest.mark.anyio
async def test_a_call_signed_with_another_secret_is_rejected(protocol: Protocol) -> None:
    seen = Seen()
    server = MemoryServer(name="files", server=guarded_server(verifier("files"), seen), protocol=protocol)
    signer = IdentitySigner(OTHER_SECRET)
    message = await run_one([server], IdentityMeta(signer=signer), "whoami", {}, run_config(uuid.uuid4()))
    assert message.status == "error"
    assert "identity rejected" in text(message) and "signature does not match" in text(message)
    assert seen.identities == []


@pytest.mark.anyio
async def test_a_mapped_audience_and_a_custom_prefix(protocol: Protocol) -> None:
    seen = Seen()
    check = verifier("urn:acme:files", prefix="com.acme/")
    server = MemoryServer(name="files", server=guarded_server(check, seen), protocol=protocol)
    identity = IdentityMeta(
        prefix="com.acme/", signer=IdentitySigner(SECRET, audiences={"files": "urn:acme:files"})
    )
    message = await run_one([server], identity, "whoami", {}, run_config(uuid.uuid4()))
    assert message.status == "success", text(message)
    assert seen.identities[0].audience == "urn:acme:files"


@pytest.mark.anyio
async def test_identity_named_arguments_do_not_change_the_signed_claims(protocol: Protocol) -> None:
    seen = Seen()
    server = MemoryServer(name="files", server=guarded_server(verifier("files"), seen), protocol=protocol)
    run_id = uuid.uuid4()
    args = {"user_id": "mallory", "thread_id": "their-thread", "run_id": "their-run", "sub": "mallory"}
    message = await run_one(
        [server], IdentityMeta(signer=IdentitySigner(SECRET)), "lookup", args, run_config(run_id)
    )
    assert message.status == "success", text(message)
    assert text(message) == "user=alice asked about mallory"
    [identity] = seen.identities
    assert (identity.user_id, identity.thread_id, identity.run_id) == ("alice", THREAD, str(run_id))


@pytest.mark.anyio
async def test_each_run_is_signed_for_its_own_user(protocol: Protocol) -> None:
    seen = Seen()
    server = MemoryServer(name="files", server=guarded_server(verifier("files"), seen), protocol=protocol)
    with anyio.fail_after(10):
        async with Bridge([server], identity=IdentityMeta(signer=IdentitySigner(SECRET))) as bridge:
            graph = tool_graph(bridge.tools)
            for user in ("alice", "bob"):
                await graph.ainvoke(ai_calls(("whoami", {})), run_config(uuid.uuid4(), user=user))
    assert [i.user_id for i in seen.identities] == ["alice", "bob"]
    assert len({i.token_id for i in seen.identities}) == 2


@pytest.mark.anyio
async def test_the_verifier_checks_only_the_methods_it_is_given(protocol: Protocol) -> None:
    seen = Seen()
    check = verifier("files", methods=("tools/list",))
    server = MemoryServer(name="files", server=guarded_server(check, seen), protocol=protocol)
    # tools/list now needs a signature; the bridge signs tools/call only, so connecting fails.
    error = await entry_error(Bridge([server], identity=IdentityMeta(signer=IdentitySigner(SECRET))))
    assert isinstance(error, ConnectError)
    assert "identity rejected" in str(error)
    assert "no signed identity" in str(error)


# --- weak keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [b"\x00" * 32, "0" * 64, b"\xff" * 48, "ab" * 32, "abcdefg" * 10],
    ids=["zeros", "char", "ff", "ab", "7"],
)
def test_weak_hmac_secrets_are_refused(key: str | bytes) -> None:
    """Regression: an all-zero key signed."""
    for make in (lambda: IdentitySigner(key), lambda: IdentityVerifier(key, audience="files")):
        with pytest.raises(ConfigError) as caught:
            make()
        assert caught.value.field == "key"
        assert "weak" in str(caught.value)
        assert "secrets.token_urlsafe" in str(caught.value)


def test_a_pem_key_is_refused_as_an_hmac_secret(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ConfigError, match="looks like a public or private key"):
        IdentityVerifier(public_pem(rsa_key), audience="files")


def test_a_short_rsa_key_is_refused() -> None:
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError, match="weak"):
        IdentitySigner(short, algorithm="RS256")
    with pytest.raises(ConfigError, match="weak"):
        IdentityVerifier(public_pem(short), audience="files", algorithms=["RS256"])


# --- audiences of registered servers -------------------------------------------------------------------


def test_a_registered_server_gets_a_namespaced_audience() -> None:
    signer = IdentitySigner(SECRET, audiences={"payroll-prod": "payroll"})
    assert signer.audience("payroll") == "payroll"
    assert (
        signer.audience("payroll", registered=True) == registered_audience("payroll") == "registered/payroll"
    )
    # A registered server under a name the audiences map knows still gets its own namespace.
    assert signer.audience("payroll-prod", registered=True) == "registered/payroll-prod"
    meta, _ = IdentityMeta(signer=signer).for_call(IDENTITY, server="payroll", registered=True)
    token = meta[f"dev.mcpbridge/{TOKEN_FIELD}"]
    assert rejection(verifier("payroll"), token).reason == "wrong_audience"
    assert verifier("registered/payroll").verify(token).user_id == "alice"


@pytest.mark.parametrize("audience", ["registered/payroll", REGISTERED_AUDIENCE_PREFIX, ""])
def test_configured_audiences_cannot_enter_the_registered_namespace(audience: str) -> None:
    with pytest.raises(ConfigError) as caught:
        IdentitySigner(SECRET, audiences={"payroll": audience})
    assert caught.value.field == "audiences"
