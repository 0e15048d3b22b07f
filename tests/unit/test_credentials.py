"""Per-user credentials: applying them, from the environment and from the store; secrets never leak."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import httpx2
import pytest
from langgraph.store.memory import InMemoryStore

from mcpbridge import (
    Credentials,
    EnvCredentials,
    HttpServer,
    MemoryServer,
    ServerRefusedError,
    SseServer,
    StdioServer,
    StoreCredentials,
)
from mcpbridge.credentials import apply_credentials, encode_variable_part
from mcpbridge.scoping import RegisteredServers, Scoped, UserContext, UserServers

pytestmark = pytest.mark.anyio

SECRET = "sk-live-7f3a9c1e5b2d"
"""A token that must never show up in a repr, a message or a log record."""

NAMESPACE = "mcp_credentials"


def http(name: str = "gh", **options: Any) -> HttpServer:
    return HttpServer(name=name, url="https://93.184.216.34/mcp", **options)


def stdio(name: str = "files", **options: Any) -> StdioServer:
    return StdioServer(name=name, command="files-mcp", **options)


def sent_headers(server: HttpServer | SseServer) -> httpx2.Headers:
    """The headers the server's HTTP client would send, as httpx2 merges them."""
    return httpx2.Headers(server.request_headers())


def alice(store: InMemoryStore | None = None, **fields: Any) -> UserContext:
    return UserContext.from_user({"identity": "alice", **fields}, store)


def as_user(identity: str, store: InMemoryStore) -> UserContext:
    return UserContext.from_user({"identity": identity}, store)


class Secret(httpx2.Auth):
    """An ``httpx2.Auth`` holding a secret (like an OAuth provider would)."""

    def __init__(self, token: str) -> None:
        self.token = token


# --- Credentials and apply_credentials ---------------------------------------------------------------


def test_bearer() -> None:
    assert dict(Credentials.bearer("abc").headers) == {"Authorization": "Bearer abc"}


def test_credentials_repr_hides_every_secret() -> None:
    credentials = Credentials(headers={"Authorization": f"Bearer {SECRET}"}, env={"TOKEN": SECRET})
    assert SECRET not in repr(credentials)
    assert SECRET not in str(credentials)
    assert SECRET not in repr(Credentials(auth=Secret(SECRET)))


def test_no_credentials_keeps_the_server() -> None:
    server = http(bearer_token="deploy")
    assert apply_credentials(server, None) is server


def test_bearer_replaces_the_configured_bearer_token() -> None:
    server = http(bearer_token="deploy-token", headers={"Accept-Language": "en"})
    applied = apply_credentials(server, Credentials.bearer(SECRET))
    assert isinstance(applied, HttpServer)
    headers = sent_headers(applied)
    assert headers.get_list("authorization") == [f"Bearer {SECRET}"]
    assert headers["accept-language"] == "en"
    assert applied.bearer_token is None
    assert server.bearer_token is not None  # the configured entry is untouched


@pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION"])
def test_authorization_replaces_a_configured_header_whatever_its_case(name: str) -> None:
    server = http(headers={name: "Bearer deploy", "X-Trace": "1"})
    applied = apply_credentials(server, Credentials(headers={"authorization": f"Bearer {SECRET}"}))
    assert isinstance(applied, HttpServer)
    headers = sent_headers(applied)
    assert headers.get_list("authorization") == [f"Bearer {SECRET}"]
    assert headers["x-trace"] == "1"


def test_other_headers_are_added_and_keep_the_configured_token() -> None:
    server = http(bearer_token="deploy-token", headers={"X-Trace": "1"})
    applied = apply_credentials(server, Credentials(headers={"X-Api-Key": SECRET}))
    assert isinstance(applied, HttpServer)
    headers = sent_headers(applied)
    assert headers["x-api-key"] == SECRET
    assert headers["authorization"] == "Bearer deploy-token"
    assert headers["x-trace"] == "1"


