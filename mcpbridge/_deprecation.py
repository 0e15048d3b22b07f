"""Old import paths that keep working for one release, with a `DeprecationWarning` naming the new one."""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["callable_module", "moved"]


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


def callable_module(module: str, function: Callable[..., Any]) -> None:
    """Let ``module`` be called as its namesake ``function`` was, with a `DeprecationWarning`.

    For a function whose name a submodule took (``from mcpbridge import topology`` imports the
    module now): calling the module warns and calls ``module.function``.
    """
    target = f"{module}.{function.__name__}"

    class _Callable(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            warnings.warn(
                f"calling the module {module} is deprecated; call {target} "
                f"(`from {module} import {function.__name__}`); the old call goes in the next release",
                DeprecationWarning,
                stacklevel=2,
            )
            return function(*args, **kwargs)

    sys.modules[module].__class__ = _Callable
