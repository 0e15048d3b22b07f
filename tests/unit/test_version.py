"""The version mcpbridge introduces itself with to MCP peers (``mcpbridge._version``)."""

from __future__ import annotations

from importlib.metadata import version

from mcpbridge._version import package_version


def test_the_installed_version_is_reported() -> None:
    assert package_version() == version("mcpbridge")
