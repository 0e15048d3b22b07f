"""User-scoped servers: which servers, credentials and tools each run gets, from its user.

`UserServers` is what a factory takes as ``servers`` when one deployment serves
many users. For every run it reads the authenticated user from the
``ServerRuntime`` and

1. keeps the entries whose rules the user passes (`Scoped`),
2. fills ``{user.<field>}`` templates in their URLs, headers, arguments and environment,
3. adds the user's credentials (a `CredentialProvider`),
4. adds the servers the user registered in the store (`RegisteredServers`), checked
   against a `UrlPolicy`,
5. and picks the user's `ToolFilter`.

Everything is per run and per user: no configuration, credential or session is
shared between users. Entries refused on the way (missing credentials, a URL
the policy refuses, a template the user cannot fill) are reported with their
reason, never dropped silently: in ``Bridge.failures``, in the ``custom``
stream's ``mcp_servers_skipped`` event, and in the log; a refused required
server fails the run with `ConnectError`.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import anyio
from langgraph.store.base import BaseStore, Item
from langgraph_sdk.runtime import ServerRuntime

from mcpbridge._access import Rule, ToolFilter, UserContext, has_any_permission, has_permission, user_in
from mcpbridge._templating import render_server
from mcpbridge._uservalues import bad_value, refused_header
from mcpbridge.config import LogLevel, ServerConfig, validate_server
from mcpbridge.credentials import CredentialProvider, apply_credentials
from mcpbridge.errors import ConfigError, OAuthError, ServerFailure, ServerRefusedError
from mcpbridge.urlpolicy import UrlPolicy

__all__ = [
    "RegisteredServers",
    "Rule",
    "Scoped",
    "Selection",
    "ToolFilter",
    "UserContext",
    "UserServers",
    "has_any_permission",
    "has_permission",
    "user_in",
]

logger = logging.getLogger("mcpbridge")

ToolsSource: TypeAlias = (
    ToolFilter | Callable[[UserContext], ToolFilter | None | Awaitable[ToolFilter | None]] | None
)
"""A `ToolFilter` for every user, or a function giving each user theirs."""

_PAGE: Final = 100
_MAX_PAGES: Final = 100
_REGISTERED_FIELDS: Final = frozenset(
    {"url", "transport", "type", "headers", "bearer_token", "include_tools", "exclude_tools", "prefix"}
)


@dataclass(frozen=True, slots=True)
class Scoped:
    """A server entry that applies only to some users.

    Attributes:
        server: The server; ``{user.<field>}`` templates in it are filled per run.
        permissions: The user must hold all of these.
        when: A further rule on the user.
        credentials: The provider for this entry (instead of the `UserServers` default).

    Example:
        ```python
        Scoped(
            HttpServer(name="github", url="https://mcp.example.com/{user.org}/github"),
            permissions=["mcp:github"],
            credentials=StoreCredentials(),
        )
        ```
    """

    server: ServerConfig
    permissions: Sequence[str] = ()
    when: Rule | None = None
    credentials: CredentialProvider | None = None

    def applies(self, user: UserContext) -> bool:
        """Whether ``user`` gets this entry."""
        if self.permissions and not has_permission(*self.permissions)(user):
            return False
        return self.when is None or self.when(user)


@dataclass(frozen=True, slots=True)
class Selection:
    """The servers of one run, the entries refused for it, and its tool filter.

    Attributes:
        servers: The servers to connect, with the user's templates and credentials applied.
        refused: Entries refused for this user, with the reason.
        tool_filter: Which tools the user may use.
        registered: Which of the servers the user registered (their tools yield on name clashes).
    """

    servers: tuple[ServerConfig, ...] = ()
    refused: tuple[ServerFailure, ...] = ()
    tool_filter: ToolFilter | None = field(default=None)
    registered: frozenset[str] = frozenset()


class RegisteredServers:
    """Servers users register for themselves, read from the store for each of their runs.

    A user puts an item at namespace ``(<identity>, *namespace)``, key ``<server name>``,
    with the value ``{"url": "https://...", "headers": {...}}`` (optionally ``transport``
    ``"http"``/``"sse"``, ``bearer_token``, ``include_tools``, ``exclude_tools``, ``prefix``).
    Only HTTP servers may be registered; each URL must pass the `UrlPolicy`, and so
    must every address its connections reach (checked as they connect); a registered
    server is always optional and never takes a deployment server's name. Its
    connection failures are shown to the user as one fixed text (the log has the detail).

    Args:
        namespace: Labels after the user's identity.
        policy: The URL policy (https and public addresses only, by default).
        limit: The most servers one user may register; more are refused.
        user_headers: The header names a registered entry may set (``headers``, or ``bearer_token``
            for ``Authorization``); never a name refused to users (``Host``, ``Mcp-*``, ...).
        connect_timeout: Seconds allowed to connect to a registered server.
        call_timeout: Seconds allowed for one of its tool calls.
        max_tools: The most tools a registered server may offer (64: a user's own server
            rarely needs more, and each tool is sent with every model call of the run).
        max_result_chars: The most characters of a result the model gets (50,000: about
            12k tokens, into the checkpoint and every later model call of the thread).
        max_description_chars: The most characters of a tool description (2,000).
        max_progress_per_second: Progress events of one call per second (2: enough to show
            progress, too few for a server to load the run's stream).
        max_log_level: The most severe level its log messages are logged at (``"info"``: a
            user's server can never raise the deployment's warnings or alerts).
        max_response_bytes: The most bytes of one of its HTTP responses (8 MiB, against 64 MiB
            for the deployment's own servers); a larger answer fails its call.
            These bounds are the deployment's: a user's entry cannot set them.

    Example:
        ```python
        # client side, as the user
        await client.store.put_item(["mcp_servers"], "notes", {"url": "https://notes.example.com/mcp"})
        ```
    """

    def __init__(
        self,
        namespace: Sequence[str] = ("mcp_servers",),
        *,
        policy: UrlPolicy | None = None,
        limit: int = 10,
        user_headers: Sequence[str] = ("Authorization",),
        connect_timeout: float = 10.0,
        call_timeout: float = 60.0,
        max_tools: int = 64,
        max_result_chars: int = 50_000,
        max_description_chars: int = 2_000,
        max_progress_per_second: float = 2.0,
        max_log_level: LogLevel = "info",
        max_response_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        if limit < 1:
            raise ConfigError("limit must be at least 1", field="limit")
        for header in user_headers:
            rule = refused_header(header)
            if rule is not None:
                raise ConfigError(
                    f"{header!r} cannot be set by users ({rule}); remove it from `user_headers`",
                    field="user_headers",
                )
        self.user_headers = frozenset(h.lower() for h in user_headers)
        self.namespace = tuple(namespace)
        self.policy = policy or UrlPolicy()
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.bounds: Mapping[str, Any] = {
            "max_tools": max_tools,
            "max_result_chars": max_result_chars,
            "max_description_chars": max_description_chars,
            "max_progress_per_second": max_progress_per_second,
            "max_log_level": max_log_level,
            "max_response_bytes": max_response_bytes,
        }
        """What every registered server may cost; passed into each one, never taken from the entry."""
        # Checked once here, so a bad bound fails the deployment's start, not each user's run.
        validate_server({"name": "check", "transport": "http", "url": "https://example.com", **self.bounds})

    def namespace_for(self, user: UserContext) -> tuple[str, ...]:
        """Where ``user``'s servers live."""
        return (user.identity or "", *self.namespace)

    async def load(
        self, user: UserContext, *, taken: Iterable[str] = ()
    ) -> tuple[list[ServerConfig], list[ServerFailure]]:
        """The servers ``user`` registered, and those refused with the reason."""
        if not user.authenticated or user.store is None:
            return [], []
        namespace = self.namespace_for(user)
        try:
            items = await _search_all(user.store, namespace)
        except Exception as exc:  # a store that refuses the namespace or is down: report, go on without
            reason = f"the store could not be read ({type(exc).__name__}: {exc})"
            return [], [_refusal("registered servers", reason, required=False)]
        items = [item for item in items if tuple(item.namespace) == namespace]
        taken = set(taken)
        accepted: dict[str, ServerConfig] = {}
        refused: list[ServerFailure] = []
        for index, item in enumerate(sorted(items, key=lambda i: i.key)):
            if index >= self.limit:
                refused.append(
                    _refusal(
                        item.key, f"more than {self.limit} registered servers; remove some", required=False
                    )
                )
                continue
            try:
                accepted[item.key] = self._validate(item.key, item.value, taken=taken)
            except (ConfigError, ServerRefusedError) as exc:  # refused here, or invalid as a server
                refused.append(_refusal(item.key, _reason(exc), required=False))

        async def check(name: str, server: ServerConfig) -> None:
            try:
                await self.policy.check(getattr(server, "url", ""), server=name)
            except ServerRefusedError as exc:
                refused.append(_refusal(name, _reason(exc), required=False))
                del accepted[name]

        async with anyio.create_task_group() as group:
            for name, server in list(accepted.items()):
                group.start_soon(check, name, server)
        return list(accepted.values()), refused

    def _validate(self, name: str, value: Any, *, taken: set[str]) -> ServerConfig:
        if name in taken:
            raise ServerRefusedError(
                f"MCP server {name!r}: the name belongs to a server of the deployment; register it under "
                "another key",
                server=name,
            )
        if not isinstance(value, Mapping):
            raise ServerRefusedError(
                f"MCP server {name!r}: the entry must be an object such as {{'url': 'https://...'}}",
                server=name,
            )
        entry: dict[str, Any] = {str(k): v for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
        if "command" in entry:
            raise ServerRefusedError(
                f"MCP server {name!r}: only HTTP servers may be registered (no `command`); give a `url`",
                server=name,
            )
        unknown = sorted(set(entry) - _REGISTERED_FIELDS)
        if unknown:
            raise ServerRefusedError(
                f"MCP server {name!r}: unknown fields {unknown}; a registered server may set "
                f"{', '.join(sorted(_REGISTERED_FIELDS - {'type'}))}",
                server=name,
            )
        self._check_headers(name, entry)
        transport = entry.pop("type", None) or entry.pop("transport", None) or "http"
        if transport not in ("http", "streamable-http", "sse"):
            raise ServerRefusedError(
                f"MCP server {name!r}: transport {transport!r} cannot be registered; use 'http' or 'sse'",
                server=name,
            )
        return validate_server(
            {
                **entry,
                "name": name,
                "transport": "sse" if transport == "sse" else "http",
                "required": False,
                "connect_timeout": self.connect_timeout,
                "call_timeout": self.call_timeout,
                **self.bounds,
                # Every connection is checked against the policy, not only the URL at registration.
                "url_policy": self.policy,
            }
        )

    def _check_headers(self, name: str, entry: Mapping[str, Any]) -> None:
        """Refuse headers the deployment did not declare for users, or that no user may set."""
        headers: Any = entry.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise ServerRefusedError(
                f"MCP server {name!r}, field 'headers': give an object of header names to values",
                server=name,
                field="headers",
            )
        names = [str(k) for k in headers]  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
        if "bearer_token" in entry:
            names.append("Authorization")
        for header in names:
            field = f"headers.{header}"
            rule = refused_header(header)
            if rule is not None:
                why = f"{header!r} is never set from a user's values ({rule})"
            elif header.lower() not in self.user_headers:
                why = (
                    f"{header!r} is not a name the deployment lets users set; remove it, or (deployment) "
                    "add it to `RegisteredServers(user_headers=...)`"
                )
            elif bad_value(str(headers.get(header, ""))):  # pyright: ignore[reportUnknownArgumentType, reportUnknownMemberType]
                why = "the value holds a line break or NUL; store it without"
            else:
                continue
            raise ServerRefusedError(f"MCP server {name!r}, field {field!r}: {why}", server=name, field=field)


class UserServers:
    """The servers of each run, chosen from its authenticated user; pass it as a factory's ``servers``.

    Args:
        servers: Entries for everyone (a server config) or for some users (`Scoped`).
        credentials: The default credential provider of every entry.
        registered: Load the servers users register in the store.
        tools: The tool filter of every user, or a function giving each user theirs.

    Example:
        ```python
        servers = UserServers(
            [
                StdioServer(name="files", command="files-mcp"),
                Scoped(
                    HttpServer(name="github", url="https://mcp.example.com/github"),
                    permissions=["mcp:github"],
                    credentials=StoreCredentials(),
                ),
            ],
            registered=RegisteredServers(),
            tools=lambda user: None if "admin" in user.permissions else ToolFilter(deny=["*_delete*"]),
        )
        make_graph = agent_factory(servers, "anthropic:claude-sonnet-4-5")
        ```
    """

    def __init__(
        self,
        servers: Iterable[ServerConfig | Scoped],
        *,
        credentials: CredentialProvider | None = None,
        registered: RegisteredServers | None = None,
        tools: ToolsSource = None,
    ) -> None:
        self.entries: tuple[Scoped, ...] = tuple(s if isinstance(s, Scoped) else Scoped(s) for s in servers)
        names = [entry.server.name for entry in self.entries]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(
                f"MCP server names {duplicates} are used more than once; give each entry a unique name "
                "(entries for different users too: names identify servers in logs and tool metadata)",
                field="name",
            )
        self.credentials = credentials
        self.registered = registered
        self.tools = tools

    async def __call__(self, runtime: ServerRuntime[Any]) -> Selection:
        """The selection for one run (the factory calls this for runs only)."""
        return await self.select(UserContext.from_user(runtime.user, runtime.store))

    async def select(self, user: UserContext) -> Selection:
        """The servers, refusals and tool filter for ``user``."""
        entries = [entry for entry in self.entries if entry.applies(user)]
        chosen: dict[str, ServerConfig] = {}
        refused: list[ServerFailure] = []
        own: list[ServerConfig] = []

        async def prepare(entry: Scoped) -> None:
            server = entry.server
            try:
                rendered = render_server(server, user)
                provider = entry.credentials or self.credentials
                credentials = None if provider is None else await provider(user, rendered)
                chosen[server.name] = apply_credentials(rendered, credentials)
            except ServerRefusedError as exc:
                url = exc.authorization_url if isinstance(exc, OAuthError) else None
                failure = _refusal(server.name, _reason(exc), required=server.required)
                refused.append(dataclasses.replace(failure, authorization_url=url) if url else failure)
            except Exception as exc:  # a provider's own failure: the server is refused, with the reason
                # The exception's text may hold what the provider was handling: name its type only.
                reason = f"the credentials provider failed ({type(exc).__name__}); check its logs"
                refused.append(_refusal(server.name, reason, required=server.required))

        async with anyio.create_task_group() as group:
            for entry in entries:
                group.start_soon(prepare, entry)
            if self.registered is not None:
                registered = self.registered

                async def load() -> None:
                    servers, refusals = await registered.load(
                        user, taken=(entry.server.name for entry in self.entries)
                    )
                    own.extend(servers)
                    refused.extend(refusals)

                group.start_soon(load)
        order = [entry.server.name for entry in entries]
        servers = [*(chosen[name] for name in order if name in chosen), *own]
        for failure in refused:
            logger.warning(
                "MCP server %r refused for %s: %s", failure.server, user.describe(), failure.reason
            )
        return Selection(
            servers=tuple(servers),
            refused=tuple(sorted(refused, key=lambda f: f.server)),
            tool_filter=await self._tool_filter(user),
            registered=frozenset(server.name for server in own),
        )

    async def _tool_filter(self, user: UserContext) -> ToolFilter | None:
        source = self.tools
        if source is None or isinstance(source, ToolFilter):
            return source
        result = source(user)
        if inspect.isawaitable(result):
            result = await result
        return result


async def _search_all(store: BaseStore, namespace: tuple[str, ...]) -> list[Item]:
    """Every item under ``namespace``, page by page (bounded)."""
    items: list[Item] = []
    for _ in range(_MAX_PAGES):
        page = await store.asearch(namespace, limit=_PAGE, offset=len(items))
        items.extend(page)
        if len(page) < _PAGE:
            break
    return items


def _refusal(server: str, reason: str, *, required: bool) -> ServerFailure:
    return ServerFailure(server=server, reason=reason, required=required)


def _reason(exc: ConfigError | ServerRefusedError) -> str:
    text = str(exc)
    prefix = f"MCP server {exc.server!r}: "
    return text.removeprefix(prefix) if exc.server else text
