from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from langgraph.store.memory import InMemoryStore
from pydantic import SecretStr

from mcpbridge import OAuthError
from mcpbridge.oauth import RESERVED_NAMESPACE, KeyRing, Tokens, TokenStore, reserved

pytestmark = pytest.mark.anyio

URL = "https://mcp.example.com/mcp"
ISSUER = "https://auth.example.com"
KEYS = KeyRing.parse(KeyRing.generate("k1"))


def tokens(access: str = "at-1", refresh: str | None = "rt-1", expires_in: float = 3600) -> Tokens:
    return Tokens(
        access_token=SecretStr(access),
        refresh_token=None if refresh is None else SecretStr(refresh),
        expires_at=time.time() + expires_in,
        scope="mcp:tools",
        token_type="Bearer",
        issuer=ISSUER,
        resource=URL,
        client_id="c",
        token_endpoint=f"{ISSUER}/token",
        revocation_endpoint=f"{ISSUER}/revoke",
    )


class Flow:
    """Stands in for `OAuthFlow`: each refresh waits for the gate, then rotates both tokens."""

    def __init__(self, *, fail: str | None = None) -> None:
        self.refreshes: list[str] = []
        self.revoked: list[str] = []
        self.gate = anyio.Event()
        self.fail = fail

    async def refresh(self, old: Tokens, *, server: str) -> Tokens:
        assert old.refresh_token is not None
        self.refreshes.append(old.refresh_token.get_secret_value())
        await self.gate.wait()
        if self.fail is not None:
            raise OAuthError("refused", server=server, reason=self.fail)
        n = len(self.refreshes) + 1
        access, refresh = SecretStr(f"at-{n}"), SecretStr(f"rt-{n}")
        return dataclasses.replace(
            old, access_token=access, refresh_token=refresh, expires_at=time.time() + 9
        )

    async def revoke(self, old: Tokens, *, server: str) -> None:
        assert old.refresh_token is not None
        self.revoked.append(old.refresh_token.get_secret_value())


async def usable(store: TokenStore, flow: Flow, **options: Any) -> Tokens:
    return await store.usable(flow, user="alice", server="linear", server_url=URL, **options)  # pyright: ignore[reportArgumentType]


async def test_tokens_are_sealed_at_rest_and_bound_to_their_user() -> None:
    store = InMemoryStore()
    kept = TokenStore(store, KEYS)
    with anyio.fail_after(10):
        await kept.put("alice", "linear", URL, tokens())
        got = await kept.get("alice", URL)
        assert got is not None and got.access_token.get_secret_value() == "at-1"
        [item] = await store.asearch(("mcpbridge", "oauth", "tokens", "alice"))
        text = json.dumps(item.value)
        assert "at-1" not in text and "rt-1" not in text and item.value["key_id"] == "k1"
        assert (item.value["server"], item.value["issuer"]) == ("linear", ISSUER)
        # Moved under bob: it does not open for him.
        await store.aput(("mcpbridge", "oauth", "tokens", "bob"), item.key, item.value)
        assert await kept.get("bob", URL) is None
        with pytest.raises(OAuthError) as caught:
            await kept.usable(Flow(), user="bob", server="linear", server_url=URL)  # pyright: ignore[reportArgumentType]
        assert caught.value.reason == "authorization_needed"
        # Another deployment's keys open nothing.
        assert await TokenStore(store, KeyRing.parse(KeyRing.generate("k1"))).get("alice", URL) is None
        assert [c.server for c in await kept.connections("alice")] == ["linear"]
    assert "at-1" not in repr(got) and KEYS.ids[0] in repr(kept)


async def test_a_fresh_token_is_answered_without_refreshing() -> None:
    kept, flow = TokenStore(InMemoryStore(), KEYS, skew=60), Flow()
    with anyio.fail_after(10):
        await kept.put("alice", "linear", URL, tokens())
        assert (await usable(kept, flow)).access_token.get_secret_value() == "at-1"
        # A token living less than the skew is refreshed in its second half only, not on every use.
        await kept.put("alice", "linear", URL, tokens(expires_in=30))
        assert (await usable(kept, flow)).access_token.get_secret_value() == "at-1"
    assert flow.refreshes == []


async def test_no_tokens_means_authorization_needed() -> None:
    with anyio.fail_after(10), pytest.raises(OAuthError) as caught:
        await usable(TokenStore(InMemoryStore(), KEYS), Flow())
    assert caught.value.reason == "authorization_needed" and caught.value.server == "linear"


