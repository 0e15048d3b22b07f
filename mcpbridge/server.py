"""For MCP server authors: verify the identity the bridge signs into every ``tools/call``.

An `IdentityVerifier` checks the signed token before any tool runs, rejects unsigned,
forged, expired and misaddressed calls with a clear error, and hands the tool the
`VerifiedIdentity`::

    verifier = IdentityVerifier(secret, audience="files")
    server = MCPServer("files", middleware=[verifier.middleware()])

    @server.tool()
    async def whoami() -> str:
        return verified_identity().user_id

The unsigned identity travels in ``_meta`` under ``DEFAULT_META_PREFIX`` keys, the token
under ``<prefix>`` + ``TOKEN_FIELD`` and, over HTTP, in the ``IDENTITY_HEADER`` header.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt
import mcp_types as types
from mcp import MCPError
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext

from mcpbridge.errors import ConfigError, IdentityError, UsageError
from mcpbridge.identity import DEFAULT_META_PREFIX, TOKEN_FIELD, RunIdentity
from mcpbridge.signing import CLAIMS, DEFAULT_ISSUER, IDENTITY_HEADER, check_algorithm, check_key

__all__ = [
    "DEFAULT_META_PREFIX",
    "IDENTITY_HEADER",
    "TOKEN_FIELD",
    "IdentityVerifier",
    "VerifiedIdentity",
    "verified_identity",
]

logger = logging.getLogger("mcpbridge")

_MAX_TOKEN_CHARS: Final = 16_384
"""Longer tokens are refused unparsed (an identity token is well under 2 KiB)."""


def _family(algorithm: str) -> str:
    """The kind of key ``algorithm`` uses: ``hmac``, ``rsa``, ``ec`` or ``okp``."""
    if algorithm.startswith("HS"):
        return "hmac"
    if algorithm.startswith(("RS", "PS")):
        return "rsa"
    if algorithm.startswith("ES"):
        return "ec"
    return "okp"


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
            check_algorithm(algorithm)
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
            prepared = check_key(key, algorithm, private=False)
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
            **{name: _optional_str(claims.get(name)) for name in CLAIMS},
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