def test_a_credential_header_overrides_a_configured_one_whatever_its_case() -> None:
    # Regression: a configured 'x-api-key' used to be sent beside the user's 'X-Api-Key'.
    server = http(headers={"x-api-key": "deployment-key", "X-Trace": "1"}, bearer_token="deploy-token")
    applied = apply_credentials(server, Credentials(headers={"X-Api-Key": "user-key"}))
    assert isinstance(applied, HttpServer)
    headers = sent_headers(applied)
    assert headers.get_list("x-api-key") == ["user-key"]
    assert headers["x-trace"] == "1"
    assert headers["authorization"] == "Bearer deploy-token"


def test_auth_replaces_the_bearer_token() -> None:
    auth = Secret(SECRET)
    server = http(bearer_token="deploy-token")
    applied = apply_credentials(server, Credentials(auth=auth))
    assert isinstance(applied, HttpServer)
    assert applied.auth is auth
    assert applied.bearer_token is None
    assert "authorization" not in sent_headers(applied)


def test_sse_servers_get_headers_too() -> None:
    server = SseServer(name="old", url="https://93.184.216.34/sse")
    applied = apply_credentials(server, Credentials.bearer(SECRET))
    assert isinstance(applied, SseServer)
    assert sent_headers(applied)["authorization"] == f"Bearer {SECRET}"


def test_stdio_env_is_merged() -> None:
    server = stdio(env={"A": "1", "TOKEN": "old"})
    applied = apply_credentials(server, Credentials(env={"TOKEN": SECRET, "B": "2"}))
    assert isinstance(applied, StdioServer)
    assert dict(applied.env or {}) == {"A": "1", "TOKEN": SECRET, "B": "2"}
    assert dict(server.env or {}) == {"A": "1", "TOKEN": "old"}


def test_stdio_without_env_credentials_is_unchanged() -> None:
    server = stdio()
    assert apply_credentials(server, Credentials.bearer(SECRET)) is server


def test_memory_servers_take_no_credentials() -> None:
    server = MemoryServer(name="m", server=object())
    assert apply_credentials(server, Credentials.bearer(SECRET)) is server


def test_applied_configs_do_not_show_the_secret() -> None:
    configs = [
        apply_credentials(http(), Credentials.bearer(SECRET)),
        apply_credentials(http(), Credentials(headers={"X-Api-Key": SECRET})),
        apply_credentials(http(), Credentials(auth=Secret(SECRET))),
        apply_credentials(SseServer(name="s", url="https://93.184.216.34/sse"), Credentials.bearer(SECRET)),
        apply_credentials(stdio(), Credentials(env={"TOKEN": SECRET})),
    ]
    for config in configs:
        assert SECRET not in repr(config)
        assert SECRET not in str(config)


# --- EnvCredentials ------------------------------------------------------------------------------------


async def test_env_credentials_per_server() -> None:
    provider = EnvCredentials({"gh": "GITHUB_TOKEN"}, environ={"GITHUB_TOKEN": SECRET})
    credentials = await provider(alice(), http("gh"))
    assert credentials is not None
    assert dict(credentials.headers) == {"Authorization": f"Bearer {SECRET}"}
    assert await provider(alice(), http("other")) is None  # servers not listed need nothing


async def test_env_credentials_per_user() -> None:
    environ = {"GITHUB_TOKEN_ALICE": "alice-token", "GITHUB_TOKEN_BOB_40EXAMPLE_2ECOM": "bob-token"}
    provider = EnvCredentials({"gh": "GITHUB_TOKEN_{user.identity}"}, environ=environ)
    mine = await provider(alice(), http("gh"))
    bobs = await provider(UserContext.from_user({"identity": "bob@example.com"}), http("gh"))
    assert mine is not None and bobs is not None
    assert dict(mine.headers) == {"Authorization": "Bearer alice-token"}
    assert dict(bobs.headers) == {"Authorization": "Bearer bob-token"}  # encoded into a valid name


async def test_env_credentials_names_never_collide() -> None:
    """Regression: names were folded (upper-cased, punctuation to `_`): distinct users shared a secret."""
    identities = [
        "john.doe@example.com",
        "JOHN-DOE@EXAMPLE.COM",
        "john_doe@example_com",
        "John.Doe@Example.com",
    ]
    environ = {"TOKEN_" + encode_variable_part("john.doe@example.com"): "johns-token"}
    provider = EnvCredentials({"gh": "TOKEN_{user.identity}"}, environ=environ, required=False)
    found = [await provider(UserContext.from_user({"identity": i}), http("gh")) for i in identities]
    assert [c is not None for c in found] == [True, False, False, False]
    assert len({encode_variable_part(i) for i in identities}) == len(identities)
    for name in map(encode_variable_part, identities):
        assert re.fullmatch(r"[A-Z0-9_]+", name)


