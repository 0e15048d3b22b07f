"""Server configuration models: secrets stay out of reprs, errors and logs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from mcpbridge import (
    ConfigError,
    HttpServer,
    MemoryServer,
    SseServer,
    StdioServer,
    parse_servers,
)

SECRETS = ("s3cr3t-bearer", "s3cr3t-header", "s3cr3t-env", "s3cr3t-url")


def config_error(data: Any, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_servers(data, environ=environ or {})
    return info.value


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# --- secrets --------------------------------------------------------------------------------------


def secret_servers() -> list[HttpServer | SseServer | StdioServer]:
    return [
        HttpServer(
            name="h",
            url="https://h.example/mcp",
            bearer_token=SecretStr("s3cr3t-bearer"),
            headers={"X-Api-Key": "s3cr3t-header"},
        ),
        SseServer(name="s", url="https://h.example/sse", headers={"Authorization": "Bearer s3cr3t-header"}),
        StdioServer(name="p", command="x", env={"TOKEN": "s3cr3t-env"}),
    ]


@pytest.mark.parametrize("server", secret_servers(), ids=lambda s: s.transport)
def test_secrets_not_in_repr_or_str(server: HttpServer | SseServer | StdioServer) -> None:
    assert_no_secret(repr(server))
    assert_no_secret(str(server))
    assert_no_secret(repr([server]))


def test_secrets_still_reach_the_request() -> None:
    http = secret_servers()[0]
    assert isinstance(http, HttpServer)
    assert http.request_headers() == {"X-Api-Key": "s3cr3t-header", "Authorization": "Bearer s3cr3t-bearer"}


def test_memory_server_repr_hides_the_server_object() -> None:
    class Loud:
        def __repr__(self) -> str:
            return "s3cr3t-env"

    assert_no_secret(repr(MemoryServer(name="m", server=Loud())))


@pytest.mark.parametrize(
    "entry",
    [
        # another field is wrong while secrets sit next to it
        {
            "url": "https://h.example/mcp",
            "bearerToken": "${TOK}",
            "headers": {"K": "${HDR}"},
            "httpTimeout": "x",
        },
        {"command": "x", "env": {"TOKEN": "${ENV}"}, "comand": "y"},
        {"url": "https://h.example/mcp", "headers": {"X-Key": "s3cr3t-header", "X-Bad": 5}},
        # both forms of credentials
        {
            "url": "https://h.example/mcp",
            "bearerToken": "s3cr3t-bearer",
            "headers": {"Authorization": "${HDR}"},
        },
        # missing variable inside a secret value
        {"url": "https://h.example/mcp", "headers": {"Authorization": "Bearer s3cr3t-header${MISSING}"}},
    ],
)
def test_secrets_not_in_config_errors(entry: dict[str, Any]) -> None:
    environ = {"TOK": "s3cr3t-bearer", "HDR": "s3cr3t-header", "ENV": "s3cr3t-env"}
    err = config_error({"srv": entry}, environ)
    assert_no_secret(str(err))
    assert_no_secret(repr(err))


def test_credentials_conflict_is_reported() -> None:
    err = config_error(
        {"srv": {"url": "https://h.example/mcp", "bearerToken": "t", "headers": {"authorization": "x"}}}
    )
    assert "either `bearer_token` or an `Authorization` header" in str(err)


def test_credentials_conflict_names_the_credential_field() -> None:
    err = config_error(
        {"srv": {"url": "https://h.example/mcp", "bearerToken": "t", "headers": {"authorization": "x"}}}
    )
    assert err.field in {"bearer_token", "headers"}
    assert "'transport'" not in str(err)


def test_secrets_not_in_validation_errors_of_direct_construction() -> None:
    with pytest.raises(ValidationError) as info:
        HttpServer(
            name="h",
            url="https://h.example/mcp",
            bearer_token=SecretStr("s3cr3t-bearer"),
            headers={"Authorization": "Bearer s3cr3t-header"},
        )
    assert_no_secret(str(info.value))


def test_url_credentials_not_in_repr() -> None:
    server = HttpServer(name="h", url="https://user:s3cr3t-url@h.example/mcp?token=s3cr3t-url")
    assert_no_secret(repr(server))


def test_stdio_args_take_a_list_or_a_tuple_and_keep_a_tuple() -> None:
    listed = StdioServer(name="s", command="python", args=["-m", "x"])
    assert listed.args == ("-m", "x") and isinstance(listed.args, tuple)
    assert listed == StdioServer(name="s", command="python", args=("-m", "x"))
