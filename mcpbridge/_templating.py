"""Templating of user values into server configurations.

``{user.<field>}`` in URLs, headers, arguments and environment values is filled per
run from the `UserContext`, so that a value never changes the structure around it.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import quote, unquote

from mcpbridge._access import UserContext
from mcpbridge.config import HttpServer, ServerConfig, SseServer, StdioServer
from mcpbridge.errors import ServerRefusedError

__all__ = ["TEMPLATE", "render_server"]

TEMPLATE = re.compile(r"\{user\.([A-Za-z_][A-Za-z0-9_]*)\}")
"""A ``{user.<field>}`` template; group 1 is the field."""
_FORBIDDEN_IN_HEADER = re.compile(r"[\r\n\x00]")
_DOT_SEGMENTS = frozenset({".", ".."})


def render_server(server: ServerConfig, user: UserContext) -> ServerConfig:
    r"""Fill the ``{user.<field>}`` templates of a server's URL, headers, arguments and environment.

    A value fills what its template holds and never changes the structure around it:
    values are percent-encoded in URLs (so they add no path segment, query or fragment),
    a URL path segment they make ``.`` or ``..`` (percent-encoded or not) is refused,
    an argument they make start with ``-`` (an option) is refused, and a value with a
    line break is refused in headers.

    In ``roots``, a value fills its path segment only: a value holding ``/``, ``\``, ``%``
    or a control character, or that is ``.`` or ``..``, is refused, and the root stays
    under the fixed part of its template.

    Raises:
        ServerRefusedError: A template names a field the user does not have, or a value
            would change the structure of the URL, an argument, a header or a root.
    """
    if server.roots and any("{user." in root for root in server.roots):
        roots = tuple(_render_root(root, user, server=server.name) for root in server.roots)
        server = server.model_copy(update={"roots": roots})
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


_ROOT_VALUE_FORBIDDEN = re.compile(r"[/\\%\x00-\x1f\x7f]")


def _render_root(template: str, user: UserContext, *, server: str) -> str:
    """A root with the user's values, each confined to its path segment under the template's fixed prefix."""
    if "{user." not in template:
        return template

    def refuse(name: str, why: str) -> ServerRefusedError:
        return ServerRefusedError(
            f"MCP server {server!r}, field 'roots': the user's {name!r} {why}; a user value may fill "
            "only its own path segment of a root. Refuse such values in the auth handler",
            server=server,
            field="roots",
        )

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = user.value(name)
        if value is None:
            raise refuse(name, f"is missing ({user.describe()} does not have it)")
        if not value or _ROOT_VALUE_FORBIDDEN.search(value) or value in _DOT_SEGMENTS:
            raise refuse(name, "is empty, '.' or '..', or holds '/', '\\', '%' or a control character")
        return quote(value, safe="")

    rendered = TEMPLATE.sub(substitute, template)
    prefix = template[: template.index("{user.")]
    fixed = prefix[: prefix.rfind("/") + 1]  # the directory the template names before any user value
    path = unquote(rendered.removeprefix("file://"))
    if not rendered.startswith(fixed) or not (posixpath.normpath(path) + "/").startswith(unquote(fixed[7:])):
        raise refuse(", ".join(TEMPLATE.findall(template)), "would move the root out of its directory")
    return rendered


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
