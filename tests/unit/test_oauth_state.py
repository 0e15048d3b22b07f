from __future__ import annotations

import time

import anyio
import pytest
from langgraph.store.memory import InMemoryStore
from pydantic import SecretStr

from mcpbridge._oauth_state import state_key
from mcpbridge.oauth import OAuthClient, PendingAuthorization, StoreClientRegistry, StoreStateStore

pytestmark = pytest.mark.anyio


def pending(**changes: object) -> PendingAuthorization:
    values: dict[str, object] = {
        "user": "alice",
        "server": "linear",
        "server_url": "https://mcp.example.com/mcp",
        "resource": "https://mcp.example.com/mcp",
        "issuer": "https://auth.example.com",
        "iss_required": True,
        "token_endpoint": "https://auth.example.com/token",
        "client_id": "c",
        "redirect_uri": "https://agents.example.com/cb",
        "scope": "mcp:tools",
        "code_verifier": "v" * 64,
        "expires_at": time.time() + 60,
        **changes,
    }
    return PendingAuthorization(**values)  # pyright: ignore[reportArgumentType]


async def test_a_state_is_taken_once_and_kept_under_its_hash() -> None:
    store = InMemoryStore()
    states = StoreStateStore(store)
    with anyio.fail_after(10):
        await states.put("the-state", pending())
        [item] = await store.asearch(("mcpbridge", "oauth", "pending"))
        assert item.key == state_key("the-state") and "the-state" not in str(item.value)
        assert await states.take("other") is None
        assert await states.take("the-state") == pending(expires_at=item.value["expires_at"])
        assert await states.take("the-state") is None


def test_the_verifier_stays_out_of_reprs_and_expiry_is_checked() -> None:
    record = pending(expires_at=100.0)
    assert "v" * 64 not in repr(record)
    assert record.expired(now=100.0) and not record.expired(now=99.0)


async def test_registered_clients_round_trip_per_issuer_and_redirect_uri() -> None:
    registry = StoreClientRegistry(InMemoryStore())
    client = OAuthClient(
        client_id="dyn", client_secret=SecretStr("s3cret"), issuer="https://a", registration="dynamic"
    )
    with anyio.fail_after(10):
        await registry.put("https://a", "https://cb", client)
        assert await registry.get("https://a", "https://cb") == client
        assert await registry.get("https://a", "https://other-cb") is None
        assert await registry.get("https://b", "https://cb") is None
    assert "s3cret" not in repr(client)


def test_a_client_without_a_secret_authenticates_with_none() -> None:
    assert OAuthClient(client_id="public").token_endpoint_auth_method == "none"
    assert (
        OAuthClient(client_id="c", client_secret=SecretStr("s")).token_endpoint_auth_method
        == "client_secret_basic"
    )
