"""IdentityVerifier (``mcpbridge.server``): every rejection, hostile tokens, options, verified_identity."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mcpbridge import (
    ConfigError,
    IdentitySigner,
)
from mcpbridge.server import (
    IdentityVerifier,
    verified_identity,
)

from ._signing import (
    IDENTITY,
    OTHER_SECRET,
    SECRET,
    b64,
    claims,
    forge,
    public_pem,
    rejection,
    unb64,
    verifier,
)

# --- every rejection -----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, ""])
def test_missing(token: str | None) -> None:
    error = rejection(verifier(), token)
    assert error.reason == "missing"
    assert "no signed identity" in str(error)
    assert "IdentitySigner" in str(error)  # says how to fix it


@pytest.mark.parametrize("token", ["abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30", "x" * 300])
def test_malformed(token: str) -> None:
    error = rejection(verifier(), token)
    assert error.reason == "malformed"
    assert "not a valid token" in str(error)


def test_signed_with_another_secret() -> None:
    token = IdentitySigner(OTHER_SECRET).sign(IDENTITY, server="files")
    error = rejection(verifier(), token)
    assert error.reason == "bad_signature"
    assert "signature does not match" in str(error)


def test_an_edited_payload_breaks_the_signature() -> None:
    header, payload, signature = IdentitySigner(SECRET).sign(IDENTITY, server="files").split(".")
    forged = json.loads(unb64(payload))
    forged["sub"] = "mallory"
    token = ".".join([header, b64(json.dumps(forged).encode()), signature])
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "mallory"
    assert rejection(verifier(), token).reason == "bad_signature"


def test_expired() -> None:
    token = IdentitySigner(SECRET, ttl=60).sign(IDENTITY, server="files", now=time.time() - 600)
    error = rejection(verifier(), token)
    assert error.reason == "expired"
    assert "expired" in str(error) and "clocks" in str(error)


def test_not_yet_valid() -> None:
    token = IdentitySigner(SECRET).sign(IDENTITY, server="files", now=time.time() + 600)
    error = rejection(verifier(), token)
    assert error.reason == "not_yet_valid"
    assert "not valid yet" in str(error)


def test_a_token_for_one_server_cannot_be_replayed_to_another() -> None:
    token = IdentitySigner(SECRET).sign(IDENTITY, server="a")
    assert verifier("a").verify(token).user_id == "alice"
    error = rejection(verifier("b"), token)
    assert error.reason == "wrong_audience"
    assert "'b'" in str(error) and "replayed" in str(error)


def test_wrong_issuer() -> None:
    token = IdentitySigner(SECRET, issuer="someone-else").sign(IDENTITY, server="files")
    error = rejection(verifier(), token)
    assert error.reason == "wrong_issuer"
    assert "'mcpbridge'" in str(error)


@pytest.mark.parametrize("claim", ["jti", "exp", "iat", "aud", "iss"])
def test_missing_claim(claim: str) -> None:
    token = jwt.encode(claims(**{claim: None}), SECRET, algorithm="HS256")
    error = rejection(verifier(), token)
    assert error.reason == "missing_claim"
    assert repr(claim) in str(error)


def test_a_hand_made_token_with_every_claim_is_accepted() -> None:
    """The checks above fail for the reason they name, not for being hand-made."""
    token = jwt.encode(claims(thread_id="t-9"), SECRET, algorithm="HS256")
    assert verifier().verify(token).thread_id == "t-9"


def test_algorithm_none_is_refused() -> None:
    unsigned = jwt.encode(claims(), "", algorithm="none")
    assert unsigned.endswith(".")  # no signature at all
    hand_made = ".".join([b64(b'{"alg":"none","typ":"JWT"}'), b64(json.dumps(claims()).encode()), ""])
    for token in (unsigned, hand_made):
        error = rejection(verifier(), token)
        assert error.reason in {"bad_signature", "malformed"}
        assert "algorithm" in str(error) or "not a valid token" in str(error)


def test_an_algorithm_the_server_does_not_accept_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    hs512 = jwt.encode(claims(), SECRET + SECRET, algorithm="HS512")
    error = rejection(verifier(), hs512)
    assert error.reason == "bad_signature"
    assert "accepted: HS256" in str(error)
    # An HS256 token at an RS256 server, even one MACed with the server's public key (key confusion).
    pem = public_pem(rsa_key)
    header = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(json.dumps(claims()).encode())
    mac = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    for token in (f"{header}.{body}.{b64(mac)}", jwt.encode(claims(), SECRET, algorithm="HS256")):
        error = rejection(verifier(key=pem, algorithms=["RS256"]), token)
        assert error.reason == "bad_signature"
        assert "accepted: RS256" in str(error)


def test_verifier_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="at least one algorithm"):
        IdentityVerifier(SECRET, audience="files", algorithms=[])
    with pytest.raises(ConfigError, match="audience"):
        IdentityVerifier(SECRET, audience="")


def test_verified_identity_outside_a_verified_request() -> None:
    with pytest.raises(RuntimeError) as caught:
        verified_identity()
    assert "IdentityVerifier" in str(caught.value)
    assert "middleware" in str(caught.value)


# --- hostile tokens ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "algorithms",
    [["HS256", "RS256"], ["RS256", "HS256"], ["ES256", "HS384"], ["EdDSA", "HS512"], ["RS256", "ES256"]],
)
def test_a_verifier_mixing_key_types_is_refused(algorithms: list[str], rsa_key: rsa.RSAPrivateKey) -> None:
    """Regression: one key for HS* and RS* answered a forged HS256 token with an internal error."""
    with pytest.raises(ConfigError) as caught:
        IdentityVerifier(public_pem(rsa_key), audience="files", algorithms=algorithms)
    assert caught.value.field == "algorithms"
    assert "one key type" in str(caught.value)


def test_rsa_and_pss_share_a_key(rsa_key: rsa.RSAPrivateKey) -> None:
    check = verifier(key=public_pem(rsa_key), algorithms=["RS256", "PS256"])
    for algorithm in ("RS256", "PS256"):
        token = IdentitySigner(rsa_key, algorithm=algorithm).sign(IDENTITY, server="files")
        assert check.verify(token).user_id == "alice"


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512", "none", "RS384", "ES256", "EdDSA", "XX1"])
def test_forged_tokens_against_a_public_key_are_identity_errors(
    algorithm: str, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    """Signed with the public key as HMAC secret, or naming another algorithm: a clean rejection."""
    pem = public_pem(rsa_key)
    for check in (
        verifier(key=pem, algorithms=["RS256"]),
        verifier(key=rsa_key, algorithms=["RS256", "PS256"]),
        verifier(key=public_pem(ec_key), algorithms=["ES256"]),
    ):
        token = forge({"alg": algorithm, "typ": "JWT"}, claims(), pem)
        assert rejection(check, token).reason in {"bad_signature", "malformed"}


@pytest.mark.parametrize(
    "token",
    [
        "e30.e30.",
        "eyJhbGciOiJSUzI1NiJ9.e30.AAAA",  # RS256 header, garbage signature
        "eyJhbGciOiJIUzI1NiIsImtpZCI6W119.e30.AAAA",  # a list as kid
        "eyJhbGciOlsiUlMyNTYiXX0.e30.AAAA",  # a list as alg
        "W10.W10.W10",  # JSON arrays
        "." * 3,
        "a" * 20_000,
    ],
)
def test_malformed_tokens_are_identity_errors(token: str, rsa_key: rsa.RSAPrivateKey) -> None:
    for check in (verifier(), verifier(key=public_pem(rsa_key), algorithms=["RS256"])):
        assert rejection(check, token).reason in {"bad_signature", "malformed"}


def test_a_token_claiming_years_of_validity_is_rejected() -> None:
    now = int(time.time())
    token = jwt.encode(claims(iat=now, exp=now + 5 * 365 * 86400), SECRET, algorithm="HS256")
    error = rejection(verifier(), token)
    assert error.reason == "too_long_lived"
    assert "max_lifetime" in str(error)
    # The same token with a lifetime the verifier allows is accepted.
    allowed = jwt.encode(claims(iat=now, exp=now + 3600), SECRET, algorithm="HS256")
    assert verifier().verify(allowed).user_id == "alice"


def test_max_lifetime_is_configurable() -> None:
    now = int(time.time())
    token = jwt.encode(claims(iat=now, exp=now + 600), SECRET, algorithm="HS256")
    assert rejection(verifier(max_lifetime=300), token).reason == "too_long_lived"
    assert verifier(max_lifetime=600).verify(token).user_id == "alice"
    # The longest token a signer makes (ttl=3600) passes the default.
    signed = IdentitySigner(SECRET, ttl=3600).sign(IDENTITY, server="files")
    assert verifier().verify(signed).user_id == "alice"
    with pytest.raises(ConfigError) as caught:
        verifier(max_lifetime=0)
    assert caught.value.field == "max_lifetime"


def test_a_token_issued_in_the_future_is_rejected() -> None:
    now = int(time.time())
    token = jwt.encode(claims(iat=now + 3600, exp=now + 3660), SECRET, algorithm="HS256")
    assert rejection(verifier(), token).reason == "not_yet_valid"
