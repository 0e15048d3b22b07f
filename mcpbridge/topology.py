"""Graph topology fingerprints, and the check that every access context sees the same graph.

The Agent Server builds a graph for runs, state reads, state updates and schema
requests alike; they must agree on nodes, edges, state channels (their types and reducers too),
schemas and subgraphs.
`check_topology` compares two graphs and explains any difference.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, cast, get_type_hints

from langgraph.graph.state import StateGraph
from langgraph.pregel import Pregel

from mcpbridge._deprecation import callable_module
from mcpbridge.errors import TopologyMismatchError

__all__ = ["Topology", "check_topology", "topology"]

logger = logging.getLogger("mcpbridge")


@dataclass(frozen=True, slots=True)
class Topology:
    """What must be identical across access contexts.

    Attributes:
        nodes: Node names.
        edges: ``(source, target, conditional)`` triples.
        channels: State channel names.
        input_schema: The input schema's fields and their types, canonically encoded.
        output_schema: The output schema's fields and their types, canonically encoded.
        context_schema: The context schema's fields and their types (``"null"`` when none).
        channel_types: ``(channel, kind)`` pairs: each channel's class and value type (its reducer
            included), so a channel that keeps its name but changes its type or reducer differs.
        subgraphs: ``(node, topology)`` pairs, one per node that runs a subgraph.
    """

    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str, bool], ...]
    channels: tuple[str, ...]
    input_schema: str
    output_schema: str
    context_schema: str
    channel_types: tuple[tuple[str, str], ...] = ()
    subgraphs: tuple[tuple[str, Topology], ...] = ()

    def diff(self, other: Topology) -> list[str]:
        """Readable differences from ``self`` (expected) to ``other`` (actual)."""
        lines: list[str] = []
        for field in ("nodes", "edges", "channels"):
            mine, theirs = set(getattr(self, field)), set(getattr(other, field))
            for item in sorted(mine - theirs, key=str):
                lines.append(f"{field[:-1]} {_show(item)} is missing")
            for item in sorted(theirs - mine, key=str):
                lines.append(f"{field[:-1]} {_show(item)} is extra")
        for field in ("input_schema", "output_schema", "context_schema"):
            if getattr(self, field) != getattr(other, field):
                lines.append(f"{field.replace('_', ' ')} differs")
        theirs_types = dict(other.channel_types)
        for name, kind in self.channel_types:
            if name in theirs_types and theirs_types[name] != kind:
                lines.append(f"channel {name!r} differs: {kind} became {theirs_types[name]}")
        mine_subgraphs, theirs_subgraphs = dict(self.subgraphs), dict(other.subgraphs)
        for name in sorted(mine_subgraphs.keys() | theirs_subgraphs.keys()):
            if name not in theirs_subgraphs:
                lines.append(f"subgraph {name!r} is missing")
            elif name not in mine_subgraphs:
                lines.append(f"subgraph {name!r} is extra")
            else:
                inner = mine_subgraphs[name].diff(theirs_subgraphs[name])
                lines.extend(f"subgraph {name!r}: {line}" for line in inner)
        return lines

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view, for assertions and logs."""
        view = {f.name: getattr(self, f.name) for f in fields(self)}
        view["subgraphs"] = {name: sub.as_dict() for name, sub in self.subgraphs}
        return view


def _show(item: Any) -> str:
    if isinstance(item, tuple):
        source, target, conditional = cast("tuple[str, str, bool]", item)
        arrow = "-?->" if conditional else "-->"
        return f"{source} {arrow} {target}"
    return repr(item)


def topology(graph: Pregel[Any, Any, Any, Any]) -> Topology:
    """Fingerprint a compiled graph's topology.

    Example:
        ```python
        assert topology(build(tools=[])) == topology(build(tools=real_tools))
        ```
    """
    drawn = graph.get_graph()
    builder: Any = getattr(graph, "builder", None)
    if isinstance(builder, StateGraph):
        # Field annotations are as telling as JSON schemas and ~1000x cheaper to read.
        state_graph = cast("StateGraph[Any, Any, Any, Any]", builder)
        schemas = (
            _fields(state_graph.input_schema),
            _fields(state_graph.output_schema),
            _fields(state_graph.context_schema),
        )
    else:
        schemas = (
            _canonical(graph.get_input_jsonschema()),
            _canonical(graph.get_output_jsonschema()),
            _canonical(graph.get_context_jsonschema()),
        )
    channels = cast("Mapping[str, Any]", graph.channels)  # pyright: ignore[reportUnknownMemberType]
    return Topology(
        nodes=tuple(sorted(drawn.nodes)),
        edges=tuple(sorted((e.source, e.target, bool(e.conditional)) for e in drawn.edges)),
        channels=tuple(sorted(str(name) for name in channels)),
        input_schema=schemas[0],
        output_schema=schemas[1],
        context_schema=schemas[2],
        channel_types=tuple(
            sorted((str(name), _channel_kind(channel)) for name, channel in channels.items())
        ),
        subgraphs=_subgraphs(graph),
    )


def _subgraphs(graph: Pregel[Any, Any, Any, Any]) -> tuple[tuple[str, Topology], ...]:
    found: list[tuple[str, Topology]] = []
    for name, sub in cast("Iterator[tuple[str, object]]", graph.get_subgraphs()):  # pyright: ignore[reportUnknownMemberType]
        if isinstance(sub, Pregel):
            found.append((name, topology(cast("Pregel[Any, Any, Any, Any]", sub))))
    return tuple(sorted(found, key=lambda pair: pair[0]))


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
"""Dropped from reprs: a reducer defined inside a graph builder is a new function on every build."""


def _channel_kind(channel: Any) -> str:
    try:
        value_type = repr(channel.ValueType)
    except Exception:
        value_type = "?"
    return f"{type(channel).__name__}[{_ADDRESS.sub('', value_type)}]"


def _canonical(schema: Mapping[str, Any] | None) -> str:
    return json.dumps(schema, sort_keys=True, default=str)


def _fields(schema: type[Any] | None) -> str:
    if schema is None:
        return "null"
    try:
        hints = get_type_hints(schema, include_extras=True)
    except Exception:
        hints = dict(getattr(schema, "__annotations__", {}))
    return json.dumps({name: _ADDRESS.sub("", repr(hint)) for name, hint in sorted(hints.items())})


def check_topology(
    expected: Pregel[Any, Any, Any, Any] | Topology,
    actual: Pregel[Any, Any, Any, Any] | Topology,
    *,
    on_mismatch: Literal["error", "warn"] = "error",
) -> list[str]:
    """Check that two graphs have the same topology.

    Args:
        expected: The graph (or fingerprint) built for reads, updates and schemas.
        actual: The graph (or fingerprint) built for execution.
        on_mismatch: Raise, or log a warning.

    Returns:
        The differences (empty when the topologies match).

    Raises:
        TopologyMismatchError: They differ and ``on_mismatch`` is ``"error"``.
    """
    left = expected if isinstance(expected, Topology) else topology(expected)
    right = actual if isinstance(actual, Topology) else topology(actual)
    differences = left.diff(right)
    if differences:
        if on_mismatch == "error":
            raise TopologyMismatchError(differences)
        logger.warning("graph topology differs between access contexts: %s", "; ".join(differences))
    return differences


# `from mcpbridge import topology` named the function before this module was public.
callable_module(__name__, topology)
