"""`ToolCache`: partitions per principal, hints capped, bounds per partition and in all."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp.client.caching import CacheEntry, CacheKey

from mcpbridge import Credentials, EnvCredentials, HttpServer, MemoryServer, StdioServer, ToolCache
from mcpbridge.credentials import apply_credentials, credential_principal, written_by_user
from mcpbridge.errors import ConfigError

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def http(name: str = "search", url: str = "https://search.example/mcp") -> HttpServer:
    return HttpServer(name=name, url=url)


def entry(value: object = "v", *, expires: float, scope: str = "private") -> CacheEntry:
    return CacheEntry(value, "public" if scope == "public" else "private", expires)


def test_a_cache_refuses_bad_bounds() -> None:
    with pytest.raises(ConfigError):
        ToolCache(max_entries=0)
    with pytest.raises(ConfigError):
        ToolCache(max_ttl=-1)


def test_in_process_servers_are_never_cached() -> None:
    from mcp.server.mcpserver import MCPServer

    assert (
        ToolCache().for_server(
            MemoryServer(name="m", server=MCPServer("m")), user="a", principal="p", guest=False
        )
        is None
    )


def test_partitions_hold_the_user_and_the_principal_never_the_token() -> None:
    cache = ToolCache()
    server = apply_credentials(http(), Credentials.bearer("secret-token-1", principal="acct-42"))
    view = cache.for_server(server, user="alice", principal=credential_principal(server), guest=False)
    assert view is not None
    assert "alice" in view.partition and "acct-42" in view.partition
    assert "secret-token-1" not in view.partition + view.target
    other = cache.for_server(server, user="bob", principal=credential_principal(server), guest=False)
    assert other is not None and other.partition != view.partition


def test_a_refreshed_token_keeps_the_principal() -> None:
    old = apply_credentials(http(), Credentials.bearer("token-1"))
    new = apply_credentials(http(), Credentials.bearer("token-2"))
    assert credential_principal(old) == credential_principal(new)
    assert "token" not in credential_principal(old).lower().replace("authorization", "")


async def test_env_credentials_name_their_variable_as_principal() -> None:
    from mcpbridge.scoping import UserContext

    provider = EnvCredentials({"search": "KEY_{user.identity}"}, environ={"KEY_ALICE": "s3cret"})
    credentials = await provider(UserContext(identity="alice"), http())
    assert credentials is not None
    assert credentials.principal == "env:KEY_ALICE"


def test_a_urls_userinfo_does_not_make_another_server_but_its_path_does() -> None:
    cache = ToolCache()
    plain = cache.for_server(http(), user="a", principal="p", guest=False)
    with_user = cache.for_server(
        http(url="https://u:pw@search.example/mcp"), user="a", principal="p", guest=False
    )
    other = cache.for_server(http(url="https://search.example/other"), user="a", principal="p", guest=False)
    assert plain is not None and with_user is not None and other is not None
    assert plain.target == with_user.target != other.target


def test_a_server_with_a_users_own_credentials_never_shares_public_entries() -> None:
    cache = ToolCache(share_public=True)
    theirs = apply_credentials(http(), Credentials.bearer("t", source="user"))
    ours = apply_credentials(http(), Credentials.bearer("t"))
    assert written_by_user(theirs) and not written_by_user(ours) and not written_by_user(http())
    view = cache.for_server(
        theirs, user="a", principal=credential_principal(theirs), guest=False, user_written=True
    )
    assert view is not None and not view.share_public


def test_a_users_registered_server_never_shares_public_entries() -> None:
    cache = ToolCache(share_public=True)
    deployment = cache.for_server(http(), user="a", principal="p", guest=False)
    guest_a = cache.for_server(http(), user="a", principal="p", guest=True)
    guest_b = cache.for_server(http(), user="b", principal="p", guest=True)
    assert deployment is not None and guest_a is not None and guest_b is not None
    assert deployment.share_public and not guest_a.share_public
    assert guest_a.target != guest_b.target != deployment.target


async def test_a_servers_huge_ttl_is_capped() -> None:
    clock = Clock()
    cache = ToolCache(max_ttl=60, clock=clock)
    view = cache.for_server(http(), user="a", principal="p", guest=False)
    assert view is not None
    key = CacheKey("tools/list", "", "arm")
    await view.set(key, entry(expires=clock.now + 10**9))
    clock.now += 59
    assert await view.get(key) is not None
    clock.now += 2
    assert await view.get(key) is None
    assert cache.size == 0


async def test_one_partition_cannot_evict_another() -> None:
    cache = ToolCache(max_entries_per_partition=3, max_entries=100)
    alice = cache.for_server(http(), user="alice", principal="p", guest=False)
    mallory = cache.for_server(http(), user="mallory", principal="p", guest=False)
    assert alice is not None and mallory is not None
    far = cache.clock() + 100
    await alice.set(CacheKey("tools/list", "", "alice"), entry(expires=far))
    for index in range(1000):
        await mallory.set(CacheKey("tools/list", "", f"m{index}"), entry(expires=far))
    assert cache.size == 4
    assert await alice.get(CacheKey("tools/list", "", "alice")) is not None


async def test_the_whole_cache_is_bounded() -> None:
    cache = ToolCache(max_entries_per_partition=5, max_entries=10)
    far = cache.clock() + 100
    for user in range(50):
        view = cache.for_server(http(), user=f"u{user}", principal="p", guest=False)
        assert view is not None
        for index in range(5):
            await view.set(CacheKey("tools/list", "", f"{user}-{index}"), entry(expires=far))
    assert cache.size == 10
    assert cache.partitions == 2


def test_a_discovery_result_is_kept_as_long_as_the_listing_without_its_own_ttl() -> None:
    clock = Clock()
    cache = ToolCache(clock=clock)
    view = cache.for_server(http(), user="a", principal="p", guest=False)
    assert view is not None
    discover = types.DiscoverResult(
        supported_versions=["2026-07-28"], capabilities=types.ServerCapabilities()
    )
    view.keep_discovered("2026-07-28", discover, types.ListToolsResult(tools=[], ttl_ms=30_000))
    kept = view.discovered()
    assert kept is not None and kept.version == "2026-07-28"
    clock.now += 31
    assert view.discovered() is None
    view.keep_discovered("2026-07-28", discover, types.ListToolsResult(tools=[]))
    assert view.discovered() is None, "no hint, no default TTL: not kept"
    view.keep_discovered("2025-11-25", discover, types.ListToolsResult(tools=[], ttl_ms=30_000))
    assert view.discovered() is None, "a legacy session has no discovery to keep"


def test_stdio_servers_are_keyed_by_their_command() -> None:
    cache = ToolCache()
    one = cache.for_server(StdioServer(name="s", command="a"), user=None, principal="p", guest=False)
    two = cache.for_server(StdioServer(name="s", command="b"), user=None, principal="p", guest=False)
    assert one is not None and two is not None and one.target != two.target


def test_stdio_servers_are_keyed_by_their_working_directory(tmp_path: Path) -> None:
    cache = ToolCache()
    here = cache.for_server(
        StdioServer(name="s", command="a", cwd=tmp_path), user=None, principal="p", guest=False
    )
    there = cache.for_server(
        StdioServer(name="s", command="a", cwd=tmp_path / "x"), user=None, principal="p", guest=False
    )
    assert here is not None and there is not None and here.target != there.target


def test_event_loops_on_several_threads_share_one_cache() -> None:
    cache = ToolCache(max_entries_per_partition=4, max_entries=16)
    failures: list[BaseException] = []

    async def churn(user: int) -> None:
        view = cache.for_server(http(), user=f"u{user % 3}", principal="p", guest=False)
        assert view is not None
        far = cache.clock() + 100
        for index in range(2000):
            key = CacheKey("tools/list", "", f"{index % 7}")
            await view.set(key, entry(expires=far))
            await view.get(key)
            if index % 5 == 0:
                await view.delete(key)

    def thread(user: int) -> None:
        try:
            anyio.run(churn, user)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=thread, args=(user,)) for user in range(6)]
    for started in threads:
        started.start()
    for started in threads:
        started.join(timeout=60)
    assert not failures
    assert cache.size <= 12 and cache.partitions <= 3
