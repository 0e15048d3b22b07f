"""The public topic module: what an OAuth deployment imports."""

from __future__ import annotations

import mcpbridge.oauth as oauth
from mcpbridge import OAuthError, ServerRefusedError


def test_the_module_names_the_flow_and_its_stores() -> None:
    assert {"OAuthFlow", "OAuthSettings", "StoreStateStore", "Tokens"} <= set(oauth.__all__)


def test_an_oauth_error_is_a_refusal_of_the_server_for_the_run() -> None:
    error = OAuthError("refused", server="linear", reason="state_unknown")
    assert isinstance(error, ServerRefusedError)
    assert (error.server, error.reason, error.field) == ("linear", "state_unknown", None)