async def test_env_credentials_from_other_user_fields() -> None:
    provider = EnvCredentials({"gh": "TOKEN_{user.org}"}, environ={"TOKEN_ACME_2DINC": SECRET})
    credentials = await provider(alice(org="acme-inc"), http("gh"))
    assert credentials is not None
    assert dict(credentials.headers) == {"Authorization": f"Bearer {SECRET}"}


async def test_env_credentials_read_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPBRIDGE_TEST_TOKEN", SECRET)
    credentials = await EnvCredentials({"gh": "MCPBRIDGE_TEST_TOKEN"})(alice(), http("gh"))
    assert credentials is not None
    assert dict(credentials.headers) == {"Authorization": f"Bearer {SECRET}"}


async def test_env_credentials_missing_variable_is_refused_naming_it() -> None:
    provider = EnvCredentials({"gh": "GITHUB_TOKEN_{user.identity}"}, environ={"GITHUB_TOKEN_BOB": "x"})
    with pytest.raises(ServerRefusedError) as caught:
        await provider(alice(), http("gh"))
    assert caught.value.server == "gh"
    message = str(caught.value)
    assert "GITHUB_TOKEN_ALICE" in message
    assert "'alice'" in message


async def test_env_credentials_empty_variable_counts_as_missing() -> None:
    provider = EnvCredentials({"gh": "GITHUB_TOKEN"}, environ={"GITHUB_TOKEN": ""})
    with pytest.raises(ServerRefusedError, match="GITHUB_TOKEN"):
        await provider(alice(), http("gh"))


async def test_env_credentials_not_required() -> None:
    provider = EnvCredentials({"gh": "GITHUB_TOKEN"}, required=False, environ={})
    assert await provider(alice(), http("gh")) is None


async def test_env_credentials_template_the_user_lacks_is_refused() -> None:
    provider = EnvCredentials({"gh": "TOKEN_{user.org}"}, required=False, environ={})
    with pytest.raises(ServerRefusedError) as caught:
        await provider(alice(), http("gh"))
    assert "'org'" in str(caught.value)
    with pytest.raises(ServerRefusedError, match="anonymous"):
        await EnvCredentials({"gh": "T_{user.identity}"}, environ={})(UserContext(), http("gh"))


async def test_env_credentials_for_stdio_are_an_environment_variable() -> None:
    provider = EnvCredentials({"files": "FILES_TOKEN_{user.identity}"}, environ={"FILES_TOKEN_ALICE": SECRET})
    credentials = await provider(alice(), stdio("files"))
    assert credentials is not None
    assert dict(credentials.env) == {"FILES_TOKEN_ALICE": SECRET}
    assert dict(credentials.headers) == {}


async def test_env_credentials_custom_header_and_scheme() -> None:
    bare = EnvCredentials({"gh": "KEY"}, header="X-Api-Key", scheme=None, environ={"KEY": SECRET})
    credentials = await bare(alice(), http("gh"))
    assert credentials is not None
    assert dict(credentials.headers) == {"X-Api-Key": SECRET}
    token = EnvCredentials({"gh": "KEY"}, scheme="Token", environ={"KEY": SECRET})
    credentials = await token(alice(), http("gh"))
    assert credentials is not None
    assert dict(credentials.headers) == {"Authorization": f"Token {SECRET}"}


# --- StoreCredentials ----------------------------------------------------------------------------------


async def put(store: InMemoryStore, identity: str, server: str, value: Any) -> None:
    await store.aput((identity, NAMESPACE), server, value)


async def test_store_bearer_token() -> None:
    store = InMemoryStore()
    await put(store, "alice", "gh", {"bearer_token": SECRET})
    credentials = await StoreCredentials()(alice(store), http("gh"))
    assert credentials is not None
    assert dict(credentials.headers) == {"Authorization": f"Bearer {SECRET}"}


