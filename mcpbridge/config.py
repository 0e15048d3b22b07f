"""Server configuration: what to connect to and how.

Pydantic models validate configuration at the edge, so a bad entry fails at load
time with an error that names the server, the field and the fix. The ``mcpServers``
JSON dialect of Claude Desktop, Cursor and VS Code is read by `mcpbridge._mcpjson`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

import httpx2
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    InstanceOf,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails

from mcpbridge._deprecation import moved
from mcpbridge._uservalues import refused_env, refused_header
from mcpbridge.errors import ConfigError
from mcpbridge.urlpolicy import UrlPolicy

__all__ = [
    "HttpServer",
    "MemoryServer",
    "ServerConfig",
    "SseServer",
    "StdioServer",
]

LogLevel: TypeAlias = Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
"""An MCP log level (RFC 5424 severities)."""

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


_ROOT_RE = re.compile(r"file:///[^?#\\\x00-\x1f]*")
_ROOT_SEGMENT_RE = re.compile(r"[^{}]*\{user\.[A-Za-z_][A-Za-z0-9_]*\}[^{}]*")


def safe_url(url: str) -> str:
    """The URL without credentials, query or fragment (which may hold tokens)."""
    try:
        parsed = httpx2.URL(url)
    except Exception:
        return "<invalid URL>"
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


class ServerConfig(BaseModel):
    """An MCP server configuration: the options every kind shares.

    The kinds are `StdioServer`, `HttpServer`, `SseServer` and `MemoryServer`.

    Example:
        ```python
        assert isinstance(StdioServer(name="files", command="mcp-files"), ServerConfig)
        ```
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, hide_input_in_errors=True
    )

    name: str
    """Unique name of the server in this configuration; shown in errors, logs and tool metadata."""
    required: bool = True
    """A required server that cannot be connected fails the run; an optional one is skipped and recorded."""
    connect_timeout: float = Field(default=10.0, gt=0)
    """Seconds allowed for connecting, the handshake, and listing and preparing the tools."""
    call_timeout: float = Field(default=60.0, gt=0)
    """Seconds allowed for one ``tools/call``; past it the call is cancelled and the model told."""
    max_result_chars: int = Field(default=100_000, gt=0)
    """The most characters of a result the model gets (text and base64 media alike); the rest is cut
    (media left out), with a note saying so."""
    max_description_chars: int = Field(default=10_000, gt=0)
    """The most characters of a tool description the model gets (it is sent with every model call)."""
    reconnect: int = Field(default=1, ge=0)
    """Times a run may reconnect after the server died or dropped the connection (at its next call)."""
    include_tools: tuple[str, ...] | None = None
    """Glob patterns of tool names to keep (``None`` keeps all)."""
    exclude_tools: tuple[str, ...] = ()
    """Glob patterns of tool names to drop, applied after ``include_tools``."""
    prefix: str | None = None
    """Prefix every tool name of this server, as ``{prefix}_{tool}``."""
    protocol: Literal["auto", "legacy"] = "auto"
    """``auto`` negotiates the 2026-07-28 protocol and falls back to the 2025-11-25 handshake."""
    max_tools: int = Field(default=1000, gt=0)
    """The most tools the server may offer; a server offering more is not connected, with the reason."""
    max_progress_per_second: float = Field(default=10.0, gt=0)
    """Progress notifications of one call reach the graph's stream at most this often (coalesced)."""
    max_log_level: LogLevel = "warning"
    """The most severe level the server's log messages are logged at (a server cannot raise alarms)."""
    roots: tuple[str, ...] | None = None
    """The ``file://`` URIs the server's ``roots/list`` gets (``None``: roots are not offered).
    ``{user.<field>}`` templates in them are filled per run; a user value fills one path segment."""

    credential_principal: str | None = Field(default=None, exclude=True)
    """Who the server's credentials are for, never a secret (`apply_credentials` sets it from
    `Credentials.principal`): cached tool lists are kept per run user and principal."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "must be 1-64 characters of letters, digits, '_', '-' or '.', starting with a letter or digit"
            )
        return value

    @field_validator("roots")
    @classmethod
    def _check_roots(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for root in value or ():
            if not _ROOT_RE.fullmatch(root):
                raise ValueError(
                    f"root {root!r} must be an absolute file URI ('file:///path'), no query or fragment"
                )
            for segment in root.removeprefix("file://").split("/"):
                if "{user." in segment and not _ROOT_SEGMENT_RE.fullmatch(segment):
                    raise ValueError(f"root {root!r}: a path segment may hold one {{user.<field>}} template")
                if segment in (".", ".."):
                    raise ValueError(f"root {root!r} has a '.' or '..' path segment")
        return value

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", value):
            raise ValueError("must be 1-32 characters of letters, digits, '_' or '-'")
        return value


class StdioServer(ServerConfig):
    """An MCP server started as a subprocess and spoken to over its stdin and stdout.

    Example:
        ```python
        StdioServer(name="files", command="npx", args=["-y", "@modelcontextprotocol/server-filesystem", "."])
        ```
    """

    transport: Literal["stdio"] = "stdio"
    command: str = Field(min_length=1)
    args: Sequence[str] = ()
    """The command's arguments, a list or a tuple (kept as a tuple)."""
    env: Mapping[str, str] | None = Field(default=None, repr=False)
    """Extra environment variables, merged over a minimal safe environment."""
    cwd: Path | None = None
    user_env: tuple[str, ...] = ()
    """Environment variable names a user's own credentials may set (none by default)."""

    @field_validator("args")
    @classmethod
    def _args_as_tuple(cls, value: Sequence[str]) -> tuple[str, ...]:
        return tuple(value)

    @field_validator("user_env")
    @classmethod
    def _check_user_env(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        env: Mapping[str, str] = info.data.get("env") or {}
        configured = {k.upper() for k in env}
        for name in value:
            rule = refused_env(name)
            if rule is not None:
                raise ValueError(f"{name!r} cannot be user-fillable ({rule}); remove it from `user_env`")
            if name.upper() in configured:
                raise ValueError(
                    f"{name!r} is set in `env` by the deployment; a user value never replaces it: "
                    "remove it from `user_env` or from `env`"
                )
        return value


class _HttpBase(ServerConfig):
    url: str
    headers: Mapping[str, str] = Field(default_factory=dict[str, str], repr=False)
    bearer_token: SecretStr | None = None
    """Sent as ``Authorization: Bearer <token>``."""
    auth: httpx2.Auth | None = Field(default=None, exclude=True, repr=False)
    """An ``httpx2.Auth`` (for example the SDK's OAuth provider); takes precedence over ``bearer_token``."""
    http_timeout: float = Field(default=30.0, gt=0)
    """Seconds for HTTP connect, write and pool operations."""
    max_response_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    """The most bytes of one HTTP response (a JSON body, or one event of a stream), counted before parsing."""
    url_policy: InstanceOf[UrlPolicy] | None = Field(default=None, exclude=True, repr=False)
    """Check every connection's address with this policy (set on every user-registered server):
    connect only to admitted addresses, follow no proxy from the environment, and show users one
    fixed text for every connection failure (the detail goes to the log)."""
    user_headers: tuple[str, ...] | None = None
    """Header names a user's own credentials may set; ``None``: ``Authorization``, unless the
    deployment sets it itself (``bearer_token``, ``auth`` or an ``Authorization`` header)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        try:
            url = httpx2.URL(value)
        except Exception as exc:  # httpx2 raises several types for malformed URLs
            raise ValueError(f"is not a valid URL ({exc})") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an absolute http:// or https:// URL, such as https://example.com/mcp")
        return value

    @field_validator("bearer_token")
    @classmethod
    def _check_auth(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        headers: Mapping[str, str] = info.data.get("headers") or {}
        if value is not None and any(k.lower() == "authorization" for k in headers):
            raise ValueError("set either `bearer_token` or an `Authorization` header, not both")
        return value

    @field_validator("user_headers")
    @classmethod
    def _check_user_headers(
        cls, value: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        headers: Mapping[str, str] = info.data.get("headers") or {}
        configured = {k.lower() for k in headers}
        if info.data.get("bearer_token") is not None or info.data.get("auth") is not None:
            configured.add("authorization")
        for name in value or ():
            rule = refused_header(name)
            if rule is not None:
                raise ValueError(f"{name!r} cannot be user-fillable ({rule}); remove it from `user_headers`")
            if name.lower() in configured:
                where = (
                    "`headers`" if name.lower() != "authorization" else "`headers`, `bearer_token` or `auth`"
                )
                raise ValueError(
                    f"{name!r} is set by the deployment ({where}); a user value never replaces it: "
                    "remove it from `user_headers` or from the deployment's configuration"
                )
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for key, value in super().__repr_args__():
            yield key, safe_url(value) if key == "url" else value

    def request_headers(self) -> dict[str, str]:
        """The headers to send, with the bearer token applied."""
        headers = dict(self.headers)
        if self.bearer_token is not None and self.auth is None:
            headers["Authorization"] = f"Bearer {self.bearer_token.get_secret_value()}"
        return headers


class HttpServer(_HttpBase):
    """An MCP server spoken to over streamable HTTP.

    Example:
        ```python
        HttpServer(name="search", url="https://mcp.example.com/mcp", bearer_token="...")
        ```
    """

    transport: Literal["http"] = "http"
    sse_read_timeout: float = Field(default=300.0, gt=0)
    """Seconds to wait for the next event on a server-sent event stream."""


class SseServer(_HttpBase):
    """A legacy MCP server spoken to over HTTP with server-sent events (2024-11-05 transport).

    Example:
        ```python
        SseServer(name="legacy", url="http://127.0.0.1:8000/sse")
        ```
    """

    transport: Literal["sse"] = "sse"
    protocol: Literal["auto", "legacy"] = "legacy"
    sse_read_timeout: float = Field(default=300.0, gt=0)


class MemoryServer(ServerConfig):
    """An in-process MCP server (an ``mcp`` ``MCPServer`` or low-level ``Server``), for tests and embedding.

    Example:
        ```python
        MemoryServer(name="local", server=my_mcp_server)
        ```
    """

    transport: Literal["memory"] = "memory"
    server: Any = Field(exclude=True, repr=False)
    """The server object; it runs in this process, in the bridge's task group."""


AnyServer: TypeAlias = Annotated[
    StdioServer | HttpServer | SseServer | MemoryServer, Field(discriminator="transport")
]
"""Any server configuration, parsed by its ``transport``."""

_ADAPTER: TypeAdapter[StdioServer | HttpServer | SseServer | MemoryServer] = TypeAdapter(AnyServer)


def validate_server(fields: Mapping[str, Any]) -> ServerConfig:
    """Validate one server from a mapping of its fields (``transport`` picks the kind).

    Raises:
        ConfigError: A field is invalid; the message names the server, the field and the fix.
    """
    try:
        return _ADAPTER.validate_python(dict(fields))
    except ValidationError as exc:
        name = str(fields.get("name", "?"))
        raise _config_error(name, fields, exc) from None


def _check_unique(servers: Sequence[ServerConfig]) -> None:
    seen: set[str] = set()
    for server in servers:
        if server.name in seen:
            raise ConfigError(
                f"MCP server name {server.name!r} is used twice; give each server a unique name",
                server=server.name,
                field="name",
            )
        seen.add(server.name)


def check_servers(servers: Sequence[ServerConfig]) -> None:
    """Check a list of servers: each of a known kind, no two of one name.

    Raises:
        ConfigError: A server is of no known kind, or two servers share a name.
    """
    for server in servers:
        if not isinstance(server, StdioServer | HttpServer | SseServer | MemoryServer):
            raise ConfigError(
                f"MCP server {server.name!r} is a {type(server).__name__}; give a StdioServer, "
                "HttpServer, SseServer or MemoryServer",
                server=server.name,
            )
    _check_unique(servers)


_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it",
    "string_type": "give a string",
    "float_parsing": "give a number of seconds",
    "greater_than": "give a positive number",
    "bool_parsing": "give true or false",
    "bool_type": "give true or false",
    "list_type": "give a list",
    "tuple_type": "give a list",
    "dict_type": "give an object",
    "mapping_type": "give an object",
}


