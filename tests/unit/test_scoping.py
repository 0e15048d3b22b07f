"""User-scoped servers: which servers, credentials and tools each run gets, through Bridge and factories."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from langchain_core.messages import HumanMessage
from langgraph.store.memory import InMemoryStore
from langgraph_sdk.runtime import ServerRuntime
from mcp.server.mcpserver import MCPServer

from mcpbridge import (
    Bridge,
    ConfigError,
    ConnectError,
    Credentials,
    EnvCredentials,
    HttpServer,
    MemoryServer,
    ServerConfig,
    ServerFailure,
    SseServer,
    StdioServer,
    StoreCredentials,
    UrlPolicy,
    agent_factory,
)
from mcpbridge._compat import RUN_ACCESS, server_runtime
from mcpbridge.events import SKIPPED_EVENT
from mcpbridge.scoping import (
    RegisteredServers,
    Scoped,
    Selection,
    ToolFilter,
    UserContext,
    UserServers,
    has_permission,
    user_in,
)
from mcpbridge.testing import OfflineChatModel
from mcpbridge.topology import topology

from ._helpers import Protocol, call, entry_error, tools_by_name

pytestmark = pytest.mark.anyio

PUBLIC_URL = "https://93.184.216.34/mcp"
"""A public address literal: accepted by the default URL policy; never connected to here."""


def http(name: str, url: str = PUBLIC_URL, **options: Any) -> HttpServer:
    return HttpServer(name=name, url=url, **options)


def as_user(
    identity: str, *permissions: str, store: InMemoryStore | None = None, **fields: Any
) -> UserContext:
    return UserContext.from_user({"identity": identity, "permissions": list(permissions), **fields}, store)


def names(servers: Sequence[ServerConfig]) -> list[str]:
    return [s.name for s in servers]


def refusals(selection: Selection) -> dict[str, ServerFailure]:
    return {f.server: f for f in selection.refused}


@dataclass
class Recorder:
    """A credential provider that records every lookup and gives a fixed bearer token."""

    token: str
    seen: list[tuple[str | None, str]] = field(default_factory=list[tuple[str | None, str]])

    async def __call__(self, user: UserContext, server: ServerConfig) -> Credentials | None:
        self.seen.append((user.identity, server.name))
        return Credentials.bearer(self.token)


def bearer_of(server: ServerConfig) -> str | None:
    assert isinstance(server, (HttpServer, SseServer))
    return server.request_headers().get("Authorization")


# --- UserServers.select --------------------------------------------------------------------------


async def test_entries_are_chosen_by_permission_and_rule() -> None:
    servers = UserServers(
        [
            http("everyone"),
            Scoped(http("github"), permissions=["mcp:github"]),
            Scoped(http("admin"), permissions=["mcp:github", "admin"]),
            Scoped(http("alice-only"), when=user_in("alice")),
            Scoped(http("both"), permissions=["mcp:github"], when=user_in("bob")),
        ]
    )
    alice = await servers.select(as_user("alice", "mcp:github"))
    bob = await servers.select(as_user("bob", "mcp:github", "admin"))
    carol = await servers.select(as_user("carol"))
    anonymous = await servers.select(UserContext())
    assert names(alice.servers) == ["everyone", "github", "alice-only"]
    assert names(bob.servers) == ["everyone", "github", "admin", "both"]
    assert names(carol.servers) == ["everyone"]
    assert names(anonymous.servers) == ["everyone"]
    # Entries a user does not get are not refusals: they were never theirs.
    assert alice.refused == bob.refused == carol.refused == ()


async def test_templates_are_filled_for_each_user() -> None:
    servers = UserServers([http("notes", url="https://93.184.216.34/{user.identity}/mcp")])
    alice, bob = await servers.select(as_user("alice")), await servers.select(as_user("bob"))
    assert isinstance(alice.servers[0], HttpServer) and isinstance(bob.servers[0], HttpServer)
    assert alice.servers[0].url == "https://93.184.216.34/alice/mcp"
    assert bob.servers[0].url == "https://93.184.216.34/bob/mcp"


async def test_default_and_per_entry_credentials() -> None:
    default, own = Recorder("default-token"), Recorder("own-token")
    servers = UserServers(
        [http("a"), Scoped(http("b"), credentials=own), Scoped(http("c", bearer_token="configured"))],
        credentials=default,
    )
    selection = await servers.select(as_user("alice"))
    by_name = {s.name: s for s in selection.servers}
    assert bearer_of(by_name["a"]) == "Bearer default-token"
    assert bearer_of(by_name["b"]) == "Bearer own-token"
    assert (
        bearer_of(by_name["c"]) == "Bearer default-token"
    )  # the user's credentials replace the deployment's
    assert sorted(default.seen) == [("alice", "a"), ("alice", "c")]
    assert own.seen == [("alice", "b")]


async def test_credential_providers_see_the_rendered_server() -> None:
    seen: list[str] = []

    async def provider(user: UserContext, server: ServerConfig) -> Credentials | None:
        assert isinstance(server, HttpServer)
        seen.append(server.url)
        return None

    servers = UserServers([http("n", url="https://93.184.216.34/{user.identity}")], credentials=provider)
    await servers.select(as_user("alice"))
    assert seen == ["https://93.184.216.34/alice"]


async def test_refusals_are_collected_with_reasons_and_the_required_flag() -> None:
    store = InMemoryStore()
    servers = UserServers(
        [
            http("ok"),
            http("no-token", required=False),
            http("must-have-token"),
            http("no-org", url="https://93.184.216.34/{user.org}/mcp", required=False),
            Scoped(http("env", required=False), credentials=EnvCredentials({"env": "NOPE"}, environ={})),
        ],
        credentials=StoreCredentials(servers=["no-token", "must-have-token"]),
    )
    selection = await servers.select(as_user("alice", store=store))
    assert names(selection.servers) == ["ok"]
    refused = refusals(selection)
    assert sorted(refused) == ["env", "must-have-token", "no-org", "no-token"]
    assert [f.server for f in selection.refused] == sorted(refused)  # in a stable order
    assert refused["must-have-token"].required is True
    assert refused["no-token"].required is False
    assert "no credentials stored for user 'alice'" in refused["no-token"].reason
    assert "{user.org}" in refused["no-org"].reason
    assert "NOPE" in refused["env"].reason
    # The reason is the message without the "MCP server 'x': " prefix the report adds itself.
    assert not refused["no-token"].reason.startswith("MCP server")


async def test_refusals_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    servers = UserServers([http("gh", required=False)], credentials=StoreCredentials())
    with caplog.at_level(logging.WARNING, logger="mcpbridge"):
        await servers.select(as_user("alice", store=InMemoryStore()))
    [record] = [r for r in caplog.records if r.name == "mcpbridge"]
    assert "'gh'" in record.getMessage() and "user 'alice'" in record.getMessage()


async def test_duplicate_names_are_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        UserServers(
            [Scoped(http("gh"), permissions=["a"]), Scoped(http("gh", url="https://93.184.216.35/mcp"))]
        )
    assert caught.value.field == "name"
    assert "['gh']" in str(caught.value)


async def test_a_rule_error_is_not_swallowed() -> None:
    def broken(user: UserContext) -> bool:
        raise LookupError("rule bug")

    with pytest.raises(LookupError, match="rule bug"):
        await UserServers([Scoped(http("a"), when=broken)]).select(as_user("alice"))


# --- RegisteredServers ---------------------------------------------------------------------------------

SERVERS_NS = "mcp_servers"


async def register(store: InMemoryStore, identity: str, name: str, value: Any) -> None:
    await store.aput((identity, SERVERS_NS), name, value)


async def test_a_registered_public_https_server_is_accepted_and_optional() -> None:
    store = InMemoryStore()
    await register(
        store,
        "alice",
        "notes",
        {"url": PUBLIC_URL, "bearer_token": "tok", "prefix": "notes", "include_tools": ["read_*"]},
    )
    await register(store, "alice", "legacy", {"url": "https://93.184.216.34/sse", "transport": "sse"})
    registered = RegisteredServers(connect_timeout=3, call_timeout=7)
    servers, refused = await registered.load(as_user("alice", store=store))
    assert refused == []
    by_name = {s.name: s for s in servers}
    notes, legacy = by_name["notes"], by_name["legacy"]
    assert isinstance(notes, HttpServer) and isinstance(legacy, SseServer)
    assert notes.required is False and legacy.required is False
    assert (notes.connect_timeout, notes.call_timeout) == (3, 7)
    assert notes.prefix == "notes" and notes.include_tools == ("read_*",)
    assert bearer_of(notes) == "Bearer tok"


async def test_a_registered_server_cannot_be_made_required_or_slower() -> None:
    store = InMemoryStore()
    await register(store, "alice", "notes", {"url": PUBLIC_URL, "required": True})
    await register(store, "alice", "slow", {"url": PUBLIC_URL, "connect_timeout": 3600})
    servers, refused = await RegisteredServers().load(as_user("alice", store=store))
    assert servers == []
    assert sorted(f.server for f in refused) == ["notes", "slow"]
    assert all("unknown fields" in f.reason for f in refused)


async def test_registered_servers_get_the_deployments_stricter_bounds() -> None:
    store = InMemoryStore()
    await register(store, "alice", "notes", {"url": PUBLIC_URL})
    greedy_entry = {"url": PUBLIC_URL, "max_tools": 100_000, "maxLogLevel": "critical"}
    await register(store, "alice", "greedy", greedy_entry)
    [notes], refused = await RegisteredServers().load(as_user("alice", store=store))
    assert (notes.max_tools, notes.max_result_chars, notes.max_description_chars) == (64, 50_000, 2_000)
    assert (notes.max_progress_per_second, notes.max_log_level) == (2, "info")
    [greedy] = refused
    assert greedy.server == "greedy" and "unknown fields ['maxLogLevel', 'max_tools']" in greedy.reason

    [own], _ = await RegisteredServers(max_tools=8, max_log_level="debug").load(as_user("alice", store=store))
    assert (own.max_tools, own.max_log_level) == (8, "debug")


def test_a_bad_registered_bound_fails_at_construction() -> None:
    with pytest.raises(ConfigError, match="max_tools"):
        RegisteredServers(max_tools=0)


async def test_loopback_is_refused_by_default_and_allowed_by_policy() -> None:
    store = InMemoryStore()
    await register(store, "alice", "local", {"url": "http://127.0.0.1:8765/mcp"})
    user = as_user("alice", store=store)
    servers, refused = await RegisteredServers().load(user)
    assert servers == []
    [failure] = refused
    assert failure.server == "local" and failure.required is False
    assert "http://" in failure.reason
    servers, refused = await RegisteredServers(policy=UrlPolicy(allow=["127.0.0.1:8765"])).load(user)
    assert refused == []
    assert [(s.name, getattr(s, "url", None)) for s in servers] == [("local", "http://127.0.0.1:8765/mcp")]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"command": "rm", "args": ["-rf", "/"]}, "only HTTP servers"),
        ({"url": PUBLIC_URL, "command": "x"}, "only HTTP servers"),
        ({"url": PUBLIC_URL, "env": {"A": "1"}}, "unknown fields ['env']"),
        ({"url": PUBLIC_URL, "cwd": "/"}, "unknown fields ['cwd']"),
        ({"url": PUBLIC_URL, "transport": "stdio"}, "transport 'stdio' cannot be registered"),
        ({"url": PUBLIC_URL, "type": "memory"}, "transport 'memory' cannot be registered"),
        ({"url": "not a url"}, "url"),
        ({"url": "ftp://93.184.216.34/"}, "url"),
        ({"url": "https://10.0.0.1/mcp"}, "private address"),
        ({"url": "https://169.254.169.254/latest"}, "link-local"),
        ({"url": "https://localhost/mcp"}, "does not resolve to public addresses"),
        ({"url": "https://metadata.google.internal/"}, "cloud metadata"),
        ({"url": "https://u:p@93.184.216.34/mcp"}, "credentials"),
        ({"headers": {"Authorization": "y"}}, "url"),
        ({"url": PUBLIC_URL, "bearer_token": "t", "headers": {"Authorization": "x"}}, "not both"),
    ],
)
async def test_bad_registrations_are_refused_with_a_reason(value: Any, reason: str) -> None:
    store = InMemoryStore()
    await register(store, "alice", "mine", value)
    await register(store, "alice", "good", {"url": PUBLIC_URL})
    with anyio.fail_after(10):
        servers, refused = await RegisteredServers().load(as_user("alice", store=store))
    assert names(servers) == ["good"]  # one bad entry does not spoil the others
    [failure] = refused
    assert failure.server == "mine"
    assert failure.required is False
    assert reason in failure.reason


@pytest.mark.parametrize(
    ("headers", "rule"),
    [
        ({"Host": "metadata.internal"}, "never set from a user's values"),
        ({"mcp-session-id": "s"}, "never set from a user's values"),
        ({"Mcpbridge-Identity": "forged"}, "never set from a user's values"),
        ({"X-Forwarded-For": "10.0.0.1"}, "never set from a user's values"),
        ({"Transfer-Encoding": "chunked"}, "never set from a user's values"),
        ({"X-Api-Key": "k"}, "not a name the deployment lets users set"),
        ({"Authorization": "Bearer a\r\nX-Admin: 1"}, "line break"),
    ],
)
async def test_registered_headers_are_limited_to_declared_names(headers: dict[str, str], rule: str) -> None:
    store = InMemoryStore()
    await register(store, "alice", "notes", {"url": PUBLIC_URL, "headers": headers})
    servers, refused = await RegisteredServers().load(as_user("alice", store=store))
    assert servers == []
    [failure] = refused
    [name] = headers
    assert f"headers.{name}" in failure.reason and rule in failure.reason


async def test_declared_registered_headers_are_sent() -> None:
    store = InMemoryStore()
    await register(store, "alice", "a", {"url": PUBLIC_URL, "headers": {"Authorization": "Bearer t"}})
    await register(store, "alice", "b", {"url": PUBLIC_URL, "bearer_token": "t"})
    await register(store, "alice", "c", {"url": PUBLIC_URL, "headers": {"X-Api-Key": "k"}})
    servers, refused = await RegisteredServers().load(as_user("alice", store=store))
    assert names(servers) == ["a", "b"] and [f.server for f in refused] == ["c"]
    servers, refused = await RegisteredServers(user_headers=["Authorization", "X-Api-Key"]).load(
        as_user("alice", store=store)
    )
    assert names(servers) == ["a", "b", "c"] and refused == []
    assert [dict(getattr(s, "headers", {})) for s in servers][2] == {"X-Api-Key": "k"}


@pytest.mark.parametrize("header", ["Host", "Mcp-Protocol-Version", "Mcpbridge-Identity", "Bad Name"])
def test_refused_headers_cannot_be_declared_for_registered_servers(header: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RegisteredServers(user_headers=["Authorization", header])
    assert caught.value.field == "user_headers" and header in str(caught.value)


async def test_a_bad_server_name_is_refused() -> None:
    store = InMemoryStore()
    await register(store, "alice", "no spaces allowed", {"url": PUBLIC_URL})
    servers, refused = await RegisteredServers().load(as_user("alice", store=store))
    assert servers == []
    assert [f.server for f in refused] == ["no spaces allowed"]
    assert "name" in refused[0].reason


async def test_a_deployment_servers_name_cannot_be_registered() -> None:
    store = InMemoryStore()
    await register(store, "alice", "github", {"url": PUBLIC_URL})
    await register(store, "alice", "admin-only", {"url": PUBLIC_URL})
    servers = UserServers(
        [http("github", url="https://93.184.216.35/mcp"), Scoped(http("admin-only"), permissions=["admin"])],
        registered=RegisteredServers(),
    )
    selection = await servers.select(as_user("alice", store=store))
    # The deployment's github stays, and a server the user may not use cannot be taken over either.
    assert [(s.name, getattr(s, "url", None)) for s in selection.servers] == [
        ("github", "https://93.184.216.35/mcp")
    ]
    refused = refusals(selection)
    assert sorted(refused) == ["admin-only", "github"]
    assert all("belongs to a server of the deployment" in f.reason for f in refused.values())
    assert all(f.required is False for f in refused.values())


async def test_more_than_the_limit_is_refused() -> None:
    store = InMemoryStore()
    for name in ("a", "b", "c"):
        await register(store, "alice", name, {"url": PUBLIC_URL})
    servers, refused = await RegisteredServers(limit=2).load(as_user("alice", store=store))
    assert names(servers) == ["a", "b"]
    [failure] = refused
    assert failure.server == "c"
    assert "more than 2 registered servers" in failure.reason


async def test_every_server_over_the_limit_is_reported() -> None:
    store = InMemoryStore()
    for name in ("c", "a", "b", "e", "d"):
        await register(store, "alice", name, {"url": PUBLIC_URL})
    servers, refused = await RegisteredServers(limit=2).load(as_user("alice", store=store))
    # Regression: only limit+1 items were read, so the rest vanished without a word.
    assert names(servers) == ["a", "b"]  # the first by name, whatever the store's order
    assert sorted(f.server for f in refused) == ["c", "d", "e"]


async def test_registrations_beyond_a_store_page_are_all_accounted_for() -> None:
    store = InMemoryStore()
    keys = [f"s{i:03d}" for i in range(130)]
    for key in keys:
        await register(store, "alice", key, {"url": PUBLIC_URL})
    servers, refused = await RegisteredServers(limit=5).load(as_user("alice", store=store))
    assert names(servers) == keys[:5]
    assert sorted(f.server for f in refused) == keys[5:]


async def test_a_failing_credentials_provider_refuses_only_its_server() -> None:
    async def broken(user: UserContext, server: ServerConfig) -> Credentials | None:
        raise RuntimeError("vault unreachable")

    servers = UserServers([http("ok"), Scoped(http("vault", required=False), credentials=broken)])
    selection = await servers.select(as_user("alice"))
    assert names(selection.servers) == ["ok"]
    [failure] = selection.refused
    assert failure.server == "vault" and failure.required is False
    assert "RuntimeError" in failure.reason
    assert "vault unreachable" not in failure.reason  # the text may hold what the provider handled


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ConfigError) as caught:
        RegisteredServers(limit=0)
    assert caught.value.field == "limit"


async def test_each_user_sees_only_their_own_registered_servers() -> None:
    store = InMemoryStore()
    await register(store, "alice", "alice-notes", {"url": PUBLIC_URL})
    await register(store, "bob", "bob-notes", {"url": "https://93.184.216.35/mcp"})
    await store.aput(("alice", SERVERS_NS, "nested"), "deeper", {"url": PUBLIC_URL})
    servers = UserServers([http("shared")], registered=RegisteredServers())
    alice = await servers.select(as_user("alice", store=store))
    bob = await servers.select(as_user("bob", store=store))
    carol = await servers.select(as_user("carol", store=store))
    anonymous = await servers.select(UserContext(store=store))
    assert names(alice.servers) == ["shared", "alice-notes"]
    assert names(bob.servers) == ["shared", "bob-notes"]
    assert names(carol.servers) == names(anonymous.servers) == ["shared"]
    assert alice.refused == bob.refused == carol.refused == anonymous.refused == ()


async def test_registered_servers_get_no_deployment_credentials() -> None:
    store = InMemoryStore()
    await register(store, "alice", "notes", {"url": PUBLIC_URL})
    default = Recorder("deployment-token")
    selection = await UserServers([http("gh")], credentials=default, registered=RegisteredServers()).select(
        as_user("alice", store=store)
    )
    by_name = {s.name: s for s in selection.servers}
    assert bearer_of(by_name["gh"]) == "Bearer deployment-token"
    assert bearer_of(by_name["notes"]) is None  # a user's server never sees the deployment's tokens
    assert default.seen == [("alice", "gh")]


# --- tool filters ----------------------------------------------------------------------------------


async def test_tool_sources() -> None:
    fixed = ToolFilter(deny=["*_delete"])
    assert (await UserServers([], tools=fixed).select(as_user("alice"))).tool_filter is fixed
    assert (await UserServers([]).select(as_user("alice"))).tool_filter is None

    def sync(user: UserContext) -> ToolFilter | None:
        return None if "admin" in user.permissions else fixed

    async def asynchronous(user: UserContext) -> ToolFilter | None:
        await anyio.lowlevel.checkpoint()
        return ToolFilter(allow=[f"{user.identity}_*"])

    assert (await UserServers([], tools=sync).select(as_user("root", "admin"))).tool_filter is None
    assert (await UserServers([], tools=sync).select(as_user("alice"))).tool_filter is fixed
    selection = await UserServers([], tools=asynchronous).select(as_user("bob"))
    assert selection.tool_filter == ToolFilter(allow=["bob_*"])


# --- UserServers as a factory's source -------------------------------------------------------------------


@dataclass
class User:
    """A user as the Agent Server hands it to factories (``runtime.user``)."""

    identity: str
    permissions: Sequence[str] = ()
    is_authenticated: bool = True
    display_name: str = ""


def run_runtime(user: Any = None, store: InMemoryStore | None = None) -> ServerRuntime[Any]:
    return server_runtime(RUN_ACCESS, user=user, store=store or InMemoryStore())


def read_runtime(context: Any, user: Any = None) -> ServerRuntime[Any]:
    return server_runtime(context, user=user, store=InMemoryStore())


async def test_user_servers_read_the_runtimes_user_and_store() -> None:
    store = InMemoryStore()
    await store.aput(("alice", "mcp_credentials"), "gh", {"bearer_token": "alice-token"})
    servers = UserServers([Scoped(http("gh"), permissions=["mcp:github"])], credentials=StoreCredentials())
    selection = await servers(run_runtime(User("alice", ["mcp:github"]), store))
    assert [bearer_of(s) for s in selection.servers] == ["Bearer alice-token"]
    assert (await servers(run_runtime(User("bob"), store))).servers == ()
    assert (await servers(run_runtime(None, store))).servers == ()


# --- Bridge(refused=..., tool_filter=...) --------------------------------------------------------------


@dataclass
class Started:
    """Records which in-memory servers were started (their lifespan entered)."""

    names: list[str] = field(default_factory=list[str])

    def server(self, name: str, *tools: str) -> MCPServer:
        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncGenerator[None, None]:
            self.names.append(name)
            yield

        server = MCPServer(name, lifespan=lifespan)
        for tool in tools:
            server.add_tool(_answer(f"{name}:{tool}"), name=tool, description=f"The {tool} tool.")
        return server


def _answer(text: str) -> Any:
    def fn() -> str:
        return text

    return fn


async def test_a_refused_optional_server_is_a_failure_and_the_rest_connect(protocol: Protocol) -> None:
    started = Started()
    refused = ServerFailure(server="gh", reason="no credentials stored for user 'alice'", required=False)
    bridge = Bridge(
        [MemoryServer(name="files", server=started.server("files", "read"), protocol=protocol)],
        refused=[refused],
    )
    async with bridge:
        assert list(bridge.connected) == ["files"]
        assert bridge.failures == {"gh": refused}
        assert [t.name for t in bridge.tools] == ["read"]
        message = await call(tools_by_name(bridge)["read"], {})
    assert message.content == [{"type": "text", "text": "files:read"}]
    assert started.names == ["files"]


async def test_a_refused_optional_server_is_not_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    refused = ServerFailure(server="gh", reason="nope", required=False)
    with caplog.at_level(logging.WARNING, logger="mcpbridge"):
        async with Bridge([], refused=[refused]) as bridge:
            assert bridge.failures == {"gh": refused}
    assert "skipping optional MCP server 'gh'" not in caplog.text  # whoever refused it reported it


async def test_a_refused_required_server_fails_before_anything_connects() -> None:
    started = Started()
    refused = [
        ServerFailure(server="gh", reason="no credentials stored for user 'alice'", required=True),
        ServerFailure(server="notes", reason="its URL points at 10.0.0.1", required=False),
    ]
    bridge = Bridge(
        [
            MemoryServer(name="files", server=started.server("files", "read")),
            # Would fail loudly if it were started: the command does not exist.
            StdioServer(name="proc", command="/nonexistent-mcpbridge-test-dir/never-run"),
        ],
        refused=refused,
    )
    error = await entry_error(bridge)
    assert isinstance(error, ConnectError)
    assert started.names == []  # nothing was started
    assert "gh" in str(error) and "no credentials stored" in str(error)
    assert "never-run" not in str(error)  # the stdio server was not even tried
    assert set(error.failures) == {"gh", "notes"}
    assert error.failures["gh"].required is True
    assert bridge.connected == []
    with pytest.raises(RuntimeError, match="not open"):
        _ = bridge.tools


async def test_the_tool_filter_keeps_only_allowed_tools(protocol: Protocol) -> None:
    started = Started()
    servers = [
        MemoryServer(
            name="gh",
            server=started.server("gh", "list_repos", "delete_repo", "read_file"),
            prefix="gh",
            protocol=protocol,
        ),
        MemoryServer(
            name="files", server=started.server("files", "read_file", "write_file"), protocol=protocol
        ),
    ]
    # Matched against the final names: the prefixed gh_* and the plain (unprefixed) files tools.
    tool_filter = ToolFilter(allow=["gh_*", "read_file"], deny=["*delete*"])
    async with Bridge(servers, tool_filter=tool_filter) as bridge:
        tools = tools_by_name(bridge)
        assert sorted(tools) == ["gh_list_repos", "gh_read_file", "read_file"]
        assert tools["read_file"].metadata == {"mcp_server": "files", "mcp_tool": "read_file"}
        message = await call(tools["gh_read_file"], {})
    assert message.content == [{"type": "text", "text": "gh:read_file"}]


async def test_the_tool_filter_sees_conflict_prefixed_names() -> None:
    started = Started()
    servers = [
        MemoryServer(name="a", server=started.server("a", "search")),
        MemoryServer(name="b", server=started.server("b", "search")),
    ]
    async with Bridge(servers) as bridge:
        both = sorted(tools_by_name(bridge))
    assert len(both) == 2 and all(name.endswith("search") for name in both)
    async with Bridge(
        [
            MemoryServer(name="a", server=started.server("a", "search")),
            MemoryServer(name="b", server=started.server("b", "search")),
        ],
        tool_filter=ToolFilter(allow=[both[0]]),
    ) as bridge:
        assert sorted(tools_by_name(bridge)) == [both[0]]


# --- agent_factory with UserServers --------------------------------------------------------------------


def offered_tools(graph: Any) -> set[str]:
    node = graph.nodes["tools"].bound
    return set(getattr(node, "tools_by_name", {}))


class CountingUserServers(UserServers):
    """`UserServers` that counts how often a factory asks it for a run's servers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[str | None] = []

    async def select(self, user: UserContext) -> Selection:
        self.asked.append(user.identity)
        return await super().select(user)


