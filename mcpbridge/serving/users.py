"""Who calls a served agent: bearer tokens checked by a pluggable verifier.

A `UserVerifier` maps a bearer token to a user (a mapping or an object with
``identity`` and ``permissions``) or ``None``. Over HTTP every request must carry
a token the verifier accepts, else it is answered 401 and nothing runs; the user
becomes ``ServerRuntime.user`` for the graph factory and the run's identity
(``langgraph_auth_user``) for the MCP servers it calls.
"""

from __future__ import annotations

import logging
from collections.abc import ItemsView, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from langgraph_sdk.auth.types import BaseUser
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken

from mcpbridge.errors import ConfigError

__all__ = [
    "ServedUser",
    "User",
    "UserVerifier",
    "VerifierAdapter",
    "access_token",
    "as_user",
    "user_of_scope",
]

logger = logging.getLogger("mcpbridge")

_USER_CLAIM = "dev.mcpbridge/user"


class User(Protocol):
    """A verified user, as factories get it (``ServerRuntime.user``): `ServedUser` or any ``BaseUser``."""

    @property
    def identity(self) -> str:
        """The unique id of the user."""
        ...

    @property
    def permissions(self) -> Sequence[str]:
        """What the user may do."""
        ...


class UserVerifier(Protocol):
    """Checks a bearer token; returns its user, or ``None`` to refuse it."""

    async def __call__(self, token: str, /) -> Mapping[str, Any] | User | None:
        """The token's user (``{"identity": ..., "permissions": [...]}`` or a `BaseUser`), or ``None``."""
        ...


@dataclass(frozen=True, slots=True)
class ServedUser:
    """An authenticated caller, as graph factories see it in ``runtime.user``.

    It follows the ``langgraph_sdk`` ``BaseUser`` protocol: attributes, and item
    access for its fields and any extra ones the verifier returned.

    Attributes:
        identity: The unique id of the user.
        permissions: What the user may do (e.g. ``("mcp:remote",)``).
        display_name: A readable name (the identity when not given).
        is_authenticated: Always ``True`` for a verified token.
        extra: Other fields the verifier returned.

    Example:
        ```python
        ServedUser("alice", permissions=("mcp:remote",))
        ```
    """

    identity: str
    permissions: tuple[str, ...] = ()
    display_name: str = ""
    is_authenticated: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict[str, Any])

    def __post_init__(self) -> None:
        if not self.display_name:
            object.__setattr__(self, "display_name", self.identity)

    def _fields(self) -> dict[str, Any]:
        return {
            **self.extra,
            "identity": self.identity,
            "permissions": list(self.permissions),
            "display_name": self.display_name,
            "is_authenticated": self.is_authenticated,
        }

    def __getitem__(self, key: str) -> Any:
        return self._fields()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._fields()

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def get(self, key: str, default: Any = None) -> Any:
        """A field, or ``default``."""
        return self._fields().get(key, default)

    def items(self) -> ItemsView[str, Any]:
        """Every field, the extra ones included."""
        return self._fields().items()


def as_user(value: Any) -> User:
    """Make a verifier's answer a `BaseUser`: a mapping becomes a `ServedUser`; a user object is kept.

    Raises:
        ConfigError: The answer has no non-empty string ``identity``.
    """
    if isinstance(value, Mapping):
        data = dict(cast(Mapping[str, Any], value))
        identity = data.pop("identity", None)
        if not isinstance(identity, str) or not identity:
            raise ConfigError("the token verifier returned a user without a string 'identity'", field="auth")
        permissions: Any = data.pop("permissions", None) or ()
        display_name = data.pop("display_name", None)
        data.pop("is_authenticated", None)
        return ServedUser(
            identity,
            tuple(str(p) for p in cast(Sequence[Any], permissions)),
            display_name if isinstance(display_name, str) else "",
            extra=data,
        )
    identity = getattr(value, "identity", None)
    if not isinstance(identity, str) or not identity:
        raise ConfigError(
            f"the token verifier returned a {type(value).__name__}; return a mapping with 'identity' "
            "(and 'permissions'), a user object with an 'identity', or None to refuse the token",
            field="auth",
        )
    if isinstance(value, BaseUser):
        return cast(User, value)
    permissions = getattr(value, "permissions", None) or ()
    return ServedUser(identity, tuple(str(p) for p in permissions))


class VerifierAdapter:
    """A `UserVerifier` as the MCP SDK's ``TokenVerifier``: the user travels in the access token."""

    def __init__(self, verifier: UserVerifier) -> None:
        self._verifier = verifier

    async def verify_token(self, token: str) -> AccessToken | None:
        """Ask the verifier; ``None`` refuses the request with 401."""
        answer = await self._verifier(token)
        if answer is None:
            return None
        user = as_user(answer)
        return access_token(token, user, scopes=[str(p) for p in user.permissions])


def access_token(
    token: str,
    user: User,
    *,
    scopes: Sequence[str],
    subject: str | None = None,
    issuer: str | None = None,
    resource: str | None = None,
    expires_at: int | None = None,
) -> AccessToken:
    """The SDK's ``AccessToken`` for a checked token, carrying ``user`` for `user_of_scope`.

    Its client id (the user's identity), subject and issuer bind HTTP sessions to the user:
    another token of the same user may continue a session, another user's may not.
    """
    claims: dict[str, Any] = {_USER_CLAIM: user}
    if issuer is not None:
        claims["iss"] = issuer
    return AccessToken(
        token=token,
        client_id=user.identity,
        subject=subject if subject is not None else user.identity,
        scopes=list(scopes),
        resource=resource,
        expires_at=expires_at,
        claims=claims,
    )


def user_of_scope(scope: Mapping[str, Any] | None) -> User | None:
    """The user an HTTP request was authenticated as, if any."""
    if scope is None:
        return None
    authenticated = scope.get("user")
    if not isinstance(authenticated, AuthenticatedUser):
        return None
    claims = authenticated.access_token.claims or {}
    user = claims.get(_USER_CLAIM)
    return cast(User, user) if user is not None else None
