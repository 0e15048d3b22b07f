"""The user a run serves: reading it, rules over it, tool filters, and ``{user.<field>}`` templates."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from langgraph.store.memory import InMemoryStore
from pydantic import SecretStr

from mcpbridge import (
    ConfigError,
    HttpServer,
    MCPBridgeError,
    MemoryServer,
    ServerRefusedError,
    SseServer,
    StdioServer,
)
from mcpbridge._templating import render_server
from mcpbridge.scoping import ToolFilter, UserContext, has_any_permission, has_permission, user_in

ANONYMOUS = UserContext()


def user(identity: str = "alice", *permissions: str, **fields: Any) -> UserContext:
    return UserContext.from_user({"identity": identity, "permissions": list(permissions), **fields})


class DotDict:
    """Like langgraph_api's ``DotDict``: an auth handler's dict, its keys also as attributes."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        for key, value in data.items():
            setattr(self, key, value)

    def dict(self) -> dict[str, Any]:
        return dict(self._data)


class ProxyUser:
    """Like langgraph_api's ``ProxyUser``: what ``runtime.user`` is under custom auth.

    It has ``identity`` and the ``BaseUser`` properties, proxies other attributes
    (``permissions``, ``org``) to the wrapped user, and is a read-only mapping of
    ``identity``, ``is_authenticated``, ``display_name`` and the wrapped user's fields.
    """

    def __init__(self, wrapped: DotDict) -> None:
        self._user = wrapped

    @property
    def identity(self) -> str:
        return self._user.identity  # pyright: ignore[reportAttributeAccessIssue]

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.identity

    def dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "is_authenticated": True,
            "display_name": self.display_name,
            **self._user.dict(),
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self._user, name)

    def __getitem__(self, key: str) -> Any:
        return self.dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.dict())

    def keys(self) -> Any:
        return self.dict().keys()

    def items(self) -> Any:
        return self.dict().items()


@dataclass
class PlainUser:
    """A user object with attributes only (no mapping interface)."""

    identity: str
    permissions: list[str] = field(default_factory=list[str])


# --- UserContext.from_user -------------------------------------------------------------------------


def test_no_user_is_anonymous() -> None:
    store = InMemoryStore()
    context = UserContext.from_user(None, store)
    assert context.identity is None
    assert not context.authenticated
    assert context.permissions == frozenset()
    assert context.store is store
    assert context.value("identity") is None


def test_a_mapping_user() -> None:
    context = UserContext.from_user({"identity": "alice", "permissions": ["read", "write"], "org": "acme"})
    assert context.identity == "alice"
    assert context.authenticated
    assert context.permissions == frozenset({"read", "write"})
    assert context.value("org") == "acme"
    assert context.value("identity") == "alice"
    assert context.fields["org"] == "acme"


def test_a_proxy_user_as_the_agent_server_passes_it() -> None:
    wrapped = DotDict({"identity": "bob", "permissions": ["mcp:github"], "org": "acme", "tier": 3})
    context = UserContext.from_user(ProxyUser(wrapped))
    assert context.identity == "bob"
    assert context.permissions == frozenset({"mcp:github"})
    assert context.value("org") == "acme"
    assert context.value("tier") == "3"  # non-string scalars are rendered as text
    assert context.value("display_name") == "bob"


def test_an_object_user_without_a_mapping_interface() -> None:
    context = UserContext.from_user(PlainUser("carol", ["admin"]))
    assert context.identity == "carol"
    assert context.permissions == frozenset({"admin"})
    assert context.fields["identity"] == "carol"


def test_non_string_identity_and_permissions_become_text() -> None:
    context = UserContext.from_user({"identity": 42, "permissions": [1, "two"]})
    assert context.identity == "42"
    assert context.permissions == frozenset({"1", "two"})


