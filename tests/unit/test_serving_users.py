"""The users of served agents: verifier answers and access tokens (``mcpbridge.serving.users``)."""

from __future__ import annotations

from typing import Any

import pytest

from mcpbridge import ConfigError
from mcpbridge.serving import ServedUser
from mcpbridge.serving.users import VerifierAdapter, as_user, user_of_scope

pytestmark = pytest.mark.anyio


def test_verifier_answers_become_users() -> None:
    user = as_user({"identity": "alice", "permissions": ["mcp:remote"], "org": "acme"})
    assert isinstance(user, ServedUser)
    assert (user.identity, user.permissions, user.display_name) == ("alice", ("mcp:remote",), "alice")
    assert user["org"] == "acme" and "org" in user and dict(user.items())["identity"] == "alice"
    with pytest.raises(ConfigError, match="without a string 'identity'"):
        as_user({"permissions": []})
    with pytest.raises(ConfigError, match="return a mapping with 'identity'"):
        as_user(42)


async def test_the_verified_user_travels_in_the_access_token() -> None:
    async def verify(token: str) -> dict[str, Any] | None:
        return {"identity": "bob", "permissions": ["mcp:local"]} if token == "bob-token" else None

    adapter = VerifierAdapter(verify)
    assert await adapter.verify_token("other") is None
    token = await adapter.verify_token("bob-token")
    assert token is not None and token.client_id == "bob" and token.scopes == ["mcp:local"]
    assert user_of_scope({}) is None
