"""``{user.<field>}`` templates rendered into server configurations (``mcpbridge._templating``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr, ValidationError

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
from mcpbridge.scoping import UserContext

ANONYMOUS = UserContext()


def user(identity: str = "alice", *permissions: str, **fields: Any) -> UserContext:
    return UserContext.from_user({"identity": identity, "permissions": list(permissions), **fields})


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


# --- render_server: roots ----------------------------------------------------------------------

ROOTS = ("file:///srv/teams/{user.team}/work", "file:///srv/shared")


def test_a_root_gets_the_users_value_in_its_segment() -> None:
    server = StdioServer(name="files", command="files-mcp", roots=ROOTS)
    rendered = render_server(server, user(team="blue sky"))
    assert rendered.roots == ("file:///srv/teams/blue%20sky/work", "file:///srv/shared")


@pytest.mark.parametrize("team", ["..", ".", "../../etc", "a/b", "a\\b", "%2e%2e", "%2F", "x\n", "", "a\x00"])
def test_a_user_value_cannot_leave_its_roots_segment(team: str) -> None:
    server = HttpServer(name="files", url="https://files.example.com/mcp", roots=ROOTS)
    with pytest.raises(ServerRefusedError, match="roots") as refused:
        render_server(server, user(team=team))
    assert refused.value.field == "roots"


def test_a_root_without_the_users_field_refuses_the_server() -> None:
    server = StdioServer(name="files", command="files-mcp", roots=ROOTS)
    with pytest.raises(ServerRefusedError, match="'team' is missing"):
        render_server(server, user())


@pytest.mark.parametrize(
    "root",
    [
        "https://example.com/x",
        "file://host/share",
        "file:///srv/{user.team}?x=1",
        "file:///srv/../etc",
        "file:///srv/{user.a}{user.b}",
        "/srv/plain/path",
    ],
)
def test_roots_must_be_absolute_file_uris_with_whole_segment_templates(root: str) -> None:
    with pytest.raises(ValidationError, match="roots"):
        StdioServer(name="files", command="files-mcp", roots=(root,))
