"""The ``mcpServers`` JSON dialect: the server files of Claude Desktop, Cursor and VS Code, as is.

Entries are translated (camelCase keys, ``type`` aliases, ``${env}`` expansion, foreign keys
dropped) into the fields of the `mcpbridge.config` models, which validate them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcpbridge.config import ServerConfig, check_servers, validate_server
from mcpbridge.errors import ConfigError

__all__ = ["load_servers", "parse_servers"]

# Keys other MCP clients write into their entries that mean nothing to a bridge.
_FOREIGN_KEYS = frozenset(
    {
        "autoApprove",
        "alwaysAllow",
        "description",
        "disabledTools",
        "envFile",
        "icon",
        "timeout",
        "transportType",
    }
)
_TYPE_ALIASES = {
    "stdio": "stdio",
    "http": "http",
    "streamable-http": "http",
    "streamable_http": "http",
    "streamableHttp": "http",
    "sse": "sse",
}
_CAMEL = {
    "connectTimeout": "connect_timeout",
    "callTimeout": "call_timeout",
    "maxResultChars": "max_result_chars",
    "maxDescriptionChars": "max_description_chars",
    "includeTools": "include_tools",
    "excludeTools": "exclude_tools",
    "bearerToken": "bearer_token",
    "httpTimeout": "http_timeout",
    "sseReadTimeout": "sse_read_timeout",
    "maxTools": "max_tools",
    "maxProgressPerSecond": "max_progress_per_second",
    "maxLogLevel": "max_log_level",
    "maxResponseBytes": "max_response_bytes",
    "userHeaders": "user_headers",
    "userEnv": "user_env",
}
_ENV_RE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_servers(
    source: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> list[ServerConfig]:
    """Load servers from an ``mcpServers`` JSON file (Claude Desktop, Cursor, VS Code format).

    Args:
        source: Path to the JSON file.
        environ: Variables for ``${VAR}`` expansion; defaults to ``os.environ``.

    Returns:
        The validated server configurations, in file order.

    Raises:
        ConfigError: The file is missing, not JSON, or an entry is invalid.
    """
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read MCP server config {str(path)!r}: {exc.strerror}; check the path"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{str(path)!r} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix the syntax"
        ) from None
    return parse_servers(data, environ=environ)


def parse_servers(data: Any, *, environ: Mapping[str, str] | None = None) -> list[ServerConfig]:
    """Validate servers given as ``mcpServers`` JSON data.

    Accepts ``{"mcpServers": {...}}`` (Claude Desktop, Cursor), ``{"servers": {...}}`` (VS Code),
    or the bare ``{name: entry}`` mapping. Each entry is ``command``/``args``/``env``/``cwd`` for
    stdio, or ``url``/``headers`` with an optional ``type`` (``http``, ``streamable-http``, ``sse``),
    plus any option of `StdioServer` / `HttpServer` (snake or camel case). ``${VAR}``,
    ``${env:VAR}`` and ``${VAR:-default}`` are expanded in every string. Entries with
    ``"disabled": true`` are skipped.

    Args:
        data: The decoded JSON.
        environ: Variables for ``${VAR}`` expansion; defaults to ``os.environ``.

    Returns:
        The validated server configurations, in order.

    Raises:
        ConfigError: An entry is invalid; the message names the server, the field and the fix.
    """
    env = os.environ if environ is None else environ
    if not isinstance(data, Mapping):
        raise ConfigError('MCP server config must be a JSON object such as {"mcpServers": {"name": {...}}}')
    document: Mapping[str, Any] = data  # pyright: ignore[reportUnknownVariableType]
    mapping: Any = next((document[k] for k in ("mcpServers", "servers") if k in document), document)
    if not isinstance(mapping, Mapping):
        raise ConfigError(
            '"mcpServers" must map server names to entries, such as {"files": {"command": "..."}}'
        )
    servers: list[ServerConfig] = []
    for name, entry in mapping.items():  # pyright: ignore[reportUnknownVariableType]
        name = str(name)  # pyright: ignore[reportUnknownArgumentType]
        if not isinstance(entry, Mapping):
            raise ConfigError(
                f"MCP server {name!r}: entry must be an object with `command` or `url`", server=name
            )
        fields: dict[str, Any] = {str(k): v for k, v in entry.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
        if fields.pop("disabled", False) is True:
            continue
        fields = {_CAMEL.get(k, k): _expand(v, env, server=name, field=k) for k, v in fields.items()}
        for key in _FOREIGN_KEYS & fields.keys():
            del fields[key]
        kind = fields.pop("type", None)
        if kind is None:
            transport = "stdio" if "command" in fields else "http" if "url" in fields else None
            if transport is None:
                raise ConfigError(
                    f"MCP server {name!r}: no `command` (stdio) or `url` (HTTP); add one of them",
                    server=name,
                )
        elif kind in _TYPE_ALIASES:
            transport = _TYPE_ALIASES[kind]
        else:
            raise ConfigError(
                f"MCP server {name!r}, field 'type': unknown transport {kind!r}; "
                "use 'stdio', 'http' (streamable HTTP) or 'sse'",
                server=name,
                field="type",
            )
        servers.append(validate_server({**fields, "name": name, "transport": transport}))
    check_servers(servers)
    return servers


def _expand(value: Any, env: Mapping[str, str], *, server: str, field: str) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            var, default = match.group(1), match.group(2)
            if var in env:
                return env[var]
            if default is not None:
                return default
            raise ConfigError(
                f"MCP server {server!r}, field {field!r}: environment variable {var} is not set; "
                f"set it, or write ${{{var}:-default}} to give a default",
                server=server,
                field=field,
            )

        return _ENV_RE.sub(substitute, value)
    if isinstance(value, Mapping):
        return {str(k): _expand(v, env, server=server, field=field) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    if isinstance(value, list):
        return [_expand(v, env, server=server, field=field) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value
