"""The authenticated user of a run, as the rules that pick servers and tools see it.

`UserContext` is read from the factory's ``ServerRuntime``: the user's identity,
permissions and every other field the Agent Server's auth handler returned,
plus the deployment's store. Rules (`has_permission`, ...) decide which server
entries a user gets; ``{user.<field>}`` templates in URLs, headers, arguments
and environment values are filled from it; `ToolFilter` narrows the tools.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import quote, unquote

from langgraph.store.base import BaseStore

from mcpbridge.config import HttpServer, ServerConfig, SseServer, StdioServer
from mcpbridge.errors import ServerRefusedError

__all__ = [
    "Rule",
    "ToolFilter",
    "UserContext",
    "has_any_permission",
    "has_permission",
    "render_server",
    "user_in",
]

TEMPLATE = re.compile(r"\{user\.([A-Za-z_][A-Za-z0-9_]*)\}")
_FORBIDDEN_IN_HEADER = re.compile(r"[\r\n\x00]")
_DOT_SEGMENTS = frozenset({".", ".."})


@dataclass(frozen=True, slots=True)
class UserContext:
    """Who a run serves, for selecting servers, credentials and tools.

    Attributes:
        identity: The authenticated user's identity; ``None`` without custom auth.
        permissions: The user's permissions.
        fields: Every field the auth handler returned (``identity``, ``permissions``, ``org``, ...).
        store: The deployment's store, where per-user credentials and servers live.
    """

    identity: str | None = None
    permissions: frozenset[str] = frozenset()
    fields: Mapping[str, Any] = field(default_factory=dict[str, Any])
    store: BaseStore | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_user(cls, user: Any, store: BaseStore | None = None) -> UserContext:
        """Read an Agent Server user (``runtime.user``: a `BaseUser` or a mapping); ``None`` is anonymous."""
        if user is None:
            return cls(store=store)
        fields: dict[str, Any] = {}
        if hasattr(user, "items"):
            fields.update({str(k): v for k, v in user.items()})
        identity = getattr(user, "identity", None) or fields.get("identity")
        permissions: Any = getattr(user, "permissions", None) or fields.get("permissions") or ()
        if isinstance(permissions, str):
            permissions = (permissions,)  # one permission, not its letters
        fields.setdefault("identity", identity)
        return cls(
            identity=None if identity is None else str(identity),
            permissions=frozenset(str(p) for p in permissions),
            fields=fields,
            store=store,
        )

    def describe(self) -> str:
        """``user 'alice'``, or ``an anonymous run``, for messages."""
        return f"user {self.identity!r}" if self.identity is not None else "an anonymous run"

    @property
    def authenticated(self) -> bool:
        """Whether the run has an authenticated user."""
        return self.identity is not None

    def value(self, name: str) -> str | None:
        """A field as text, for templates (``None`` when the user does not have it)."""
        if name == "identity":
            return self.identity
        value = self.fields.get(name)
        return None if value is None or isinstance(value, (Mapping, list, tuple, set)) else str(value)


Rule: TypeAlias = Callable[[UserContext], bool]
"""Decides from the user whether a server entry applies to a run."""


def has_permission(*permissions: str) -> Rule:
    """A rule: the user holds every one of ``permissions``."""
    wanted = frozenset(permissions)

    def rule(user: UserContext) -> bool:
        return user.authenticated and wanted <= user.permissions

    rule.__qualname__ = f"has_permission({', '.join(map(repr, permissions))})"
    return rule


def has_any_permission(*permissions: str) -> Rule:
    """A rule: the user holds at least one of ``permissions``."""
    wanted = frozenset(permissions)

    def rule(user: UserContext) -> bool:
        return user.authenticated and bool(wanted & user.permissions)

    rule.__qualname__ = f"has_any_permission({', '.join(map(repr, permissions))})"
    return rule


def user_in(*identities: str) -> Rule:
    """A rule: the user is one of ``identities``."""
    wanted = frozenset(identities)

    def rule(user: UserContext) -> bool:
        return user.identity in wanted

    rule.__qualname__ = f"user_in({', '.join(map(repr, identities))})"
    return rule


@dataclass(frozen=True, slots=True)
class ToolFilter:
    """Glob patterns over tool names (as the model sees them), applied after listing.

    A tool is kept when it matches some ``allow`` pattern and no ``deny`` pattern.

    Example:
        ```python
        ToolFilter(allow=["github_*"], deny=["*_delete_*"])
        ```
    """

    allow: Sequence[str] = ("*",)
    deny: Sequence[str] = ()

    def allows(self, name: str) -> bool:
        """Whether the tool ``name`` is kept."""
        if not any(fnmatch.fnmatchcase(name, p) for p in self.allow):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.deny)


def render_server(server: ServerConfig, user: UserContext) -> ServerConfig:
    """Fill the ``{user.<field>}`` templates of a server's URL, headers, arguments and environment.

    A value fills what its template holds and never changes the structure around it:
    values are percent-encoded in URLs (so they add no path segment, query or fragment),
    a URL path segment they make ``.`` or ``..`` (percent-encoded or not) is refused,
    an argument they make start with ``-`` (an option) is refused, and a value with a
    line break is refused in headers.

    Raises:
        ServerRefusedError: A template names a field the user does not have, or a value
            would change the structure of the URL, an argument or a header.
    """
    match server:
        case HttpServer() | SseServer():
            url = _render(server.url, user, server=server.name, field="url", encode=True)
            if url != server.url:
                _check_path_segments(server.url, user, server=server.name)
            headers = {
                k: _render(v, user, server=server.name, field=f"headers.{k}", header=True)
                for k, v in server.headers.items()
            }
            if url == server.url and headers == dict(server.headers):
                return server
            return server.model_copy(update={"url": url, "headers": headers})
        case StdioServer():
            args = tuple(_render(a, user, server=server.name, field="args") for a in server.args)
            for index, (template, arg) in enumerate(zip(server.args, args, strict=True)):
                if arg.startswith("-") and not template.startswith("-"):
                    raise ServerRefusedError(
                        f"MCP server {server.name!r}, field 'args' (argument {index}): the user's "
                        f"{_names(template)} would make the argument start with '-', which the server "
                        "would read as an option; a user value may not begin an argument with '-'. "
                        "Put the value after a fixed prefix in the template (e.g. '--name={user.name}')",
                        server=server.name,
                        field="args",
                    )
            env = {
                k: _render(v, user, server=server.name, field=f"env.{k}")
                for k, v in (server.env or {}).items()
            }
            if args == server.args and env == dict(server.env or {}):
                return server
            return server.model_copy(update={"args": args, "env": env or None})
        case _:
            return server


def _render(
    text: str, user: UserContext, *, server: str, field: str, encode: bool = False, header: bool = False
) -> str:
    if "{user." not in text:
        return text

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = user.value(name)
        if value is None:
            who = user.describe()
            raise ServerRefusedError(
                f"MCP server {server!r}, field {field!r}: the template {{user.{name}}} needs the user's "
                f"{name!r}, which {who} does not have; return it from the auth handler, "
                "or scope the server to users who have it",
                server=server,
                field=field,
            )
        if header and _FORBIDDEN_IN_HEADER.search(value):
            raise ServerRefusedError(
                f"MCP server {server!r}, field {field!r}: the user's {name!r} holds a line break "
                "and cannot go into a header",
                server=server,
                field=field,
            )
        return quote(value, safe="") if encode else value

    return TEMPLATE.sub(substitute, text)


def _names(template: str) -> str:
    """``'org'`` or ``'org', 'team'``: the user fields a template fills, for messages."""
    return ", ".join(repr(name) for name in dict.fromkeys(TEMPLATE.findall(template)))


def _check_path_segments(template: str, user: UserContext, *, server: str) -> None:
    """Refuse a URL whose path gets a ``.`` or ``..`` segment from a user value.

    Values are percent-encoded without safe characters, so every ``/``, ``?`` and
    ``#`` of the rendered URL is the template's own: the template's path segments
    are the rendered URL's, one for one. HTTP clients and servers resolve dot
    segments (``/u/../admin`` is ``/admin``), decoded or not (``%2e%2e``).
    """
    scheme_end = template.find("://")
    path_start = 0 if scheme_end < 0 else template.find("/", scheme_end + 3)
    if path_start < 0:  # no path: nothing to resolve
        return
    path = re.split(r"[?#]", template[path_start:], maxsplit=1)[0]
    for piece in path.split("/"):
        if "{user." not in piece:
            continue
        segment = _render(piece, user, server=server, field="url", encode=True)
        if unquote(segment) in _DOT_SEGMENTS:
            raise ServerRefusedError(
                f"MCP server {server!r}, field 'url': the user's {_names(piece)} would make the path "
                f"segment {piece!r} a dot segment ({segment!r}), which moves the request to another path; "
                "a user value may not make a URL path segment '.' or '..'. Refuse such values in the "
                "auth handler, or put the value in a segment with fixed text (e.g. '/u-{user.org}/')",
                server=server,
                field="url",
            )