async def test_store_headers_and_env() -> None:
    store = InMemoryStore()
    await put(store, "alice", "gh", {"headers": {"X-Api-Key": SECRET, "X-Num": 7}})
    await put(store, "alice", "files", {"env": {"FILES_TOKEN": SECRET}})
    gh = await StoreCredentials()(alice(store), http("gh"))
    files = await StoreCredentials()(alice(store), stdio("files"))
    assert gh is not None and files is not None
    assert dict(gh.headers) == {"X-Api-Key": SECRET, "X-Num": "7"}
    assert dict(files.env) == {"FILES_TOKEN": SECRET}


async def test_store_bearer_token_and_headers_together() -> None:
    store = InMemoryStore()
    await put(store, "alice", "gh", {"bearer_token": SECRET, "headers": {"X-Org": "acme"}})
    credentials = await StoreCredentials()(alice(store), http("gh"))
    assert credentials is not None
    assert dict(credentials.headers) == {"Authorization": f"Bearer {SECRET}", "X-Org": "acme"}


async def test_store_missing_credentials_are_refused_saying_where_to_put_them() -> None:
    store = InMemoryStore()
    with pytest.raises(ServerRefusedError) as caught:
        await StoreCredentials()(alice(store), http("gh"))
    assert caught.value.server == "gh"
    message = str(caught.value)
    assert "'alice'" in message
    assert "bearer_token" in message
    assert f"['alice', '{NAMESPACE}']" in message
    assert "key 'gh'" in message


async def test_store_missing_credentials_not_required() -> None:
    assert await StoreCredentials(required=False)(alice(InMemoryStore()), http("gh")) is None


async def test_store_custom_namespace() -> None:
    store = InMemoryStore()
    await store.aput(("alice", "tokens", "mcp"), "gh", {"bearer_token": SECRET})
    provider = StoreCredentials(("tokens", "mcp"))
    assert provider.namespace_for(alice()) == ("alice", "tokens", "mcp")
    credentials = await provider(alice(store), http("gh"))
    assert credentials is not None
    assert dict(credentials.headers) == {"Authorization": f"Bearer {SECRET}"}


async def test_store_credentials_only_for_listed_servers() -> None:
    provider = StoreCredentials(servers=["gh"])
    assert await provider(alice(InMemoryStore()), http("search")) is None  # not asked for
    with pytest.raises(ServerRefusedError):
        await provider(alice(InMemoryStore()), http("gh"))


async def test_store_refuses_anonymous_runs_and_runs_without_a_store() -> None:
    store = InMemoryStore()
    with pytest.raises(ServerRefusedError, match="anonymous"):
        await StoreCredentials()(UserContext(store=store), http("gh"))
    with pytest.raises(ServerRefusedError, match="no authenticated user or no store"):
        await StoreCredentials()(alice(None), http("gh"))
    assert await StoreCredentials(required=False)(UserContext(store=store), http("gh")) is None


@pytest.mark.parametrize(
    "value",
    [
        {"token": SECRET},
        {"bearer_token": ""},
        {"bearer_token": 12345},
        {"headers": "Authorization: x"},
        {"headers": {}},
        {},
    ],
)
async def test_store_malformed_values_are_refused(value: dict[str, Any]) -> None:
    store = InMemoryStore()
    await put(store, "alice", "gh", value)
    with pytest.raises(ServerRefusedError) as caught:
        await StoreCredentials()(alice(store), http("gh"))
    assert caught.value.server == "gh"
    assert SECRET not in str(caught.value)


async def test_store_malformed_value_is_refused_even_when_not_required() -> None:
    """Credentials stored wrong are a mistake to report, not a reason to connect without them."""
    store = InMemoryStore()
    await put(store, "alice", "gh", {"token": SECRET})
    with pytest.raises(ServerRefusedError, match="bearer_token"):
        await StoreCredentials(required=False)(alice(store), http("gh"))


async def test_store_header_with_a_line_break_is_refused() -> None:
    store = InMemoryStore()
    await put(store, "alice", "gh", {"headers": {"X-Api-Key": f"{SECRET}\r\nX-Admin: 1"}})
    with pytest.raises(ServerRefusedError, match="line break") as caught:
        await StoreCredentials()(alice(store), http("gh"))
    assert SECRET not in str(caught.value)