def test_missing_and_structured_fields_have_no_text_value() -> None:
    context = user("alice", "p", groups=["a", "b"], profile={"x": 1}, nothing=None)
    assert context.value("org") is None
    assert context.value("groups") is None  # a list cannot fill a template
    assert context.value("profile") is None
    assert context.value("nothing") is None
    assert context.value("permissions") is None


def test_the_store_is_neither_shown_nor_compared() -> None:
    a = UserContext.from_user({"identity": "alice"}, InMemoryStore())
    b = UserContext.from_user({"identity": "alice"}, InMemoryStore())
    assert a == b
    assert "InMemoryStore" not in repr(a)


# --- rules -----------------------------------------------------------------------------------------


def test_has_permission_needs_every_permission() -> None:
    rule = has_permission("read", "write")
    assert rule(user("alice", "read", "write", "admin"))
    assert not rule(user("alice", "read"))
    assert not rule(user("alice"))


def test_has_any_permission_needs_one() -> None:
    rule = has_any_permission("read", "write")
    assert rule(user("alice", "write"))
    assert not rule(user("alice", "admin"))
    assert not rule(user("alice"))


def test_user_in() -> None:
    rule = user_in("alice", "bob")
    assert rule(user("alice"))
    assert rule(user("bob"))
    assert not rule(user("carol"))
    assert not rule(ANONYMOUS)


def test_anonymous_runs_never_pass_permission_rules() -> None:
    # An anonymous context with permissions (as an odd runtime might give) still passes nothing.
    anonymous_with_permissions = UserContext(identity=None, permissions=frozenset({"read"}))
    for rule in (has_permission("read"), has_any_permission("read"), has_permission()):
        assert not rule(ANONYMOUS)
        assert not rule(anonymous_with_permissions)


def test_rules_are_named_after_what_they_check() -> None:
    assert "has_permission('read', 'write')" in has_permission("read", "write").__qualname__
    assert "has_any_permission('x')" in has_any_permission("x").__qualname__
    assert "user_in('alice')" in user_in("alice").__qualname__


# --- ToolFilter ------------------------------------------------------------------------------------


def test_tool_filter_allows_everything_by_default() -> None:
    assert ToolFilter().allows("anything")


def test_tool_filter_allow_and_deny_globs() -> None:
    tools = ToolFilter(allow=["github_*", "search"], deny=["*_delete_*"])
    assert tools.allows("github_list_repos")
    assert tools.allows("search")
    assert not tools.allows("github_delete_repo")  # deny wins over allow
    assert not tools.allows("searching")  # a glob matches the whole name
    assert not tools.allows("files_read")


def test_tool_filter_is_case_sensitive() -> None:
    assert not ToolFilter(allow=["github_*"]).allows("GitHub_list")
    assert ToolFilter(deny=["*Delete*"]).allows("repo_delete")


# --- render_server: HTTP ---------------------------------------------------------------------------


def test_identity_in_the_url_path_is_percent_encoded() -> None:
    server = HttpServer(name="notes", url="https://notes.example.com/u/{user.identity}/mcp?v=1")
    rendered = render_server(server, user("a/../b?x#y"))
    assert isinstance(rendered, HttpServer)
    url = httpx2.URL(rendered.url)
    assert url.host == "notes.example.com"
    assert url.raw_path.decode() == "/u/a%2F..%2Fb%3Fx%23y/mcp?v=1"
    assert url.params.get("v") == "1"
    assert dict(url.params) == {"v": "1"}
    assert url.fragment == ""
    assert server.url == "https://notes.example.com/u/{user.identity}/mcp?v=1"  # the entry is unchanged


def test_a_field_in_the_query_cannot_add_parameters() -> None:
    server = HttpServer(name="notes", url="https://notes.example.com/mcp?org={user.org}")
    rendered = render_server(server, user("alice", org="acme&admin=1"))
    assert isinstance(rendered, HttpServer)
    assert dict(httpx2.URL(rendered.url).params) == {"org": "acme&admin=1"}


