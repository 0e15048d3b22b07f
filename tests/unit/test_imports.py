"""What `mcpbridge/` imports: the standard library or a declared dependency, and no module cycle."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mcpbridge"
DEV_EXTRAS = {"dev"}
"""Extras for working on mcpbridge itself: shipped code may not rely on them."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module a (possibly relative) ``from ... import`` names."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported(module: str, path: Path, *, eager_only: bool) -> Iterator[str]:
    """The modules ``module`` imports (with ``eager_only``: those run on import, at module level).

    ``from package import name`` counts as importing ``package.name`` when that is a module of
    mcpbridge, else ``package`` (whose ``__init__`` must then be complete).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"

    def statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
        for statement in body:
            if isinstance(statement, ast.If) and ast.unparse(statement.test) in {
                "TYPE_CHECKING",
                "typing.TYPE_CHECKING",
            }:
                if not eager_only:
                    yield from statements(statement.body)
                yield from statements(statement.orelse)
            elif isinstance(statement, ast.If | ast.With | ast.Try):
                yield from statements(statement.body)
                yield from statements(getattr(statement, "orelse", []))
                yield from statements(getattr(statement, "finalbody", []))
                for handler in getattr(statement, "handlers", []):
                    yield from statements(handler.body)
            else:
                yield statement

    nodes = statements(tree.body) if eager_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node, is_package)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield submodule if submodule in MODULES else source


def declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra, extra_requirements in project.get("optional-dependencies", {}).items():
        if extra not in DEV_EXTRAS:
            requirements.extend(extra_requirements)
    return {normalized(Requirement(requirement).name) for requirement in requirements}


def normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_every_import_is_the_standard_library_or_a_declared_dependency() -> None:
    providers = importlib.metadata.packages_distributions()
    declared = declared_distributions()
    undeclared: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        for name in imported(module, path, eager_only=False):
            top = name.split(".")[0]
            if top == "mcpbridge" or top in sys.stdlib_module_names:
                continue
            distributions = {normalized(d) for d in providers.get(top, [])}
            if not distributions & declared:
                undeclared.setdefault(
                    f"{top} (from {sorted(distributions) or 'no installed distribution'})", set()
                ).add(module)
    assert undeclared == {}, "imported by mcpbridge but not declared in pyproject.toml: " + "; ".join(
        f"{name} in {', '.join(sorted(modules))}" for name, modules in sorted(undeclared.items())
    )


def test_the_check_sees_the_imports_it_must() -> None:
    """The walk finds imports in functions and under TYPE_CHECKING too, so a lazy import is checked."""
    names = {name.split(".")[0] for m, p in MODULES.items() for name in imported(m, p, eager_only=False)}
    assert {"httpx2", "mcp_types", "sniffio", "langsmith", "starlette", "uvicorn"} <= names


WEB_STACK = ("starlette", "uvicorn")
"""What serving needs and the rest of mcpbridge does not: the ``serve`` extra."""


def test_the_web_stack_is_the_serve_extra_and_serving_alone_imports_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    required = {normalized(Requirement(r).name) for r in project["dependencies"]}
    assert {normalized(Requirement(r).name) for r in extras["serve"]} == set(WEB_STACK)
    assert not required & set(WEB_STACK)
    dev = [Requirement(r) for r in extras["dev"]]
    assert any(r.name == "mcpbridge" and "serve" in r.extras for r in dev)  # the README's commands
    importers = {
        module
        for module, path in MODULES.items()
        for name in imported(module, path, eager_only=False)
        if name.split(".")[0] in WEB_STACK
    }
    # The OAuth callback routes are for the Agent Server's HTTP app, which has starlette (as has the
    # mcp SDK); they are imported from `mcpbridge.oauth`, which `import mcpbridge` does not import.
    allowed = ("mcpbridge.serving", "mcpbridge._oauth_routes")
    assert importers and all(module.startswith(allowed) for module in importers), importers


WITHOUT = """\
import sys

