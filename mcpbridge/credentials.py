"""Per-user credentials for MCP servers, looked up for every run.

A credential provider is an async callable ``(user, server) -> Credentials | None``.
Two come with mcpbridge: `EnvCredentials` reads deployment secrets from the
environment (one per server, or one per user and server), `StoreCredentials`
reads each user's own tokens from the Agent Server's store. Credentials go into
the run's server configuration only, in fields that never reach graph state,
tool metadata, logs, reprs or the stream.

Credentials a user wrote (``source="user"``, as `StoreCredentials` gives) may set
only the names the deployment declared for the server (``user_headers``,
``user_env``), never a name the deployment configured itself, and never a name
refused to users (``Host``, ``Mcp-*``, ``PYTHONPATH``, ``LD_PRELOAD``, ...).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import httpx2

from mcpbridge._access import UserContext
from mcpbridge._templating import TEMPLATE
from mcpbridge._uservalues import bad_value, refused_env, refused_header
from mcpbridge.config import HttpServer, ServerConfig, SseServer, StdioServer
from mcpbridge.errors import ServerRefusedError

__all__ = [
    "CredentialProvider",
    "Credentials",
    "EnvCredentials",
    "StoreCredentials",
    "apply_credentials",
    "user_header_names",
]

CredentialSource: TypeAlias = Literal["deployment", "user"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a server needs to accept a user's calls.

    Attributes:
        headers: HTTP headers to send (override the configured ones, for deployment credentials).
        auth: An ``httpx2.Auth`` (for example the SDK's OAuth provider); it sets ``Authorization``.
        env: Environment variables for a stdio server.
        source: Who wrote the values. ``"deployment"`` (the default: `EnvCredentials`, your own
            providers) may set any name. ``"user"`` (`StoreCredentials`, or a provider returning
            what a user gave) may set only the names the server declares in ``user_headers`` /
            ``user_env``, never one the deployment configured.
        principal: Who the credentials are for, as a stable name that is not secret (an account
            id, the name of the secret): cached tool lists are kept per run user and principal, so
            a refreshed token with the same principal keeps them. ``None``: the source and the
            names the credentials set (enough unless one user holds several identities for one
            server). Never put the token here.
    """

    headers: Mapping[str, str] = field(default_factory=dict[str, str], repr=False)
    auth: httpx2.Auth | None = field(default=None, repr=False)
    env: Mapping[str, str] = field(default_factory=dict[str, str], repr=False)
    source: CredentialSource = "deployment"
    principal: str | None = None

    @classmethod
    def bearer(
        cls, token: str, *, source: CredentialSource = "deployment", principal: str | None = None
    ) -> Credentials:
        """``Authorization: Bearer <token>``."""
        return cls(headers={"Authorization": f"Bearer {token}"}, source=source, principal=principal)

    def describe_principal(self) -> str:
        """The principal, or (without one) the source and the names set; never a value."""
        if self.principal is not None:
            return json.dumps(["principal", self.source, self.principal])
        auth = None if self.auth is None else type(self.auth).__qualname__
        headers = sorted({k.lower() for k in self.headers})
        return json.dumps(["names", self.source, headers, sorted(self.env), auth])


CredentialProvider: TypeAlias = Callable[[UserContext, ServerConfig], Awaitable[Credentials | None]]
"""An async callable giving a user's credentials for a server; ``None`` means none are needed.

It raises `ServerRefusedError` when the user has no usable credentials for a server that needs them.
"""


def user_header_names(server: HttpServer | SseServer) -> tuple[str, ...]:
    """The header names a user's own values may set for ``server``.

    ``server.user_headers`` when given; else ``Authorization``, unless the deployment
    sets it itself (``bearer_token``, ``auth`` or an ``Authorization`` header).
    """
    if server.user_headers is not None:
        return server.user_headers
    configured = server.bearer_token is not None or server.auth is not None
    if configured or any(k.lower() == "authorization" for k in server.headers):
        return ()
    return ("Authorization",)


