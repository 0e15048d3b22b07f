"""The installed version of mcpbridge, as it introduces itself to MCP peers."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version

__all__ = ["package_version"]


@cache
def package_version() -> str:
    """The installed version of mcpbridge (``"0"`` when running from a source tree)."""
    try:
        return version("mcpbridge")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"