import mcpbridge  # the client side needs no web stack (the mcp SDK itself imports starlette)

sys.modules[{missing!r}] = None  # as if not installed
try:
    import mcpbridge.serving
except ImportError as error:
    print("import:", error)
from mcpbridge.cli import main

print("exit:", main(["serve", "examples.agent:make_graph"]))
"""


@pytest.mark.parametrize("missing", WEB_STACK)
def test_serving_without_the_serve_extra_says_what_to_install(missing: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT.format(missing=missing)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    install = "which the serve extra installs: pip install 'mcpbridge[serve]'"
    assert done.stdout.splitlines() == [f"import: mcpbridge.serving needs {missing}, {install}", "exit: 2"], (
        done.stdout + done.stderr
    )
    assert done.stderr.strip() == f"mcpbridge serve: error: mcpbridge.serving needs {missing}, {install}"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def loop(graph: dict[str, set[str]], component: list[str]) -> str:
    """One cycle through ``component``, as ``a -> b -> a``, for the failure message."""
    members = set(component)
    path = [component[0]]
    seen = {component[0]}
    while True:
        step = sorted(graph[path[-1]] & members)
        back = [target for target in step if target in seen]
        if back:
            return " -> ".join([*path[path.index(back[0]) :], back[0]])
        path.append(step[0])
        seen.add(step[0])


def import_graph(*, eager_only: bool) -> dict[str, set[str]]:
    """Module -> the mcpbridge modules it imports.

    With ``eager_only``: the imports run when the module is imported (at module level, outside
    ``if TYPE_CHECKING:``). Without: every import statement in it, in functions and under
    ``TYPE_CHECKING`` too, which is what a reader (and a type checker) sees the module depend on.
    """
    return {
        module: {name for name in imported(module, path, eager_only=eager_only) if name in MODULES} - {module}
        for module, path in MODULES.items()
    }


def assert_no_cycle(graph: dict[str, set[str]]) -> None:
    found = cycles(graph)
    assert found == [], "import cycles in mcpbridge: " + "; ".join(loop(graph, c) for c in found)


def test_mcpbridge_has_no_import_cycle() -> None:
    """No cycle among the imports that run: importing any module first works."""
    graph = import_graph(eager_only=True)
    assert len(graph) == len(MODULES) > 20
    assert "mcpbridge.errors" in graph["mcpbridge.topology"]  # the walk sees edges
    assert_no_cycle(graph)


def test_mcpbridge_has_no_import_cycle_counting_every_import() -> None:
    """No cycle even counting imports in functions and under ``TYPE_CHECKING``: one-way layers."""
    graph = import_graph(eager_only=False)
    assert "mcpbridge.identity" in graph["mcpbridge.bridge"]
    assert_no_cycle(graph)


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = import_graph(eager_only=True)
    graph["mcpbridge.errors"] = graph["mcpbridge.errors"] | {"mcpbridge.topology"}
    assert ["mcpbridge.errors", "mcpbridge.topology"] in cycles(graph)
    assert loop(graph, ["mcpbridge.errors", "mcpbridge.topology"]) == (
        "mcpbridge.errors -> mcpbridge.topology -> mcpbridge.errors"
    )
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert loop({"a": {"b"}, "b": {"c"}, "c": {"a", "b"}}, ["a", "b", "c"]) == "a -> b -> c -> a"
    with pytest.raises(AssertionError, match="a -> b -> a"):
        assert_no_cycle({"a": {"b"}, "b": {"a"}})


def test_the_walk_sees_type_checking_and_lazy_imports(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import a\n"
        "def f():\n    import b\n"
        "try:\n    import c\nexcept ImportError:\n    c = None\n",
        encoding="utf-8",
    )
    assert set(imported("probe", path, eager_only=True)) == {"typing", "c"}
    assert set(imported("probe", path, eager_only=False)) == {"typing", "a", "b", "c"}