async def test_agent_factory_gives_each_user_their_tools() -> None:
    started = Started()
    store = InMemoryStore()
    servers = CountingUserServers(
        [
            MemoryServer(name="common", server=started.server("common", "whoami")),
            Scoped(
                MemoryServer(
                    name="gh", server=started.server("gh", "list_repos", "delete_repo"), prefix="gh"
                ),
                permissions=["mcp:github"],
            ),
            Scoped(
                MemoryServer(name="admin", server=started.server("admin", "reset"), prefix="admin"),
                when=has_permission("admin"),
            ),
        ],
        tools=lambda user: None if "admin" in user.permissions else ToolFilter(deny=["*delete*"]),
    )
    factory = agent_factory(servers, OfflineChatModel())
    for context in ("threads.read", "threads.update", "assistants.read"):
        async with factory(read_runtime(context, User("alice", ["admin"]))) as read:
            assert offered_tools(read) == set()
    assert servers.asked == []  # read contexts never ask for servers
    assert started.names == []

    with anyio.fail_after(20):
        async with factory(run_runtime(User("alice", ["mcp:github"]), store)) as alice:
            alice_tools = offered_tools(alice)
        async with factory(run_runtime(User("bob", ["mcp:github", "admin"]), store)) as bob:
            bob_tools = offered_tools(bob)
            assert topology(bob) == topology(read)
        async with factory(run_runtime(None, store)) as anonymous:
            anonymous_tools = offered_tools(anonymous)
    assert servers.asked == ["alice", "bob", None]
    assert alice_tools == {"whoami", "gh_list_repos"}
    assert bob_tools == {"whoami", "gh_list_repos", "gh_delete_repo", "admin_reset"}
    assert anonymous_tools == {"whoami"}