def test_user_fields_in_headers() -> None:
    server = HttpServer(
        name="gh",
        url="https://gh.example.com/mcp",
        headers={"X-User": "{user.identity}", "X-Org": "org={user.org}", "Accept": "application/json"},
    )
    rendered = render_server(server, user("alice", org="acme"))
    assert isinstance(rendered, HttpServer)
    assert dict(rendered.headers) == {"X-User": "alice", "X-Org": "org=acme", "Accept": "application/json"}


def test_a_header_value_with_a_line_break_is_refused() -> None:
    server = HttpServer(name="gh", url="https://gh.example.com/mcp", headers={"X-Org": "{user.org}"})
    for org in ("acme\r\nX-Admin: 1", "acme\nX", "acme\x00"):
        with pytest.raises(ServerRefusedError) as caught:
            render_server(server, user("alice", org=org))
        error = caught.value
        assert isinstance(error, MCPBridgeError)
        assert not isinstance(error, ConfigError)  # a per-user outcome, not a configuration mistake
        assert error.server == "gh"
        assert error.field == "headers.X-Org"
        assert "'gh'" in str(error) and "headers.X-Org" in str(error)
        assert "line break" in str(error)
        assert "X-Admin" not in str(error)  # the value itself is not echoed


def test_a_line_break_is_fine_in_a_url() -> None:
    server = HttpServer(name="gh", url="https://gh.example.com/{user.org}/mcp")
    rendered = render_server(server, user("alice", org="a\r\nb"))
    assert isinstance(rendered, HttpServer)
    assert rendered.url == "https://gh.example.com/a%0D%0Ab/mcp"


def test_sse_servers_are_rendered_too() -> None:
    server = SseServer(name="old", url="https://old.example.com/{user.identity}/sse")
    rendered = render_server(server, user("bob"))
    assert isinstance(rendered, SseServer)
    assert rendered.url == "https://old.example.com/bob/sse"


def test_a_missing_field_refuses_the_server_naming_field_and_template() -> None:
    server = HttpServer(name="gh", url="https://gh.example.com/{user.org}/mcp")
    with pytest.raises(ServerRefusedError) as caught:
        render_server(server, user("alice"))
    error = caught.value
    assert error.server == "gh"
    assert error.field == "url"
    message = str(error)
    assert "'gh'" in message
    assert "'url'" in message
    assert "{user.org}" in message
    assert "user 'alice'" in message


def test_an_anonymous_run_cannot_fill_identity() -> None:
    server = HttpServer(name="gh", url="https://gh.example.com/mcp", headers={"X-User": "{user.identity}"})
    with pytest.raises(ServerRefusedError) as caught:
        render_server(server, ANONYMOUS)
    assert caught.value.field == "headers.X-User"
    assert "{user.identity}" in str(caught.value)
    assert "anonymous" in str(caught.value)


def test_braces_that_are_not_templates_are_left_alone() -> None:
    server = HttpServer(
        name="gh",
        url="https://gh.example.com/{org}/{user.identity}/mcp",
        headers={
            "X-Json": '{"a": 1}',
            "X-Tpl": "{user}",
            "X-Other": "{users.identity}",
            "X-Me": "{user.identity}",
        },
    )
    rendered = render_server(server, user("alice"))
    assert isinstance(rendered, HttpServer)
    assert rendered.url == "https://gh.example.com/{org}/alice/mcp"
    assert dict(rendered.headers) == {
        "X-Json": '{"a": 1}',
        "X-Tpl": "{user}",
        "X-Other": "{users.identity}",
        "X-Me": "alice",
    }


