"""The example auth keeps every user out of the store namespaces of mcpbridge's OAuth records and budgets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from langgraph_sdk import Auth

from examples.auth import own_namespace

pytestmark = pytest.mark.anyio


@dataclass
class User:
    identity: str
    permissions: list[str] = field(default_factory=list[str])
    is_authenticated: bool = True

    @property
    def display_name(self) -> str:
        return self.identity


def context(identity: str, action: Any) -> Auth.types.AuthContext:
    return Auth.types.AuthContext(permissions=[], user=User(identity), resource="store", action=action)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize("action", ["put", "get", "search", "list_namespaces", "delete"])
async def test_a_user_named_like_the_reserved_namespace_is_refused(action: str) -> None:
    for namespace in [("oauth", "tokens", "alice"), (), ("oauth",), ("sampling", "alice"), ("sampling",)]:
        value: dict[str, Any] = {"namespace": namespace, "key": "k"}
        with pytest.raises(Auth.exceptions.HTTPException) as caught:
            await own_namespace(context("mcpbridge", action), value)
        assert caught.value.status_code == 403


async def test_other_users_stay_in_their_own_namespace() -> None:
    value: dict[str, Any] = {"namespace": ("mcpbridge", "oauth", "tokens", "bob"), "key": "k"}
    await own_namespace(context("alice", "get"), value)
    assert value["namespace"] == ("alice", "mcpbridge", "oauth", "tokens", "bob")
    value = {"namespace": ("alice", "servers"), "key": "k"}
    await own_namespace(context("alice", "put"), value)
    assert value["namespace"] == ("alice", "servers")
