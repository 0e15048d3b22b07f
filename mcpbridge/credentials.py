"""Per-user credentials for MCP servers, looked up for every run.

A credential provider is an async callable ``(user, server) -> Credentials | None``.
Two come with mcpbridge: `EnvCredentials` reads deployment secrets from the
environment (one per server, or one per user and server), `StoreCredentials`
reads each user's own tokens from the Agent Server's store. Credentials go into
the run's server configuration only, in fields that never reach graph state,
tool metadata, logs, reprs or the stream.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import httpx2

from mcpbridge.config import HttpServer, ServerConfig, SseServer, StdioServer
from mcpbridge.errors import ServerRefusedError
from mcpbridge.users import TEMPLATE, UserContext

__all__ = [
    "CredentialProvider",
    "Credentials",
    "EnvCredentials",
    "StoreCredentials",
    "apply_credentials",
]


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a server needs to accept a user's calls.

    Attributes:
        headers: HTTP headers to send (override the configured ones).
        auth: An ``httpx2.Auth`` (for example the SDK's OAuth provider).
        env: Environment variables for a stdio server.
    """

    headers: Mapping[str, str] = field(default_factory=dict[str, str], repr=False)
    auth: httpx2.Auth | None = field(default=None, repr=False)
    env: Mapping[str, str] = field(default_factory=dict[str, str], repr=False)

    @classmethod
    def bearer(cls, token: str) -> Credentials:
        """``Authorization: Bearer <token>``."""
        return cls(headers={"Authorization": f"Bearer {token}"})


CredentialProvider: TypeAlias = Callable[[UserContext, ServerConfig], Awaitable[Credentials | None]]
"""An async callable giving a user's credentials for a server; ``None`` means none are needed.

It raises `ServerRefusedError` when the user has no usable credentials for a server that needs them.
"""


def apply_credentials(server: ServerConfig, credentials: Credentials | None) -> ServerConfig:
    """A copy of ``server`` that uses ``credentials``."""
    if credentials is None:
        return server
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


class EnvCredentials:
    """Deployment secrets from environment variables, one per server (or per user and server).

    Variable names may hold ``{user.identity}`` (or any user field, upper-cased and
    made a valid name), so each user gets their own secret. HTTP servers get it as
    a header (``Authorization: Bearer <secret>`` by default); stdio servers as an
    environment variable of the same name.

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
            return Credentials(env={name: secret})
        value = f"{self.scheme} {secret}" if self.scheme else secret
        return Credentials(headers={self.header: value})


class StoreCredentials:
    """Each user's own credentials, kept in the Agent Server's store under their namespace.

    A user (or an onboarding flow) puts an item at namespace ``(<identity>, *namespace)``,
    key ``<server name>``, whose value is one of::

        {"bearer_token": "..."}                 sent as Authorization: Bearer ...
        {"headers": {"X-Api-Key": "..."}}       sent as is (HTTP servers)
        {"env": {"API_TOKEN": "..."}}           set in the environment (stdio servers)

    The lookup happens for every run, so a changed or revoked token takes effect at once.

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
        return self._parse(value, server=server.name)  # pyright: ignore[reportUnknownArgumentType]

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
        if any("\n" in v or "\r" in v for v in headers.values()):
            raise ServerRefusedError(
                f"MCP server {server!r}: a stored header value holds a line break; store it without",
                server=server,
            )
        return Credentials(headers=headers, env=env)


def _variable_name(template: str, user: UserContext, *, server: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        value = user.value(match.group(1))
        if value is None:
            raise ServerRefusedError(
                f"MCP server {server!r}: the credentials variable {template!r} needs the user's "
                f"{match.group(1)!r}, which {user.describe()} does not have",
                server=server,
            )
        return re.sub(r"[^A-Za-z0-9_]", "_", value).upper()

    return TEMPLATE.sub(substitute, template)