def _config_error(name: str, fields: Mapping[str, Any], exc: ValidationError) -> ConfigError:
    transport = fields.get("transport")
    model = {"stdio": StdioServer, "http": HttpServer, "sse": SseServer}.get(str(transport), StdioServer)
    problems: list[str] = []
    first_field: str | None = None
    for error in exc.errors(include_url=False, include_input=False):
        location = _field_of(error)
        first_field = first_field or location
        problems.append(f"field {location!r}: {_describe(error, location, model)}")
    message = f"MCP server {name!r}: " + "; ".join(problems)
    return ConfigError(message, server=name, field=first_field)


def _field_of(error: ErrorDetails) -> str:
    # Drop the discriminator tag pydantic puts first for tagged unions.
    parts = [str(p) for p in error["loc"] if p not in ("stdio", "http", "sse")]
    return ".".join(parts) or "transport"


def _describe(error: ErrorDetails, location: str, model: type[BaseModel]) -> str:
    kind = error["type"]
    message = error["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        known = list(model.model_fields)
        close = difflib.get_close_matches(location.split(".")[0], known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known fields are {', '.join(known)}"
        return f"unknown field; {hint}"
    if kind == "union_tag_invalid":
        return "unknown transport; use 'stdio', 'http' or 'sse'"
    if kind in ("sequence_str", "is_instance_of") and "Sequence" in message:  # `args`, a Sequence[str]
        return "Input should be a valid list; give a list"
    fix = _FIXES.get(kind)
    return f"{message}; {fix}" if fix else message


# Names that moved; they keep working, with a warning, for one release.
__getattr__ = moved("mcpbridge.config", dict.fromkeys(("load_servers", "parse_servers"), "mcpbridge"))
