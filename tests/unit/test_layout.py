"""Every module of ``mcpbridge`` has an obvious test home.

``mcpbridge/x.py`` and ``mcpbridge/_x.py`` are tested in ``tests/unit/test_x.py``;
``mcpbridge/serving/x.py`` in ``tests/unit/test_serving_x.py``. The few exceptions are
listed in `HOMES`, each with the file that holds its tests.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path

import mcpbridge

UNIT = Path(__file__).resolve().parent

HOMES = {
    # The packages' public names are pinned, and the deprecated aliases tested, with the public API.
    "mcpbridge": "test_public_api.py",
    "mcpbridge.serving": "test_public_api.py",
    "mcpbridge.testing": "test_public_api.py",
    "mcpbridge.users": "test_public_api.py",  # deprecated alias of mcpbridge.scoping
    "mcpbridge.models": "test_public_api.py",  # deprecated alias of mcpbridge.testing
    "mcpbridge.interrupts": "test_input.py",  # the names of the interrupts `mcpbridge._input` raises
}
"""Modules whose tests live elsewhere than the rule says, and where."""


def modules() -> list[str]:
    found = ["mcpbridge"]
    for info in pkgutil.walk_packages(mcpbridge.__path__, "mcpbridge."):
        if info.name.split(".")[-1] != "__main__":
            found.append(info.name)
    return sorted(found)


def home(module: str) -> str:
    """The test file the rule gives ``module``: ``mcpbridge.serving._x`` -> ``test_serving_x.py``."""
    parts = [part.removeprefix("_") for part in module.split(".")[1:]]
    return f"test_{'_'.join(parts)}.py"


def test_every_module_has_a_test_home() -> None:
    missing = {m: HOMES.get(m, home(m)) for m in modules() if not (UNIT / HOMES.get(m, home(m))).is_file()}
    assert not missing, f"modules without a test file (add it, or a documented entry in HOMES): {missing}"


def test_the_exceptions_are_real_modules_and_really_exceptions() -> None:
    known = modules()
    for module, file in HOMES.items():
        assert module in known, f"HOMES names {module}, which is not a module of mcpbridge"
        assert module == "mcpbridge" or not (UNIT / home(module)).is_file(), (
            f"{module} has {home(module)}; drop its HOMES entry"
        )
        assert (UNIT / file).is_file()


def test_the_walk_sees_the_subpackages() -> None:
    known = modules()
    assert {"mcpbridge.serving.server", "mcpbridge.testing.echo", "mcpbridge._templating"} <= set(known)