def test_nothing_to_render_returns_the_same_object() -> None:
    alice = user("alice", org="acme")
    servers = [
        HttpServer(name="h", url="https://h.example.com/mcp", headers={"X-A": "{org}"}),
        SseServer(name="s", url="https://s.example.com/sse"),
        StdioServer(name="p", command="tool", args=("--flag", "{x}"), env={"A": "b"}),
        StdioServer(name="q", command="tool"),
        MemoryServer(name="m", server=object()),
    ]
    for server in servers:
        assert render_server(server, alice) is server
        assert render_server(server, ANONYMOUS) is server  # no template: nothing is needed from the user


def test_rendering_keeps_the_other_fields() -> None:
    server = HttpServer(
        name="gh",
        url="https://gh.example.com/{user.identity}/mcp",
        bearer_token=SecretStr("tok-123"),
        required=False,
        prefix="gh",
        call_timeout=5,
    )
    rendered = render_server(server, user("alice"))
    assert isinstance(rendered, HttpServer)
    assert rendered.bearer_token is not None and rendered.bearer_token.get_secret_value() == "tok-123"
    assert (rendered.required, rendered.prefix, rendered.call_timeout) == (False, "gh", 5)


@pytest.mark.parametrize(
    ("path", "org"),
    [
        ("/u/{user.org}/mcp", ".."),
        ("/u/{user.org}/mcp", "."),
        ("/u/%2{user.org}/mcp", "e"),  # the template's '%2' and the user's 'e' spell an encoded dot
        ("/u/.%2{user.org}/mcp", "E"),
        ("/u/%2e{user.org}/mcp", "."),
    ],
)
def test_a_user_value_cannot_make_a_dot_segment_in_the_url_path(path: str, org: str) -> None:
    server = HttpServer(name="notes", url=f"https://notes.example.com{path}")
    with pytest.raises(ServerRefusedError) as caught:
        render_server(server, user("alice", org=org))
    assert (caught.value.server, caught.value.field) == ("notes", "url")
    message = str(caught.value)
    assert "'org'" in message and "dot segment" in message and "'.' or '..'" in message


def test_an_encoded_dot_from_the_user_stays_encoded_and_keeps_the_path() -> None:
    server = HttpServer(name="notes", url="https://notes.example.com/u/{user.org}/mcp")
    for org in ("%2e%2e", ".%2E"):
        rendered = render_server(server, user("alice", org=org))
        assert isinstance(rendered, HttpServer)
        assert httpx2.URL(rendered.url).path.startswith("/u/") and rendered.url.endswith("/mcp")
        assert "%25" in rendered.url


def test_two_values_that_together_make_a_dot_segment_are_refused() -> None:
    server = HttpServer(name="notes", url="https://notes.example.com/u/{user.a}{user.b}/mcp")
    with pytest.raises(ServerRefusedError, match="'a', 'b'"):
        render_server(server, user("alice", a=".", b="."))


def test_the_dot_segment_rule_holds_for_sse_and_at_the_end_of_the_path() -> None:
    server = SseServer(name="old", url="https://old.example.com/sse/{user.identity}?v=1")
    with pytest.raises(ServerRefusedError, match="dot segment"):
        render_server(server, user(".."))


@pytest.mark.parametrize(
    "org", ["alice", "acme-inc", "john.doe@example.com", "a.b", "...", "..a", "-x", "a..b"]
)
def test_values_with_dots_inside_a_segment_keep_working(org: str) -> None:
    server = HttpServer(name="notes", url="https://notes.example.com/u/{user.org}/mcp?team={user.org}")
    rendered = render_server(server, user("alice", org=org))
    assert isinstance(rendered, HttpServer)
    url = httpx2.URL(rendered.url)
    assert url.path == f"/u/{org}/mcp"  # the path the template gave, with the value in its segment
    assert url.params["team"] == org


def test_dots_in_the_query_or_the_host_are_not_path_segments() -> None:
    server = HttpServer(name="notes", url="https://{user.region}.example.com/mcp?org={user.org}#{user.org}")
    rendered = render_server(server, user("alice", region="eu", org=".."))
    assert isinstance(rendered, HttpServer)
    assert httpx2.URL(rendered.url).params["org"] == ".."