def apply_credentials(server: ServerConfig, credentials: Credentials | None) -> ServerConfig:
    """A copy of ``server`` that uses ``credentials``.

    Raises:
        ServerRefusedError: User credentials set a name the server does not declare for users,
            one the deployment configured, one refused to users, or a value with a line break or NUL.
    """
    if credentials is None:
        return server
    if credentials.source == "user":
        _check_user(server, credentials)
    applied = _with_credentials(server, credentials)
    if applied is server:  # nothing applied: the credentials are no one's on this server
        return server
    return applied.model_copy(update={"credential_principal": credentials.describe_principal()})


def credential_principal(server: ServerConfig) -> str:
    """Who the credentials of ``server`` are for (`Credentials.principal`); never a secret.

    ``"deployment"`` for a server whose credentials (if any) are in its configuration.
    """
    given = server.credential_principal
    return "deployment" if given is None else given


def written_by_user(server: ServerConfig) -> bool:
    """Whether the credentials applied to ``server`` are a user's own (``source="user"``)."""
    given = server.credential_principal
    if given is None:
        return False
    try:
        described: Any = json.loads(given)
    except ValueError:  # set by hand in the configuration: the deployment's
        return False
    return isinstance(described, list) and described[1:2] == ["user"]


def _with_credentials(server: ServerConfig, credentials: Credentials) -> ServerConfig:
    match server:
        case HttpServer() | SseServer():
            given = {k.lower() for k in credentials.headers}
            headers = {k: v for k, v in server.headers.items() if k.lower() not in given}
            headers.update(credentials.headers)
            update: dict[str, Any] = {"headers": headers}
            if credentials.auth is not None or "authorization" in given:
                update["bearer_token"] = None
            if credentials.auth is not None:
                update["auth"] = credentials.auth
            return server.model_copy(update=update)
        case StdioServer():
            if not credentials.env:
                return server
            return server.model_copy(update={"env": {**(server.env or {}), **credentials.env}})
        case _:
            return server


def _check_user(server: ServerConfig, credentials: Credentials) -> None:
    """Refuse user-written credentials that set anything but the names ``server`` declares for users.

    Raises:
        ServerRefusedError: Naming the server, the field (``headers.Host``, ``env.PYTHONPATH``) and the rule.
    """
    match server:
        case HttpServer() | SseServer():
            declared = {n.lower() for n in user_header_names(server)}
            configured = {k.lower() for k in server.headers}
            if server.bearer_token is not None or server.auth is not None:
                configured.add("authorization")
            names = list(credentials.headers)
            if credentials.auth is not None:
                names.append("Authorization")
            for name in names:
                value = credentials.headers.get(name, "")
                _check_user_name(
                    server.name,
                    f"headers.{name}",
                    rule=refused_header(name),
                    configured=name.lower() in configured,
                    declared=name.lower() in declared,
                    setting="user_headers",
                    bad=bad_value(value),
                )
            for name in credentials.env:
                _refuse(
                    server.name,
                    f"env.{name}",
                    "an HTTP server takes no environment variables; store `headers`",
                )
        case StdioServer():
            declared_env = set(server.user_env)
            configured_env = {k.upper() for k in server.env or {}}
            for name, value in credentials.env.items():
                _check_user_name(
                    server.name,
                    f"env.{name}",
                    rule=refused_env(name),
                    configured=name.upper() in configured_env,
                    declared=name in declared_env,
                    setting="user_env",
                    bad=bad_value(value),
                )
            for name in credentials.headers:
                _refuse(server.name, f"headers.{name}", "a stdio server takes no headers; store `env`")
            if credentials.auth is not None:
                _refuse(server.name, "auth", "a stdio server takes no HTTP auth")
        case _:
            if credentials.headers or credentials.env or credentials.auth is not None:
                _refuse(server.name, "credentials", "an in-process server takes no user credentials")


def _check_user_name(
    server: str, field: str, *, rule: str | None, configured: bool, declared: bool, setting: str, bad: bool
) -> None:
    name = field.split(".", 1)[1]
    if rule is not None:
        _refuse(server, field, f"{name!r} is never set from a user's values ({rule})")
    if configured:
        _refuse(
            server,
            field,
            f"{name!r} is set by the deployment, and a user's value never replaces it; remove it from the "
            "stored item",
        )
    if not declared:
        _refuse(
            server,
            field,
            f"{name!r} is not a name the deployment lets users set; remove it from the stored item, "
            f"or (deployment) add it to the server's `{setting}`",
        )
    if bad:
        _refuse(server, field, "the value holds a line break or NUL; store it without")


