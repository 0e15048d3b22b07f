"""The names a user's own values may never set (``mcpbridge._uservalues``)."""

from __future__ import annotations

import pytest

from mcpbridge._uservalues import bad_value, refused_env, refused_header


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("Host", "hop-by-hop and framing headers"),
        ("content-length", "hop-by-hop and framing headers"),
        ("X-Forwarded-For", "headers proxies trust for the client's address"),
        ("mcp-session-id", "MCP's own headers"),
        ("Mcpbridge-Identity", "the identity header"),
        ("Bad Name", "not a valid header name"),
    ],
)
def test_refused_headers_name_their_rule_whatever_the_case(name: str, rule: str) -> None:
    assert refused_header(name) == rule


@pytest.mark.parametrize("name", ["X-Api-Key", "Authorization-Tenant", "X-Org"])
def test_other_headers_may_be_declared(name: str) -> None:
    assert refused_header(name) is None


def test_environment_names() -> None:
    assert refused_env("LD_PRELOAD") is not None
    assert refused_env("ld_preload") is not None  # matching ignores case
    assert refused_env("1ABC") is not None and "not a valid variable name" in (refused_env("1ABC") or "")
    assert refused_env("ORG_TOKEN") is None


@pytest.mark.parametrize(("value", "bad"), [("ok", False), ("a\r\nb", True), ("a\nb", True), ("a\x00", True)])
def test_values_with_line_breaks_or_nul_are_bad(value: str, bad: bool) -> None:
    assert bad_value(value) is bad
