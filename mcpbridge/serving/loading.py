"""Finding the graphs to serve: ``module:attr``, ``path/to/file.py:attr``, or a ``langgraph.json`` graph id.

A served graph is a compiled graph, a ``StateGraph`` (compiled on load), or a
factory that takes the `ServerRuntime` (an async context manager factory such as
`agent_factory` makes, or a plain function). Every bad name is a `ConfigError`
that says what was looked for and what to write instead.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from langgraph.graph.state import StateGraph
from langgraph.pregel import Pregel

from mcpbridge.errors import ConfigError

__all__ = ["ServedGraph", "load_config_graphs", "load_graph", "load_object", "parse_graph_arg"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


@dataclass(frozen=True, slots=True)
class ServedGraph:
    """One graph offered as one MCP tool.

    Attributes:
        name: The MCP tool name (letters, digits, ``_``, ``-`` and ``.``; at most 128).
        graph: A compiled graph, a ``StateGraph``, or a factory taking the `ServerRuntime`.
        description: The tool's description; a generic one is made when ``None``.

    Example:
        ```python
        ServedGraph("agent", make_graph, description="Answers questions about tickets.")
        ```
    """

    name: str
    graph: Any
    description: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(
                f"graph name {self.name!r} is not a valid MCP tool name; use 1-128 letters, digits, "
                "'_', '-' or '.'",
                field="name",
            )
        graph: Any = self.graph
        if isinstance(graph, StateGraph):
            builder = cast("StateGraph[Any, Any, Any, Any]", graph)
            object.__setattr__(self, "graph", builder.compile())  # pyright: ignore[reportUnknownMemberType]
        elif not isinstance(graph, Pregel) and not callable(graph):
            raise ConfigError(
                f"graph {self.name!r} is a {type(graph).__name__}, which cannot be served; give a compiled "
                "graph, a StateGraph, or a factory function taking the ServerRuntime",
                field="graph",
            )


def parse_graph_arg(argument: str, *, base: Path | None = None) -> ServedGraph:
    """Load a graph named on the command line as ``[name=]module:attr`` or ``[name=]path.py:attr``.

    The tool is called ``name`` when given, else after ``attr``.
    """
    name, sep, spec = argument.partition("=")
    if not sep or ":" in name or "/" in name:
        name, spec = "", argument
    return load_graph(spec, name=name or None, base=base)


def load_graph(
    spec: str, *, name: str | None = None, description: str | None = None, base: Path | None = None
) -> ServedGraph:
    """Load the graph ``spec`` names (``module:attr`` or ``path/to/file.py:attr``).

    Args:
        spec: Where the graph is.
        name: The tool name; defaults to ``attr``.
        description: The tool description.
        base: Directory relative file paths start from (default: the working directory).

    Raises:
        ConfigError: The spec is malformed, the module or file cannot be loaded, or
            the attribute is missing or not a graph.
    """
    value = load_object(spec, what="graph", base=base)
    attr = spec.rpartition(":")[2]
    return ServedGraph(name or attr, value, description)


def load_object(spec: str, *, what: str, base: Path | None = None) -> Any:
    """Import the object ``spec`` names as ``module:attr`` or ``path/to/file.py:attr``.

    Raises:
        ConfigError: The spec is malformed, or the module, file or attribute cannot be found.
    """
    location, sep, attr = spec.rpartition(":")
    if not sep or not location or not attr.isidentifier():
        raise ConfigError(
            f"cannot read {what} {spec!r}: name it as module:attr (e.g. my_app.graph:graph) "
            "or path/to/file.py:attr (e.g. ./my_app/graph.py:graph)",
            field=what,
        )
    if location.endswith(".py") or "/" in location or "\\" in location:
        module = _load_file(Path(base or Path.cwd()) / location, spec, what)
    else:
        module = _import_module(location, spec, what)
    try:
        return getattr(module, attr)
    except AttributeError:
        members = cast(dict[str, Any], vars(module))
        found = sorted(
            key
            for key, value in members.items()
            if not key.startswith("_")
            and (isinstance(value, Pregel | StateGraph) or inspect.isfunction(value))
        )
        hint = f"; it has {', '.join(found[:12])}" if found else ""
        raise ConfigError(
            f"{location!r} has no attribute {attr!r} for {what} {spec!r}{hint}", field=what
        ) from None


def _import_module(name: str, spec: str, what: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name != exc.name and not name.startswith(f"{exc.name}."):
            raise  # the module exists but one of its own imports is missing: show that error as is
        raise ConfigError(
            f"cannot import module {name!r} for {what} {spec!r}: no module named {exc.name!r}; run from "
            "the directory that holds it, install its package, or name the file as path/to/file.py:attr",
            field=what,
        ) from None


def _load_file(path: Path, spec: str, what: str) -> Any:
    path = path.resolve()
    if not path.is_file():
        raise ConfigError(f"cannot load {what} {spec!r}: file {str(path)!r} does not exist", field=what)
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    module_name = f"_mcpbridge_served_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot load {what} {spec!r}: {str(path)!r} is not a Python file", field=what)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # dataclasses and pydantic look their module up while it loads
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def load_config_graphs(config: str | Path, graph_ids: Sequence[str] = ()) -> list[ServedGraph]:
    """Load graphs of a ``langgraph.json`` by id (all of them when ``graph_ids`` is empty).

    Paths in the file are relative to its directory; its local ``dependencies``
    (such as ``"."``) are put on ``sys.path`` so that ``module:attr`` entries import.

    Raises:
        ConfigError: The file is missing or malformed, or an id is not one of its graphs.
    """
    path = Path(config).resolve()
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist", field="config") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}", field="config") from None
    graphs_raw: Any = cast(Mapping[str, Any], data).get("graphs") if isinstance(data, Mapping) else None
    if not isinstance(graphs_raw, Mapping) or not graphs_raw:
        raise ConfigError(f'config file {str(path)!r} has no "graphs" mapping', field="config")
    graphs = cast(Mapping[str, Any], graphs_raw)
    missing = [graph_id for graph_id in graph_ids if graph_id not in graphs]
    if missing:
        raise ConfigError(
            f"graph id {missing[0]!r} is not in {str(path)!r}; its graphs are {', '.join(sorted(graphs))}",
            field="graph",
        )
    base = path.parent
    dependencies: Any = cast(Mapping[str, Any], data).get("dependencies") or []
    for dependency in cast(Sequence[Any], dependencies):
        if isinstance(dependency, str) and dependency.startswith("."):
            directory = str((base / dependency).resolve())
            if directory not in sys.path:
                sys.path.insert(0, directory)
    served: list[ServedGraph] = []
    for graph_id in graph_ids or list(graphs):
        entry: Any = graphs[graph_id]
        description: str | None = None
        if isinstance(entry, Mapping):
            mapping = cast(Mapping[str, Any], entry)
            spec, description = mapping.get("path"), mapping.get("description")
        else:
            spec = entry
        if not isinstance(spec, str):
            raise ConfigError(f"graph {graph_id!r} in {str(path)!r} has no path", field="graph")
        served.append(load_graph(spec, name=graph_id, description=description, base=base))
    return served