async def test_a_refused_optional_server_is_reported_in_the_custom_stream() -> None:
    started = Started()
    servers = UserServers(
        [
            MemoryServer(name="common", server=started.server("common", "whoami")),
            Scoped(
                MemoryServer(name="gh", server=started.server("gh", "list_repos"), required=False),
                credentials=StoreCredentials(),
            ),
        ]
    )
    factory = agent_factory(servers, OfflineChatModel())
    events: list[Any] = []
    async with factory(run_runtime(User("alice"), InMemoryStore())) as graph:
        assert offered_tools(graph) == {"whoami"}
        with anyio.fail_after(20):
            async for event in graph.astream(
                {"messages": [HumanMessage("call whoami")]}, stream_mode="custom"
            ):
                events.append(event)
    assert started.names == ["common"]  # the refused server was never started
    skipped = [e for e in events if isinstance(e, dict) and e.get("type") == SKIPPED_EVENT]
    assert len(skipped) == 1
    [entry] = skipped[0]["servers"]
    assert entry["server"] == "gh"
    assert "no credentials stored for user 'alice'" in entry["reason"]
    assert "['alice', 'mcp_credentials']" in entry["reason"]


async def test_a_refused_required_server_fails_the_run_unwrapped() -> None:
    started = Started()
    servers = UserServers(
        [
            MemoryServer(name="common", server=started.server("common", "whoami")),
            Scoped(MemoryServer(name="gh", server=started.server("gh", "x")), credentials=StoreCredentials()),
        ]
    )
    factory = agent_factory(servers, OfflineChatModel())
    with pytest.raises(ConnectError) as caught:
        async with factory(run_runtime(User("alice"), InMemoryStore())):
            pytest.fail("the run went ahead without a required server")
    assert "gh" in caught.value.failures
    assert started.names == []