async def refresh_concurrently(stores: list[TokenStore], flow: Flow, callers: int) -> list[str]:
    seen: list[str] = []

    async def one(store: TokenStore) -> None:
        seen.append((await usable(store, flow)).access_token.get_secret_value())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for i in range(callers):
                group.start_soon(one, stores[i % len(stores)])
            await wait_all_tasks_blocked()
            flow.gate.set()
    return seen


async def test_concurrent_callers_of_one_process_share_one_refresh() -> None:
    kept, flow = TokenStore(InMemoryStore(), KEYS), Flow()
    await kept.put("alice", "linear", URL, tokens(expires_in=-1))
    seen = await refresh_concurrently([kept], flow, 8)
    assert flow.refreshes == ["rt-1"]
    assert seen == ["at-2"] * 8
    again = await kept.get("alice", URL)
    assert again is not None and again.refresh_token == SecretStr("rt-2")


async def test_two_workers_over_one_store_refresh_once() -> None:
    store, flow = InMemoryStore(), Flow()
    workers = [TokenStore(store, KEYS, poll=0.01), TokenStore(store, KEYS, poll=0.01)]
    await workers[0].put("alice", "linear", URL, tokens(expires_in=-1))
    seen = await refresh_concurrently(workers, flow, 6)
    assert flow.refreshes == ["rt-1"]  # the rotated-out refresh token is never sent again
    assert seen == ["at-2"] * 6
    assert await store.asearch(("mcpbridge", "oauth", "leases", "alice")) == []


async def test_a_rejected_token_is_refreshed_once_and_a_newer_one_answered() -> None:
    kept, flow = TokenStore(InMemoryStore(), KEYS), Flow()
    flow.gate.set()
    with anyio.fail_after(10):
        await kept.put("alice", "linear", URL, tokens())
        fresh = await usable(kept, flow, rejected=SecretStr("at-1"))
        assert fresh.access_token.get_secret_value() == "at-2"
        # A second run that saw the same 401 gets the new token, no second refresh.
        assert (await usable(kept, flow, rejected="at-1")).access_token.get_secret_value() == "at-2"
    assert flow.refreshes == ["rt-1"]


async def test_a_refused_refresh_deletes_the_tokens() -> None:
    kept, flow = TokenStore(InMemoryStore(), KEYS), Flow(fail="authorization_needed")
    flow.gate.set()
    with anyio.fail_after(10):
        await kept.put("alice", "linear", URL, tokens(expires_in=0))
        with pytest.raises(OAuthError) as caught:
            await usable(kept, flow)
        assert caught.value.reason == "authorization_needed"
        assert await kept.get("alice", URL) is None


async def test_an_unreachable_authorization_server_keeps_the_tokens() -> None:
    kept, flow = TokenStore(InMemoryStore(), KEYS), Flow(fail="refresh")
    flow.gate.set()
    with anyio.fail_after(10):
        await kept.put("alice", "linear", URL, tokens(expires_in=0))
        with pytest.raises(OAuthError) as caught:
            await usable(kept, flow)
        assert caught.value.reason == "refresh"
        assert await kept.get("alice", URL) is not None


async def test_disconnect_revokes_and_deletes() -> None:
    kept, flow = TokenStore(InMemoryStore(), KEYS), Flow()
    with anyio.fail_after(10):
        await kept.put("alice", "linear", URL, tokens())
        assert await kept.disconnect(flow, user="alice", server="linear", server_url=URL)  # pyright: ignore[reportArgumentType]
        assert flow.revoked == ["rt-1"] and await kept.get("alice", URL) is None
        assert not await kept.disconnect(flow, user="alice", server="linear", server_url=URL)  # pyright: ignore[reportArgumentType]


def test_the_reserved_namespace_and_what_overlaps_it() -> None:
    assert RESERVED_NAMESPACE == ("mcpbridge", "oauth")
    for namespace in [(), ("mcpbridge",), ("mcpbridge", "oauth"), ("mcpbridge", "oauth", "tokens", "bob")]:
        assert reserved(namespace), namespace
    for namespace in [("alice",), ("alice", "mcpbridge", "oauth"), ("mcpbridge", "servers")]:
        assert not reserved(namespace), namespace


def test_tokens_json_round_trip() -> None:
    original = tokens()
    assert Tokens.from_json(json.loads(json.dumps(original.to_json()))) == original