def _refuse(server: str, field: str, rule: str) -> None:
    raise ServerRefusedError(f"MCP server {server!r}, field {field!r}: {rule}", server=server, field=field)


class EnvCredentials:
    """Deployment secrets from environment variables, one per server (or per user and server).

    Variable names may hold ``{user.identity}`` (or any user field), so each user gets
    their own secret. The field is written so that distinct values never give one
    name: lower-case letters are upper-cased, digits kept, and every other byte of
    its UTF-8 text (upper-case letters and ``_`` included) becomes ``_XX`` in hex::

        alice                 -> ALICE
        bob@example.com       -> BOB_40EXAMPLE_2ECOM
        john_doe              -> JOHN_5FDOE
        John.Doe              -> _4AOHN_2E_44OE

    (Put a separator between two fields in one name.) HTTP servers get the secret as
    a header (``Authorization: Bearer <secret>`` by default); stdio servers as an
    environment variable of the same name. These credentials are the deployment's
    own: they are not limited to the names declared for users.

    Args:
        variables: Server name -> environment variable name.
        header: The header to send the secret in.
        scheme: Put before the secret in the header (``None`` for the bare secret).
        required: Refuse the server for a user whose variable is unset (else connect without).
        environ: Where to read variables; defaults to ``os.environ``.

    Example:
        ```python
        EnvCredentials({"github": "GITHUB_TOKEN_{user.identity}", "search": "SEARCH_API_KEY"})
        ```
    """

    def __init__(
        self,
        variables: Mapping[str, str],
        *,
        header: str = "Authorization",
        scheme: str | None = "Bearer",
        required: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.variables = dict(variables)
        self.header = header
        self.scheme = scheme
        self.required = required
        self._environ = environ

    async def __call__(self, user: UserContext, server: ServerConfig) -> Credentials | None:
        """The secret of ``server`` for ``user``, if one is configured for it."""
        template = self.variables.get(server.name)
        if template is None:
            return None
        name = _variable_name(template, user, server=server.name)
        environ = os.environ if self._environ is None else self._environ
        secret = environ.get(name)
        if not secret:
            if not self.required:
                return None
            raise ServerRefusedError(
                f"MCP server {server.name!r}: no credentials for "
                f"{user.describe()}; set the environment variable {name} in the deployment",
                server=server.name,
            )
        if isinstance(server, StdioServer):
            return Credentials(env={name: secret}, principal=f"env:{name}")
        value = f"{self.scheme} {secret}" if self.scheme else secret
        return Credentials(headers={self.header: value}, principal=f"env:{name}")


class StoreCredentials:
    """Each user's own credentials, kept in the Agent Server's store under their namespace.

    A user (or an onboarding flow) puts an item at namespace ``(<identity>, *namespace)``,
    key ``<server name>``, whose value is one of::

        {"bearer_token": "..."}                 sent as Authorization: Bearer ...
        {"headers": {"X-Api-Key": "..."}}       sent as is (HTTP servers)
        {"env": {"API_TOKEN": "..."}}           set in the environment (stdio servers)

    The lookup happens for every run, so a changed or revoked token takes effect at once.
    The values are the user's own (``source="user"``): they may set only the names the
    server declares for users (``user_headers``: ``Authorization`` by default for HTTP
    servers; ``user_env``: nothing by default for stdio servers), never replace what the
    deployment configured, and never set a refused name (``Host``, ``PYTHONPATH``, ...).

    Args:
        namespace: Labels after the user's identity.
        servers: Only these servers use stored credentials (``None``: every server).
        required: Refuse a server for a user who stored no credentials for it (else connect without).

    Example:
        ```python
        # client side, as the user
        await client.store.put_item(["mcp_credentials"], "github", {"bearer_token": token})
        ```
    """

    def __init__(
        self,
        namespace: Sequence[str] = ("mcp_credentials",),
        *,
        servers: Sequence[str] | None = None,
        required: bool = True,
    ) -> None:
        self.namespace = tuple(namespace)
        self.servers = None if servers is None else frozenset(servers)
        self.required = required

    def namespace_for(self, user: UserContext) -> tuple[str, ...]:
        """Where ``user``'s credentials live."""
        return (user.identity or "", *self.namespace)

    async def __call__(self, user: UserContext, server: ServerConfig) -> Credentials | None:
        """The credentials ``user`` stored for ``server``."""
        if self.servers is not None and server.name not in self.servers:
            return None
        if not user.authenticated or user.store is None:
            return self._missing(user, server, "the run has no authenticated user or no store")
        try:
            item = await user.store.aget(self.namespace_for(user), server.name)
        except Exception as exc:  # a store that refuses the namespace or is down: refuse, with the reason
            raise ServerRefusedError(
                f"MCP server {server.name!r}: the credentials of {user.describe()} could not be read "
                f"from the store ({type(exc).__name__}: {exc})",
                server=server.name,
            ) from None
        value: Any = None if item is None else item.value
        if not isinstance(value, Mapping) or not value:
            return self._missing(user, server, None)
        credentials = self._parse(value, server=server.name)  # pyright: ignore[reportUnknownArgumentType]
        where = json.dumps(["store", *self.namespace_for(user), server.name])
        return dataclasses.replace(credentials, principal=where)

    def _missing(self, user: UserContext, server: ServerConfig, why: str | None) -> None:
        if not self.required:
            return None
        where = f"namespace {list(self.namespace_for(user))!r}, key {server.name!r}"
        raise ServerRefusedError(
            f"MCP server {server.name!r}: no credentials stored for {user.describe()}"
            + (f" ({why})" if why else "")
            + f"; put {{'bearer_token': ...}} in the store at {where}",
            server=server.name,
        )

    @staticmethod
    def _parse(value: Mapping[str, Any], *, server: str) -> Credentials:
        headers: dict[str, str] = {}
        env: dict[str, str] = {}
        token = value.get("bearer_token")
        if isinstance(token, str) and token:
            headers["Authorization"] = f"Bearer {token}"
        raw_headers = value.get("headers")
        if isinstance(raw_headers, Mapping):
            headers.update({str(k): str(v) for k, v in raw_headers.items()})  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
        raw_env = value.get("env")
        if isinstance(raw_env, Mapping):
            env.update({str(k): str(v) for k, v in raw_env.items()})  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
        if not headers and not env:
            raise ServerRefusedError(
                f"MCP server {server!r}: the stored credentials hold none of 'bearer_token', 'headers' "
                "or 'env'; store one of them",
                server=server,
            )
        for kind, values in (("headers", headers), ("env", env)):
            for name, text in values.items():
                if bad_value(name) or bad_value(text):
                    raise ServerRefusedError(
                        f"MCP server {server!r}, field {kind + '.' + name!r}: a stored {kind} name or value "
                        "holds a line break or NUL; store it without",
                        server=server,
                        field=f"{kind}.{name}",
                    )
        return Credentials(headers=headers, env=env, source="user")


def _variable_name(template: str, user: UserContext, *, server: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        value = user.value(match.group(1))
        if value is None:
            raise ServerRefusedError(
                f"MCP server {server!r}: the credentials variable {template!r} needs the user's "
                f"{match.group(1)!r}, which {user.describe()} does not have",
                server=server,
            )
        if not value:
            raise ServerRefusedError(
                f"MCP server {server!r}: the credentials variable {template!r} needs the user's "
                f"{match.group(1)!r}, which is empty for {user.describe()}",
                server=server,
            )
        return encode_variable_part(value)

    return TEMPLATE.sub(substitute, template)


def encode_variable_part(value: str) -> str:
    """``value`` as part of an environment variable name, by an encoding that cannot collide.

    Lower-case ASCII letters are upper-cased and digits kept; every other byte of the
    UTF-8 text (upper-case letters and ``_`` included) is written ``_XX`` in hex.
    """
    out: list[str] = []
    for byte in value.encode("utf-8"):
        char = chr(byte)
        if "a" <= char <= "z":
            out.append(char.upper())
        elif "0" <= char <= "9":
            out.append(char)
        else:
            out.append(f"_{byte:02X}")
    return "".join(out)
