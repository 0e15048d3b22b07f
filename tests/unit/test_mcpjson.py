"""The ``mcpServers`` JSON dialect: ``parse_servers`` and ``load_servers`` (``mcpbridge._mcpjson``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcpbridge import (
    Bridge,
    ConfigError,
    HttpServer,
    SseServer,
    StdioServer,
    load_servers,
    parse_servers,
)


def config_error(data: Any, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_servers(data, environ=environ or {})
    return info.value


# --- accepted formats -----------------------------------------------------------------------------


def test_claude_desktop_format_gives_typed_servers_in_order() -> None:
    servers = parse_servers(
        {
            "mcpServers": {
                "files": {"command": "npx", "args": ["-y", "server-files", "."], "env": {"A": "1"}},
                "search": {"url": "https://mcp.example.com/mcp", "headers": {"X-Team": "core"}},
                "old": {"type": "sse", "url": "http://127.0.0.1:8000/sse"},
            }
        },
        environ={},
    )
    assert [s.name for s in servers] == ["files", "search", "old"]
    files, search, old = servers
    assert isinstance(files, StdioServer)
    assert files.command == "npx"
    assert files.args == ("-y", "server-files", ".")
    assert files.env == {"A": "1"}
    assert isinstance(search, HttpServer)
    assert search.request_headers() == {"X-Team": "core"}
    assert isinstance(old, SseServer)
    assert old.protocol == "legacy"


@pytest.mark.parametrize("key", ["mcpServers", "servers", None])
def test_top_level_key_variants(key: str | None) -> None:
    entries = {"a": {"command": "a-mcp"}}
    data = {key: entries} if key else entries
    assert [s.name for s in parse_servers(data, environ={})] == ["a"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("http", HttpServer),
        ("streamable-http", HttpServer),
        ("streamableHttp", HttpServer),
        ("sse", SseServer),
    ],
)
def test_type_aliases(kind: str, expected: type) -> None:
    [server] = parse_servers({"a": {"type": kind, "url": "https://h.example/mcp"}}, environ={})
    assert type(server) is expected


def test_camel_case_options_disabled_entries_and_foreign_keys() -> None:
    servers = parse_servers(
        {
            "mcpServers": {
                "a": {
                    "command": "a-mcp",
                    "connectTimeout": 2.5,
                    "callTimeout": 7,
                    "includeTools": ["read_*"],
                    "excludeTools": ["read_secret"],
                    "autoApprove": ["x"],
                    "description": "ignored, written by other clients",
                    "required": False,
                    "prefix": "fs",
                },
                "off": {"command": "off-mcp", "disabled": True},
                "h": {"url": "https://h.example/mcp", "bearerToken": "tok", "httpTimeout": 3},
            }
        },
        environ={},
    )
    assert [s.name for s in servers] == ["a", "h"]
    a, h = servers
    assert (a.connect_timeout, a.call_timeout, a.required, a.prefix) == (2.5, 7.0, False, "fs")
    assert a.include_tools == ("read_*",)
    assert a.exclude_tools == ("read_secret",)
    assert isinstance(h, HttpServer)
    assert h.http_timeout == 3.0
    assert h.request_headers() == {"Authorization": "Bearer tok"}


def test_env_expansion_forms_in_nested_values() -> None:
    data = {
        "a": {
            "command": "${BIN}",
            "args": ["--root", "${env:ROOT}", "--mode=${MODE:-fast}", "${EMPTY:-}"],
            "env": {"TOKEN": "pre-${TOKEN}-post"},
        }
    }
    [server] = parse_servers(data, environ={"BIN": "srv", "ROOT": "/data", "TOKEN": "t"})
    assert isinstance(server, StdioServer)
    assert server.command == "srv"
    assert server.args == ("--root", "/data", "--mode=fast", "")
    assert server.env == {"TOKEN": "pre-t-post"}


def test_env_expansion_set_variable_wins_over_default() -> None:
    [server] = parse_servers({"a": {"command": "${BIN:-fallback}"}}, environ={"BIN": "real"})
    assert isinstance(server, StdioServer)
    assert server.command == "real"


def test_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPBRIDGE_TEST_BIN", "from-os")
    [server] = parse_servers({"a": {"command": "${MCPBRIDGE_TEST_BIN}"}})
    assert isinstance(server, StdioServer)
    assert server.command == "from-os"


def test_load_servers_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": {"a": {"command": "${BIN}"}}}), encoding="utf-8")
    [server] = load_servers(path, environ={"BIN": "a-mcp"})
    assert isinstance(server, StdioServer)
    assert server.command == "a-mcp"


# --- errors name the server, the field and a fix --------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "field", "suggestion"),
    [
        ({"command": "x", "comand": "y"}, "comand", "did you mean 'command'?"),
        ({"command": "x", "argz": []}, "argz", "did you mean 'args'?"),
        ({"url": "https://h.example/mcp", "bearerTokn": "t"}, "bearerTokn", "did you mean 'bearer_token'?"),
        ({"url": "https://h.example/mcp", "header": {}}, "header", "did you mean 'headers'?"),
    ],
)
def test_unknown_field_suggests_the_closest(entry: dict[str, Any], field: str, suggestion: str) -> None:
    err = config_error({"mcpServers": {"srv": entry}})
    assert (err.server, err.field) == ("srv", field)
    assert "'srv'" in str(err)
    assert f"'{field}'" in str(err)
    assert suggestion in str(err)


def test_unknown_field_without_close_match_lists_known_fields() -> None:
    err = config_error({"srv": {"command": "x", "zzzzqqq": 1}})
    assert "known fields are" in str(err)
    assert "command" in str(err)


def test_missing_env_var_names_variable_and_fix() -> None:
    err = config_error({"srv": {"command": "x", "env": {"API_KEY": "${MISSING_KEY}"}}})
    assert (err.server, err.field) == ("srv", "env")
    assert "MISSING_KEY is not set" in str(err)
    assert "${MISSING_KEY:-default}" in str(err)


@pytest.mark.parametrize("url", ["ftp://h.example/mcp", "not a url", "/relative/mcp", "http://[::1"])
def test_bad_url(url: str) -> None:
    err = config_error({"srv": {"url": url}})
    assert (err.server, err.field) == ("srv", "url")
    assert "http://" in str(err) or "not a valid URL" in str(err)


@pytest.mark.parametrize(
    ("entry", "field", "fix"),
    [
        ({"command": "x", "connectTimeout": "soon"}, "connect_timeout", "give a number of seconds"),
        ({"command": "x", "call_timeout": -1}, "call_timeout", "give a positive number"),
        ({"command": "x", "required": "maybe"}, "required", "give true or false"),
        ({"command": "x", "args": "--flag"}, "args", "give a list"),
        ({"command": "x", "args": 5}, "args", "give a list"),
        ({"command": "x", "env": {"K": 5}}, "env.K", "give a string"),
        ({"command": ""}, "command", "at least 1 character"),
        ({"command": "x", "prefix": "has space"}, "prefix", "letters, digits"),
    ],
)
def test_bad_type_or_value(entry: dict[str, Any], field: str, fix: str) -> None:
    err = config_error({"srv": entry})
    assert (err.server, err.field) == ("srv", field)
    assert f"field '{field}'" in str(err)
    assert fix in str(err)


def test_unknown_transport_type() -> None:
    err = config_error({"srv": {"type": "websocket", "url": "https://h.example"}})
    assert (err.server, err.field) == ("srv", "type")
    assert "'stdio', 'http'" in str(err)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([1, 2], "must be a JSON object"),
        ({"mcpServers": ["a"]}, "must map server names"),
        ({"srv": "npx server"}, "entry must be an object"),
        ({"srv": {"args": []}}, "no `command` (stdio) or `url` (HTTP)"),
        ({"bad name!": {"command": "x"}}, "must be 1-64 characters"),
        ({"x" * 65: {"command": "x"}}, "must be 1-64 characters"),
    ],
)
def test_malformed_entries(data: Any, fragment: str) -> None:
    assert fragment in str(config_error(data))


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="used twice") as info:
        Bridge([StdioServer(name="a", command="x"), HttpServer(name="a", url="https://h.example/mcp")])
    assert (info.value.server, info.value.field) == ("a", "name")


def test_load_servers_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read MCP server config .*check the path"):
        load_servers(tmp_path / "absent.json")


def test_load_servers_invalid_json_gives_position(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {\n  "a": {"command": "x",}\n}}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not valid JSON \(line 2, column"):
        load_servers(path)


def test_config_error_is_a_value_error() -> None:
    assert isinstance(config_error({"srv": {}}), ValueError)


def test_roots_come_from_mcp_json_and_must_be_file_uris() -> None:
    [server] = parse_servers(
        {"mcpServers": {"files": {"command": "files-mcp", "roots": ["file:///srv/{user.team}"]}}}
    )
    assert server.roots == ("file:///srv/{user.team}",)
    with pytest.raises(ConfigError, match="field 'roots'.*absolute file URI"):
        parse_servers({"mcpServers": {"files": {"command": "files-mcp", "roots": ["https://example.com"]}}})
