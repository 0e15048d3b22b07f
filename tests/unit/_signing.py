"""Shared keys, claims and verifiers of the signing and server tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mcpbridge import (
    IdentityError,
    MCPBridgeError,
    RunIdentity,
)
from mcpbridge.server import (
    IdentityVerifier,
)

SECRET = "a-test-secret-that-is-long-enough-0123456789"
OTHER_SECRET = "another-secret-that-is-also-long-enough-9876543210"
IDENTITY = RunIdentity(
    thread_id="thread-1", run_id="run-1", user_id="alice", assistant_id="asst-1", graph_id="graph-1"
)


def varied(length: int) -> str:
    """A secret of ``length`` characters with enough distinct bytes not to count as weak."""
    return ("0123456789abcdefghij" * 8)[:length]


def verifier(audience: str = "files", key: Any = SECRET, **options: Any) -> IdentityVerifier:
    return IdentityVerifier(key, audience=audience, **options)


def rejection(check: IdentityVerifier, token: str | None) -> IdentityError:
    with pytest.raises(IdentityError) as caught:
        check.verify(token)
    assert isinstance(caught.value, MCPBridgeError)
    return caught.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "mcpbridge",
        "aud": "files",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
        "sub": "alice",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def forge(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """A token signed with HMAC-SHA256 over ``key``, whatever algorithm its header names."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"
