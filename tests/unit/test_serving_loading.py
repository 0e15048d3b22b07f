"""Naming the graphs to serve: by module, by file, from ``langgraph.json`` (``mcpbridge.serving.loading``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langgraph.graph import StateGraph

from mcpbridge import ConfigError
from mcpbridge.serving import LocalGraphs, ServedGraph
from mcpbridge.serving.loading import load_config_graphs, load_graph, parse_graph_arg

from ._serving import echo_graph

ROOT = Path(__file__).resolve().parents[2]


def test_graphs_load_by_module_and_by_file() -> None:
    by_module = load_graph("tests.serve.graphs:memo")
    assert by_module.name == "memo"
    by_file = parse_graph_arg("notes=./tests/serve/graphs.py:repeat", base=ROOT)
    assert by_file.name == "notes"
    assert not isinstance(by_file.graph, StateGraph)  # a StateGraph is compiled on load


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("nocolon", "name it as module:attr"),
        ("tests.serve.graphs:", "name it as module:attr"),
        ("no_such_module_xyz:graph", "cannot import module 'no_such_module_xyz'"),
        ("tests.serve.graphs:nothing", "has no attribute 'nothing'"),
        ("./tests/serve/missing.py:graph", "does not exist"),
        ("tests.serve.graphs:RECORD_ENV", "is a str, which cannot be served"),
    ],
)
def test_bad_graph_names_say_what_to_write(spec: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_graph(spec, base=ROOT)


def test_a_missing_attribute_lists_the_graphs_there() -> None:
    with pytest.raises(ConfigError) as raised:
        load_graph("tests.serve.graphs:nothing")
    assert "memo" in str(raised.value) and "echo_agent" in str(raised.value)


def test_langgraph_json_graphs_by_id(tmp_path: Path) -> None:
    [agent] = load_config_graphs(ROOT / "langgraph.json", ["agent"])
    assert agent.name == "agent"
    assert agent.description == "An agent whose runs use the example MCP echo servers (stdio and HTTP)"
    with pytest.raises(ConfigError, match="graph id 'nope' is not in .*; its graphs are agent"):
        load_config_graphs(ROOT / "langgraph.json", ["nope"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_graphs(tmp_path / "langgraph.json")
    (tmp_path / "langgraph.json").write_text(json.dumps({"graphs": {}}))
    with pytest.raises(ConfigError, match='no "graphs" mapping'):
        load_config_graphs(tmp_path / "langgraph.json")


def test_names_must_be_mcp_tool_names() -> None:
    with pytest.raises(ConfigError, match="not a valid MCP tool name"):
        ServedGraph("my agent", echo_graph())
    with pytest.raises(ConfigError, match="two graphs are named 'a'"):
        LocalGraphs([ServedGraph("a", echo_graph()), ServedGraph("a", echo_graph())])
