"""Signed identity: a short-lived JWT that proves to an MCP server who a tool call serves.

The plain ``_meta`` identity keys can be written by anyone who reaches the
server. With an `IdentitySigner` on the bridge's `IdentityMeta`, every
``tools/call`` also carries a JWT naming the user (``sub``), thread, run and the
target server (``aud``), signed with a shared secret (HS256) or a private key
(RS256, ES256, EdDSA, ...). It travels in ``_meta`` under
``<prefix>identity_token`` and, over HTTP, in the ``Mcpbridge-Identity`` header.

On the server, `mcpbridge.server.IdentityVerifier` checks it before any tool runs.

A server a user registered (`mcpbridge.scoping.RegisteredServers`) gets the audience
``registered/<name>``: a user can never obtain a token addressed to one of the
deployment's servers by registering a server under its name or audience.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
from jwt.algorithms import get_default_algorithms

from mcpbridge._deprecation import moved
from mcpbridge.errors import ConfigError
from mcpbridge.identity import RunIdentity

__all__ = [
    "CLAIMS",
    "DEFAULT_ISSUER",
    "IDENTITY_HEADER",
    "REGISTERED_AUDIENCE_PREFIX",
    "IdentitySigner",
    "check_algorithm",
    "check_key",
    "registered_audience",
]

logger = logging.getLogger("mcpbridge")

IDENTITY_HEADER: Final = "Mcpbridge-Identity"
"""The HTTP header that carries the identity token on streamable HTTP."""

DEFAULT_ISSUER: Final = "mcpbridge"
"""The ``iss`` claim of the tokens, unless the signer sets another."""
REGISTERED_AUDIENCE_PREFIX: Final = "registered/"
"""The audience namespace of user-registered servers; no deployment server name contains a ``/``."""
CLAIMS: Final = ("thread_id", "run_id", "assistant_id", "graph_id")
"""The `RunIdentity` fields a token carries as claims of their own name (the user is ``sub``)."""
_MIN_DISTINCT_BYTES: Final = 8
_GENERATE: Final = "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"


def registered_audience(server: str) -> str:
    """The audience of calls to the user-registered server ``server`` (``registered/<server>``)."""
    return f"{REGISTERED_AUDIENCE_PREFIX}{server}"


def check_algorithm(algorithm: str) -> None:
    """Refuse an algorithm pyjwt does not know, and ``none``."""
    known = sorted(a for a in get_default_algorithms() if a != "none")
    if algorithm not in known:
        raise ConfigError(
            f"signing algorithm {algorithm!r} is not supported; use one of {', '.join(known)}",
            field="algorithm",
        )


def check_key(key: Any, algorithm: str, *, private: bool) -> Any:
    """Refuse an unusable or weak key; return the key to use.

    A verifier given a private key uses its public half.
    """
    implementation: Any = get_default_algorithms()[algorithm]
    if algorithm.startswith("HS"):
        raw = key.encode() if isinstance(key, str) else key
        least = int(algorithm[2:]) // 8  # RFC 7518 3.2: at least the hash's size
        if not isinstance(raw, bytes) or len(raw) < least:
            raise ConfigError(
                f"the {algorithm} secret must be at least {least} bytes; generate one with "
                f"`python -c 'import secrets; print(secrets.token_urlsafe({least + 16}))'`",
                field="key",
            )
        distinct = len(set(raw))
        if distinct < _MIN_DISTINCT_BYTES:
            raise ConfigError(
                f"the {algorithm} secret is weak: it has only {distinct} distinct byte value"
                f"{'s' if distinct != 1 else ''} (all zeros, one repeated character or a short pattern); "
                f"use a random secret, generated with {_GENERATE}",
                field="key",
            )
        try:
            implementation.prepare_key(key)
        except Exception:  # pyjwt refuses PEM and JWK text as an HMAC secret
            raise ConfigError(
                f"the {algorithm} secret looks like a public or private key; an HMAC secret is a random "
                f"string, generated with {_GENERATE}",
                field="key",
            ) from None
        return key
    kind = "private" if private else "public"
    try:
        prepared: Any = implementation.prepare_key(key)
    except Exception as exc:  # pyjwt raises several types for unusable keys
        raise ConfigError(
            f"the key is not a usable {kind} key for {algorithm} ({type(exc).__name__}); "
            f"give a PEM-encoded {kind} key or a `cryptography` key object",
            field="key",
        ) from None
    weakness: str | None = implementation.check_key_length(prepared)
    if weakness:
        raise ConfigError(
            f"the {algorithm} key is weak: {weakness} Generate a stronger one (RSA: 3072 bits, "
            "or use ES256 / EdDSA)",
            field="key",
        )
    if private and not hasattr(prepared, "sign"):
        raise ConfigError(
            f"signing with {algorithm} needs the private key; this is a public key", field="key"
        )
    if not private and not hasattr(prepared, "verify"):
        return prepared.public_key()  # a private key: verify with its public half
    return key


@dataclass(frozen=True, slots=True)
class IdentitySigner:
    """Signs each call's identity for its target server (opt-in, on `IdentityMeta`).

    Attributes:
        key: The HMAC secret (at least as long as the hash: 32 bytes for HS256), or a private
            key (PEM or ``cryptography`` object).
        algorithm: A JWS algorithm: ``HS256`` (shared secret), ``RS256``, ``ES256``, ``EdDSA``, ...
        ttl: Seconds a token stays valid; keep it short, a token is made per call.
        issuer: The ``iss`` claim the servers expect.
        key_id: The ``kid`` header, for servers that rotate keys.
        audiences: Audience per deployment server name; a server not listed gets its own name as
            audience. A server a user registered always gets ``registered/<name>`` (`registered_audience`),
            so no audience here may start with ``registered/``.
        header: The HTTP header carrying the token on HTTP transports; ``None`` sends ``_meta`` only.

    Example:
        ```python
        identity = IdentityMeta(signer=IdentitySigner(os.environ["MCP_IDENTITY_SECRET"]))
        make_graph = agent_factory(servers, model, identity=identity)
        ```
    """

    key: Any = field(repr=False)
    algorithm: str = "HS256"
    ttl: float = 60.0
    issuer: str = DEFAULT_ISSUER
    key_id: str | None = None
    audiences: Mapping[str, str] = field(default_factory=dict[str, str])
    header: str | None = IDENTITY_HEADER

    def __post_init__(self) -> None:
        check_algorithm(self.algorithm)
        check_key(self.key, self.algorithm, private=True)
        if not 0 < self.ttl <= 3600:
            raise ConfigError(f"ttl must be between 0 and 3600 seconds, not {self.ttl:g}", field="ttl")
        for server, audience in self.audiences.items():
            if not audience or audience.startswith(REGISTERED_AUDIENCE_PREFIX):
                raise ConfigError(
                    f"the audience {audience!r} of server {server!r} is not allowed: audiences starting "
                    f"with {REGISTERED_AUDIENCE_PREFIX!r} belong to servers users register; choose another "
                    "(such as the server's name)",
                    field="audiences",
                )

    def audience(self, server: str, *, registered: bool = False) -> str:
        """The audience a call to ``server`` is addressed to (``registered``: a server a user registered)."""
        if registered:
            return registered_audience(server)
        return self.audiences.get(server, server)

    def sign(
        self, identity: RunIdentity, *, server: str, registered: bool = False, now: float | None = None
    ) -> str:
        """A token asserting ``identity`` to ``server``, valid for ``ttl`` seconds from ``now``.

        ``registered`` marks a server a user registered: its audience is ``registered/<server>``.
        """
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience(server, registered=registered),
            "iat": issued,
            "nbf": issued,
            "exp": issued + max(1, int(self.ttl)),
            "jti": uuid.uuid4().hex,
        }
        if identity.user_id is not None:
            claims["sub"] = identity.user_id
        for name in CLAIMS:
            value = getattr(identity, name)
            if value is not None:
                claims[name] = value
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)


# Names that moved; they keep working, with a warning, for one release.
__getattr__ = moved(
    "mcpbridge.signing",
    dict.fromkeys(
        ("IdentityVerifier", "VerifiedIdentity", "verified_identity", "TOKEN_FIELD"), "mcpbridge.server"
    ),
)
