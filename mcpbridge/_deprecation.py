"""Old import paths that keep working for one release, with a `DeprecationWarning` naming the new one."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["moved"]


def moved(module: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving names that moved out of ``module``.

    Args:
        module: The old module's name (``mcpbridge``).
        homes: The new home module of each moved name (``{"UserServers": "mcpbridge.scoping"}``).
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is deprecated; import it from {home} "
            f"(`from {home} import {name}`); the old name goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(home), name)

    return __getattr__