def test_the_deployments_own_dot_segments_are_left_to_it() -> None:
    server = HttpServer(name="notes", url="https://notes.example.com/u/../{user.org}/mcp")
    rendered = render_server(server, user("alice", org="acme"))
    assert isinstance(rendered, HttpServer)
    assert rendered.url == "https://notes.example.com/u/../acme/mcp"


# --- render_server: stdio --------------------------------------------------------------------------


def test_user_fields_in_stdio_args_and_env() -> None:
    server = StdioServer(
        name="files",
        command="files-mcp",
        args=("--root", "/data/{user.identity}", "--org={user.org}"),
        env={"FILES_USER": "{user.identity}", "STATIC": "1"},
    )
    rendered = render_server(server, user("alice", org="acme"))
    assert isinstance(rendered, StdioServer)
    assert rendered.args == ("--root", "/data/alice", "--org=acme")
    env: Mapping[str, str] = rendered.env or {}
    assert dict(env) == {"FILES_USER": "alice", "STATIC": "1"}
    assert rendered.command == "files-mcp"


def test_stdio_args_are_not_url_encoded() -> None:
    server = StdioServer(name="files", command="files-mcp", args=("{user.identity}",))
    rendered = render_server(server, user("a b/c"))
    assert isinstance(rendered, StdioServer)
    assert rendered.args == ("a b/c",)


def test_a_missing_field_in_stdio_env_names_the_variable() -> None:
    server = StdioServer(name="files", command="files-mcp", env={"TEAM": "{user.team}"})
    with pytest.raises(ServerRefusedError) as caught:
        render_server(server, user("alice"))
    assert caught.value.server == "files"
    assert caught.value.field == "env.TEAM"
    assert "{user.team}" in str(caught.value)


@pytest.mark.parametrize("value", ["-x", "--config=/etc/passwd", "-", "--"])
def test_a_user_value_cannot_begin_a_stdio_argument_with_a_dash(value: str) -> None:
    server = StdioServer(name="files", command="files-mcp", args=("--root", "{user.identity}"))
    with pytest.raises(ServerRefusedError) as caught:
        render_server(server, user(value))
    assert (caught.value.server, caught.value.field) == ("files", "args")
    message = str(caught.value)
    assert "'identity'" in message and "argument 1" in message and "'-'" in message and "option" in message


def test_an_empty_value_cannot_let_the_next_one_begin_the_argument_with_a_dash() -> None:
    server = StdioServer(name="files", command="files-mcp", args=("{user.a}{user.b}",))
    with pytest.raises(ServerRefusedError, match="'a', 'b'"):
        render_server(server, user("alice", a="", b="-v"))


@pytest.mark.parametrize("value", ["alice", "acme-inc", "john.doe@example.com", "a-", "x--y"])
def test_stdio_values_without_a_leading_dash_keep_working(value: str) -> None:
    server = StdioServer(
        name="files", command="files-mcp", args=("--root", "{user.identity}", "/d/{user.identity}")
    )
    rendered = render_server(server, user(value))
    assert isinstance(rendered, StdioServer)
    assert rendered.args == ("--root", value, f"/d/{value}")


def test_a_dash_after_the_deployments_own_prefix_is_a_value() -> None:
    server = StdioServer(
        name="files", command="files-mcp", args=("--user={user.identity}", "-u{user.identity}")
    )
    rendered = render_server(server, user("-x"))
    assert isinstance(rendered, StdioServer)
    assert rendered.args == ("--user=-x", "-u-x")


def test_a_dash_in_an_environment_value_is_a_value() -> None:
    server = StdioServer(name="files", command="files-mcp", env={"FILES_USER": "{user.identity}"})
    rendered = render_server(server, user("-x"))
    assert isinstance(rendered, StdioServer)
    assert dict(rendered.env or {}) == {"FILES_USER": "-x"}