def _named_server(name: str, *tools: str) -> Any:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(name)
    for tool_name in tools:

        async def handler(answer: str = tool_name) -> str:
            return answer

        server.add_tool(handler, name=tool_name)
    return server


async def test_registered_servers_never_rename_the_deployments_tools() -> None:
    from mcpbridge import Bridge, MemoryServer

    deployment = MemoryServer(name="local", server=_named_server("local", "slow", "whoami"), prefix="local")
    guest = MemoryServer(name="mine", server=_named_server("mine", "mine_local_slow", "local_slow", "other"))
    async with Bridge([deployment, guest], guests=["mine"]) as bridge:
        names = {t.name: (t.server, t.mcp_name) for t in bridge.tools}
    # The deployment's names stand (name-based policies such as approvals keep matching).
    assert names["local_slow"] == ("local", "slow")
    assert names["local_whoami"] == ("local", "whoami")
    # The guest's tools take what is free; its 'local_slow' would need 'mine_local_slow', taken: dropped.
    assert names["mine_local_slow"] == ("mine", "mine_local_slow")
    assert names["other"] == ("mine", "other")
    assert len(names) == 4, names
    # Without the mark, the clash renames both sides, as for any two deployment servers.
    plain = MemoryServer(name="mine", server=_named_server("mine", "local_slow"))
    async with Bridge([deployment, plain]) as bridge:
        assert {"local_local_slow", "mine_local_slow"} <= {t.name for t in bridge.tools}
