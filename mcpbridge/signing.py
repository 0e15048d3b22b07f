"""Signed identity: a short-lived JWT that proves to an MCP server who a tool call serves.

The plain ``_meta`` identity keys can be written by anyone who reaches the
server. With an `IdentitySigner` on the bridge's `IdentityMeta`, every
``tools/call`` also carries a JWT naming the user (``sub``), thread, run and the
target server (``aud``), signed with a shared secret (HS256) or a private key
(RS256, ES256, EdDSA, ...). It travels in ``_meta`` under
``<prefix>identity_token`` and, over HTTP, in the ``Mcpbridge-Identity`` header.

On the server, an `IdentityVerifier` checks it before any tool runs, rejects
unsigned, forged, expired and misaddressed calls with a clear error, and hands
the tool the `VerifiedIdentity`::

    verifier = IdentityVerifier(secret, audience="files")
    server = MCPServer("files", middleware=[verifier.middleware()])

    @server.tool()
    async def whoami() -> str:
        return verified_identity().user_id

A server a user registered (`mcpbridge.scoping.RegisteredServers`) gets the audience
``registered/<name>``: a user can never obtain a token addressed to one of the
deployment's servers by registering a server under its name or audience.
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
import mcp_types as types
from jwt.algorithms import get_default_algorithms
from mcp import MCPError
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext

from mcpbridge.errors import ConfigError, IdentityError, UsageError
from mcpbridge.identity import DEFAULT_META_PREFIX, TOKEN_FIELD, RunIdentity

__all__ = [
    "IDENTITY_HEADER",
    "REGISTERED_AUDIENCE_PREFIX",
    "TOKEN_FIELD",
    "IdentitySigner",
    "IdentityVerifier",
    "VerifiedIdentity",
    "registered_audience",
    "verified_identity",
]

logger = logging.getLogger("mcpbridge")

IDENTITY_HEADER: Final = "Mcpbridge-Identity"
"""The HTTP header that carries the identity token on streamable HTTP."""

DEFAULT_ISSUER: Final = "mcpbridge"
REGISTERED_AUDIENCE_PREFIX: Final = "registered/"
"""The audience namespace of user-registered servers; no deployment server name contains a ``/``."""
_CLAIMS: Final = ("thread_id", "run_id", "assistant_id", "graph_id")
_MAX_TOKEN_CHARS: Final = 16_384
"""Longer tokens are refused unparsed (an identity token is well under 2 KiB)."""
_MIN_DISTINCT_BYTES: Final = 8
_GENERATE: Final = "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"


def registered_audience(server: str) -> str:
    """The audience of calls to the user-registered server ``server`` (``registered/<server>``)."""
    return f"{REGISTERED_AUDIENCE_PREFIX}{server}"


def _family(algorithm: str) -> str:
    """The kind of key ``algorithm`` uses: ``hmac``, ``rsa``, ``ec`` or ``okp``."""
    if algorithm.startswith("HS"):
        return "hmac"
    if algorithm.startswith(("RS", "PS")):
        return "rsa"
    if algorithm.startswith("ES"):
        return "ec"
    return "okp"


def _check_algorithm(algorithm: str) -> None:
    known = sorted(a for a in get_default_algorithms() if a != "none")
    if algorithm not in known:
        raise ConfigError(
            f"signing algorithm {algorithm!r} is not supported; use one of {', '.join(known)}",
            field="algorithm",
        )


def _check_key(key: Any, algorithm: str, *, private: bool) -> Any:
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
        _check_algorithm(self.algorithm)
        _check_key(self.key, self.algorithm, private=True)
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
        for name in _CLAIMS:
            value = getattr(identity, name)
            if value is not None:
                claims[name] = value
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)


@dataclass(frozen=True, slots=True)
class VerifiedIdentity(RunIdentity):
    """A `RunIdentity` whose signature, audience, issuer and lifetime were checked.

    Attributes:
        audience: The audience the token was addressed to (this server).
        issuer: Who signed it.
        expires_at: When it expires (Unix time).
        token_id: The token's unique ``jti``.
    """

    audience: str = ""
    issuer: str = ""
    expires_at: float = 0.0
    token_id: str | None = None


_VERIFIED: contextvars.ContextVar[VerifiedIdentity | None] = contextvars.ContextVar(
    "mcpbridge_verified_identity", default=None
)


def verified_identity() -> VerifiedIdentity:
    """The verified identity of the ``tools/call`` being handled (call it inside a tool).

    Raises:
        UsageError: No `IdentityVerifier` middleware checked this request.
    """
    identity = _VERIFIED.get()
    if identity is None:
        raise UsageError(
            "no verified identity for this request; add `IdentityVerifier(...).middleware()` "
            "to the server's middleware, and call verified_identity() inside a tool"
        )
    return identity


class IdentityVerifier:
    """Checks the signed identity of every ``tools/call`` an MCP server receives.

    Args:
        key: The HMAC secret shared with the bridge, or the public key of its signer.
        audience: This server's audience (the name the bridge's config gives it, by default).
        algorithms: Algorithms to accept; never ``none``, and all of one key type (HMAC, RSA, EC or
            EdDSA: the one key is used for each).
        issuer: The ``iss`` to require.
        leeway: Seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
        max_lifetime: The longest lifetime (``exp - iat``) a token may claim, in seconds; the
            signer's ``ttl`` is at most 3600.
        prefix: The identity ``_meta`` prefix the bridge uses.
        header: The HTTP header to read the token from when ``_meta`` has none.
        methods: The request methods to check.

    Example:
        ```python
        verifier = IdentityVerifier(os.environ["MCP_IDENTITY_SECRET"], audience="files")
        server = MCPServer("files", middleware=[verifier.middleware()])
        ```
    """

    def __init__(
        self,
        key: Any,
        *,
        audience: str,
        algorithms: Sequence[str] = ("HS256",),
        issuer: str = DEFAULT_ISSUER,
        leeway: float = 5.0,
        max_lifetime: float = 3600.0,
        prefix: str = DEFAULT_META_PREFIX,
        header: str | None = IDENTITY_HEADER,
        methods: Sequence[str] = ("tools/call",),
    ) -> None:
        if not algorithms:
            raise ConfigError("give at least one algorithm to accept", field="algorithms")
        for algorithm in algorithms:
            _check_algorithm(algorithm)
        families = sorted({_family(a) for a in algorithms})
        if len(families) > 1:
            raise ConfigError(
                f"the algorithms {', '.join(algorithms)} need different kinds of key ({', '.join(families)}) "
                "but one key is given; accept the algorithms of one key type only, and run one verifier "
                "per key if you must accept several",
                field="algorithms",
            )
        prepared = key
        for algorithm in algorithms:
            prepared = _check_key(key, algorithm, private=False)
        if not audience:
            raise ConfigError("the audience must be this server's name, as the bridge addresses it")
        if not 0 < max_lifetime <= 86400:
            raise ConfigError(
                f"max_lifetime must be between 0 and 86400 seconds, not {max_lifetime:g}",
                field="max_lifetime",
            )
        self._key = prepared
        self.audience = audience
        self.algorithms = tuple(algorithms)
        self.issuer = issuer
        self.leeway = leeway
        self.max_lifetime = max_lifetime
        self.meta_key = f"{prefix}{TOKEN_FIELD}"
        self.header = header
        self.methods = frozenset(methods)

    def verify(self, token: str | None) -> VerifiedIdentity:
        """Check one token and return the identity it asserts.

        Raises:
            IdentityError: The token is missing, malformed, forged, expired, not yet
                valid, valid for longer than ``max_lifetime``, addressed to another server,
                or from another issuer. No other error escapes, whatever the token holds.
        """
        if not token:
            raise IdentityError(
                "the call carries no signed identity; the bridge must sign calls to this server "
                "(IdentityMeta(signer=IdentitySigner(...)))",
                reason="missing",
            )
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise IdentityError(
                f"the signed identity is not a token of at most {_MAX_TOKEN_CHARS:,} characters",
                reason="malformed",
            )
        claims = self._decode(token)
        try:
            lifetime = float(claims["exp"]) - float(claims["iat"])
        except (TypeError, ValueError, OverflowError):  # pyjwt checked both; stay clean regardless
            raise IdentityError(
                "the signed identity's exp or iat is not a number", reason="malformed"
            ) from None
        if lifetime > self.max_lifetime + self.leeway:
            raise IdentityError(
                f"the signed identity claims to be valid for {lifetime:,.0f} seconds, longer than this "
                f"server's max_lifetime of {self.max_lifetime:g}; the bridge's tokens live for its ttl",
                reason="too_long_lived",
            )
        return VerifiedIdentity(
            user_id=_optional_str(claims.get("sub")),
            **{name: _optional_str(claims.get(name)) for name in _CLAIMS},
            audience=self.audience,
            issuer=str(claims["iss"]),
            expires_at=float(claims["exp"]),
            token_id=_optional_str(claims.get("jti")),
        )

    def _decode(self, token: str) -> dict[str, Any]:
        """The token's claims, its signature and registered claims checked, or an `IdentityError`."""
        try:
            return jwt.decode(
                token,
                self._key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "aud", "iss", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise IdentityError(
                "the signed identity has expired; the bridge signs each call, so check the clocks "
                "of both machines and the signer's ttl",
                reason="expired",
            ) from None
        except jwt.ImmatureSignatureError:
            raise IdentityError(
                "the signed identity is not valid yet; check the clocks of both machines",
                reason="not_yet_valid",
            ) from None
        except jwt.InvalidAudienceError:
            raise IdentityError(
                f"the signed identity is addressed to another server, not {self.audience!r}; "
                "a token for one server cannot be replayed to another",
                reason="wrong_audience",
            ) from None
        except jwt.InvalidIssuerError:
            raise IdentityError(
                f"the signed identity was not issued by {self.issuer!r}", reason="wrong_issuer"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise IdentityError(
                f"the signed identity lacks the {exc.claim!r} claim", reason="missing_claim"
            ) from None
        except jwt.InvalidSignatureError:
            raise IdentityError(
                "the signed identity's signature does not match; it was forged or signed with another key",
                reason="bad_signature",
            ) from None
        except jwt.InvalidAlgorithmError:
            raise IdentityError(
                f"the signed identity uses an algorithm this server does not accept "
                f"(accepted: {', '.join(self.algorithms)})",
                reason="bad_signature",
            ) from None
        except jwt.InvalidTokenError as exc:
            raise IdentityError(
                f"the signed identity is not a valid token ({exc})", reason="malformed"
            ) from None
        except Exception as exc:  # any other failure on hostile input is a rejection, never a crash
            logger.debug("identity token rejected by %s", type(exc).__name__, exc_info=True)
            raise IdentityError(
                "the signed identity could not be checked with this server's key; it was forged or "
                "signed with another kind of key",
                reason="bad_signature",
            ) from None

    def token_of(self, ctx: ServerRequestContext[Any, Any]) -> str | None:
        """The token a request carries: in ``_meta``, else in the HTTP header."""
        meta: Any = ctx.meta
        if meta is None and ctx.params is not None:
            meta = ctx.params.get("_meta")
        token: Any = None
        if isinstance(meta, Mapping):
            token = meta.get(self.meta_key)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        elif meta is not None:
            token = getattr(meta, "model_extra", {}).get(self.meta_key)
        if token is None and self.header is not None and ctx.request is not None:
            headers: Any = getattr(ctx.request, "headers", None)
            if headers is not None:
                token = headers.get(self.header)
        return token if isinstance(token, str) else None

    def middleware(self) -> ServerMiddleware[Any]:
        """Server middleware that rejects unverified calls and exposes `verified_identity` to tools."""
        verifier = self

        async def verify_identity(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
            if ctx.method not in verifier.methods:
                return await call_next(ctx)
            try:
                identity = verifier.verify(verifier.token_of(ctx))
            except IdentityError as exc:
                raise MCPError(
                    types.INVALID_REQUEST,
                    f"identity rejected: {exc}",
                    data={"reason": exc.reason},
                ) from None
            reset = _VERIFIED.set(identity)
            try:
                return await call_next(ctx)
            finally:
                _VERIFIED.reset(reset)

        return verify_identity


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)