async def test_each_user_gets_only_their_own_credentials() -> None:
    store = InMemoryStore()
    await put(store, "alice", "gh", {"bearer_token": "alice-token"})
    await put(store, "bob", "gh", {"bearer_token": "bob-token"})
    provider = StoreCredentials()
    mine = await provider(as_user("alice", store), http("gh"))
    bobs = await provider(as_user("bob", store), http("gh"))
    assert mine is not None and bobs is not None
    assert dict(mine.headers) == {"Authorization": "Bearer alice-token"}
    assert dict(bobs.headers) == {"Authorization": "Bearer bob-token"}
    with pytest.raises(ServerRefusedError):
        await provider(as_user("carol", store), http("gh"))  # nobody else's token is used


async def test_a_revoked_token_takes_effect_at_once() -> None:
    store = InMemoryStore()
    provider = StoreCredentials()
    await put(store, "alice", "gh", {"bearer_token": "old"})
    first = await provider(alice(store), http("gh"))
    await put(store, "alice", "gh", {"bearer_token": "new"})
    second = await provider(alice(store), http("gh"))
    await store.adelete(("alice", NAMESPACE), "gh")
    assert first is not None and second is not None
    assert dict(first.headers)["Authorization"] == "Bearer old"
    assert dict(second.headers)["Authorization"] == "Bearer new"
    with pytest.raises(ServerRefusedError):
        await provider(alice(store), http("gh"))


async def test_an_identity_with_a_dot_does_not_break_the_selection() -> None:
    """Regression: langgraph stores refuse namespace labels with '.', which used to fail the whole run."""
    store = InMemoryStore()
    servers = UserServers(
        [Scoped(http("gh", required=False), credentials=StoreCredentials()), http("open")],
        registered=RegisteredServers(),
    )
    selection = await servers.select(UserContext.from_user({"identity": "alice@example.com"}, store))
    assert [s.name for s in selection.servers] == ["open"]
    refused = {f.server: f for f in selection.refused}
    assert sorted(refused) == ["gh", "registered servers"]
    assert "could not be read from the store" in refused["gh"].reason
    assert refused["gh"].required is False
    assert "could not be read" in refused["registered servers"].reason


async def test_a_failing_store_refuses_the_server_with_the_reason() -> None:
    class BrokenStore(InMemoryStore):
        async def aget(self, *args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("store is down")

    with pytest.raises(ServerRefusedError, match="could not be read from the store") as caught:
        await StoreCredentials()(alice(BrokenStore()), http("gh"))
    assert "ConnectionError" in str(caught.value)
    assert caught.value.server == "gh"


# --- secrets in messages and logs ------------------------------------------------------------------


async def test_secrets_stay_out_of_selections_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    store = InMemoryStore()
    await put(store, "alice", "gh", {"bearer_token": SECRET})
    await put(store, "alice", "bad", {"token": SECRET})
    await put(store, "alice", "crlf", {"headers": {"X-Key": f"{SECRET}\n"}})
    servers = UserServers(
        [
            http("gh"),
            http("bad", required=False),
            http("crlf", required=False),
            http("missing", required=False),
            Scoped(
                http("env", required=False),
                credentials=EnvCredentials({"env": "T_{user.identity}"}, environ={"T_ALICE": SECRET}),
            ),
            Scoped(
                stdio("files"),
                credentials=EnvCredentials({"files": "FILES"}, environ={"FILES": SECRET}),
            ),
        ],
        credentials=StoreCredentials(),
    )
    with caplog.at_level(logging.DEBUG):
        selection = await servers.select(alice(store))

    applied: Mapping[str, Any] = {s.name: s for s in selection.servers}
    assert sorted(applied) == ["env", "files", "gh"]
    assert sent_headers(applied["gh"])["authorization"] == f"Bearer {SECRET}"  # the secret is used...
    assert sorted(f.server for f in selection.refused) == ["bad", "crlf", "missing"]
    assert len(caplog.records) >= 3  # the refusals were logged
    # ... and shown nowhere.
    shown = [repr(selection), str(selection), *(r.getMessage() for r in caplog.records)]
    shown += [repr(s) for s in selection.servers] + [str(s) for s in selection.servers]
    shown += [f.reason for f in selection.refused]
    for text in shown:
        assert SECRET not in text
