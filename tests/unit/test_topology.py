"""`check_topology`: every way a run's graph can differ from the read graph is caught, and named.

Each mutation below changes one thing between the graph built for reads and the graph built for
runs; the check must refuse it and say what differs. A fingerprint that ignored nodes, edges,
channels, a schema or a subgraph would let that case through. What is not topology must pass:
the same graph built twice (a reducer defined in the builder included), other node
implementations, other tools for the agent.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

import pytest
from langchain.agents import create_agent
from langchain_core.tools import tool
from langgraph.channels import EphemeralValue
from langgraph.func import entrypoint
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from mcpbridge.errors import TopologyMismatchError
from mcpbridge.testing import OfflineChatModel
from mcpbridge.topology import Topology, check_topology, topology


class State(TypedDict):
    messages: Annotated[list[str], operator.add]
    count: int
    scratch: str  # private: in neither the input nor the output schema


class Input(TypedDict):
    messages: Annotated[list[str], operator.add]


class Output(TypedDict):
    messages: Annotated[list[str], operator.add]
    count: int


class StateWithNotes(TypedDict):
    messages: Annotated[list[str], operator.add]
    count: int
    scratch: str
    notes: str


class StateWithoutScratch(TypedDict):
    messages: Annotated[list[str], operator.add]
    count: int


class StateWithIntScratch(TypedDict):
    messages: Annotated[list[str], operator.add]
    count: int
    scratch: int


class StateWithAccumulatedScratch(TypedDict):
    messages: Annotated[list[str], operator.add]
    count: int
    scratch: Annotated[str, operator.add]


class StateWithEphemeralScratch(TypedDict):
    messages: Annotated[list[str], operator.add]
    count: int
    scratch: Annotated[str, EphemeralValue(str)]  # same value type, another channel class


class InputWithoutReducer(TypedDict):
    messages: list[str]


class InputWithCount(TypedDict):
    messages: Annotated[list[str], operator.add]
    count: int


class OutputWithStrCount(TypedDict):
    messages: Annotated[list[str], operator.add]
    count: str


@tool
def local_note(text: str) -> str:
    """Write a note."""
    return text


@dataclass
class Context:
    user: str


@dataclass
class ContextWithIntUser:
    user: int


def _node(state: Any) -> dict[str, Any]:
    return {}


def _route(state: Any) -> str:
    return "done"


def research(nodes: Sequence[str] = ("search",)) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The subgraph run as the ``research`` node."""
    return research_with(State, nodes)


def research_with(
    state: type[Any], nodes: Sequence[str] = ("search",)
) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(state)
    for name in nodes:
        builder.add_node(name, _node)
    builder.add_edge(START, nodes[0])
    for source, target in zip(nodes, nodes[1:], strict=False):
        builder.add_edge(source, target)
    builder.add_edge(nodes[-1], END)
    return builder.compile()


def build(
    *,
    state: type[Any] = State,
    input_schema: type[Any] = Input,
    output_schema: type[Any] = Output,
    context_schema: type[Any] | None = None,
    nodes: Sequence[str] = ("plan", "act", "research"),
    edges: Sequence[tuple[str, str]] = ((START, "plan"), ("act", "research"), ("research", END)),
    routes: Mapping[Hashable, str] | None = None,
    subgraph: Callable[[], Any] = research,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A graph with a plain edge, a conditional edge (from ``plan``) and a subgraph (``research``)."""
    builder = StateGraph(
        state, context_schema=context_schema, input_schema=input_schema, output_schema=output_schema
    )
    for name in nodes:
        builder.add_node(name, subgraph() if name == "research" else _node)
    for source, target in edges:
        builder.add_edge(source, target)
    if "plan" in nodes:
        builder.add_conditional_edges(
            "plan", _route, dict(routes) if routes is not None else {"act": "act", "done": END}
        )
    return builder.compile()


@dataclass(frozen=True)
class Mutation:
    """One change to the run's graph, and the differences the check must report for it."""

    id: str
    build: Callable[[], CompiledStateGraph[Any, Any, Any, Any]]
    differences: Sequence[str]


MUTATIONS = [
    # --- nodes ---
    Mutation(
        "node added",
        lambda: build(nodes=("plan", "act", "research", "review")),
        ["node 'review' is extra"],
    ),
    Mutation(
        "node removed",
        lambda: build(nodes=("plan", "act"), edges=((START, "plan"), ("act", END))),
        ["node 'research' is missing", "edge act --> research is missing", "edge act --> __end__ is extra"],
    ),
    Mutation(
        "node renamed",
        lambda: build(
            nodes=("plan", "act", "study"), edges=((START, "plan"), ("act", "study"), ("study", END))
        ),
        ["node 'research' is missing", "node 'study' is extra", "channel 'branch:to:study' is extra"],
    ),
    # --- edges ---
    Mutation(
        "edge added",
        lambda: build(edges=((START, "plan"), (START, "act"), ("act", "research"), ("research", END))),
        ["edge __start__ --> act is extra"],
    ),
    Mutation(
        "edge removed",
        lambda: build(edges=((START, "plan"), ("research", END))),
        ["edge act --> research is missing"],
    ),
    Mutation(
        "edge retargeted",
        lambda: build(edges=((START, "plan"), ("act", END), ("research", END))),
        ["edge act --> research is missing", "edge act --> __end__ is extra"],
    ),
    Mutation(
        "conditional edge target changed",
        lambda: build(routes={"act": "act", "done": "research"}),
        ["edge plan -?-> __end__ is missing", "edge plan -?-> research is extra"],
    ),
    Mutation(
        "conditional edge target removed",
        lambda: build(routes={"act": "act"}),
        ["edge plan -?-> __end__ is missing"],
    ),
    Mutation(
        "conditional edge made plain",
        lambda: build(
            edges=((START, "plan"), ("plan", "act"), ("act", "research"), ("research", END)), routes={}
        ),
        ["edge plan -?-> act is missing", "edge plan -?-> __end__ is missing", "edge plan --> act is extra"],
    ),
    # --- channels ---
    Mutation("channel added", lambda: build(state=StateWithNotes), ["channel 'notes' is extra"]),
    Mutation("channel removed", lambda: build(state=StateWithoutScratch), ["channel 'scratch' is missing"]),
    Mutation(
        "private channel's type changed",
        lambda: build(state=StateWithIntScratch),
        ["channel 'scratch' differs"],
    ),
    Mutation(
        "private channel given a reducer",
        lambda: build(state=StateWithAccumulatedScratch),
        ["channel 'scratch' differs"],
    ),
    Mutation(
        "private channel made ephemeral",
        lambda: build(state=StateWithEphemeralScratch),
        ["channel 'scratch' differs: LastValue[<class 'str'>] became EphemeralValue[<class 'str'>]"],
    ),
    # --- schemas ---
    Mutation(
        "input schema field added", lambda: build(input_schema=InputWithCount), ["input schema differs"]
    ),
    Mutation(
        "input schema field's reducer dropped",
        lambda: build(input_schema=InputWithoutReducer),
        ["input schema differs"],
    ),
    Mutation(
        "output schema field's type changed",
        lambda: build(output_schema=OutputWithStrCount),
        ["output schema differs"],
    ),
    Mutation("context schema added", lambda: build(context_schema=Context), ["context schema differs"]),
    # --- subgraphs ---
    Mutation(
        "subgraph node added",
        lambda: build(subgraph=lambda: research(("search", "summarise"))),
        ["subgraph 'research': node 'summarise' is extra"],
    ),
    Mutation(
        "subgraph's channel type changed",
        lambda: build(subgraph=lambda: research_with(StateWithIntScratch)),
        ["subgraph 'research': channel 'scratch' differs"],
    ),
    Mutation(
        "subgraph replaced by a plain node",
        lambda: build(subgraph=lambda: _node),
        ["subgraph 'research' is missing"],
    ),
]


def test_identical_graphs_pass() -> None:
    assert check_topology(build(), build()) == []
    assert topology(build()) == topology(build())
    assert check_topology(build(context_schema=Context), build(context_schema=Context)) == []


def _other_node(state: Any) -> dict[str, Any]:
    return {"count": 1}


def test_node_implementations_are_not_topology() -> None:
    """Nodes are compared by name: what a node runs (its tools, its model) may differ per run."""
    builder = StateGraph(State, input_schema=Input, output_schema=Output)
    builder.add_node("plan", _other_node)
    builder.add_node("act", lambda state: {})
    builder.add_node("research", research())
    builder.add_edge(START, "plan")
    builder.add_edge("act", "research")
    builder.add_edge("research", END)
    builder.add_conditional_edges("plan", lambda state: "act", {"act": "act", "done": END})
    assert check_topology(build(), builder.compile()) == []


def test_agents_with_other_tools_have_one_topology() -> None:
    """What a run's tools are (their names, arguments, number) is not topology; having some is."""

    @tool
    def search(query: str, limit: int) -> str:
        """Search."""
        return query

    model = OfflineChatModel()
    read = topology(create_agent(model, tools=[local_note]))
    assert check_topology(read, create_agent(model, tools=[search])) == []
    assert check_topology(read, create_agent(model, tools=[search, local_note])) == []


def with_local_reducer() -> CompiledStateGraph[Any, Any, Any, Any]:
    """A graph whose state's reducer is a new function on every build."""

    def merge(left: list[str], right: list[str]) -> list[str]:
        return left + right

    # The functional form: under ``from __future__ import annotations`` a class's ``merge`` would
    # be a string naming a local, which StateGraph cannot resolve.
    local = TypedDict("local", {"messages": Annotated[list[str], merge]})  # noqa: UP013
    builder = StateGraph(local)
    builder.add_node("act", _node)
    builder.add_edge(START, "act")
    builder.add_edge("act", END)
    return builder.compile()


def test_a_reducer_defined_in_the_builder_is_the_same_on_every_build() -> None:
    first, second = topology(with_local_reducer()), topology(with_local_reducer())
    assert "merge" in first.input_schema and "merge" in dict(first.channel_types)["messages"]
    assert check_topology(first, second) == []


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.id for m in MUTATIONS])
def test_a_mutation_of_the_run_graph_is_caught_and_named(mutation: Mutation) -> None:
    with pytest.raises(TopologyMismatchError) as caught:
        check_topology(build(), mutation.build())
    for difference in mutation.differences:
        [line] = [line for line in caught.value.differences if line.startswith(difference)]
        assert line in str(caught.value)
    assert check_topology(build(), mutation.build(), on_mismatch="warn") == caught.value.differences


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.id for m in MUTATIONS])
def test_the_mutation_is_caught_the_other_way_round(mutation: Mutation) -> None:
    """The read graph may be the one with more: swapping the sides turns "extra" into "missing"."""
    with pytest.raises(TopologyMismatchError):
        check_topology(mutation.build(), build())


def functional(kind: str) -> Any:
    """A graph of the functional API, which has no `StateGraph` builder: its JSON schemas are compared."""
    if kind == "int -> str":

        @entrypoint()
        def work(value: int) -> str:
            return str(value)

        return work
    if kind == "str -> str":

        @entrypoint()
        def work(value: str) -> str:
            return value

        return work
    if kind == "int -> int":

        @entrypoint()
        def work(value: int) -> int:
            return value

        return work

    @entrypoint(context_schema=Context)
    def work(value: int) -> str:
        return str(value)

    return work


def test_functional_graphs_built_twice_pass() -> None:
    assert check_topology(functional("int -> str"), functional("int -> str")) == []
    assert check_topology(functional("with context"), functional("with context")) == []


@pytest.mark.parametrize(
    ("run", "differences"),
    [
        ("str -> str", ["input schema differs", "channel '__start__' differs"]),
        (
            "int -> int",
            ["output schema differs", "channel '__end__' differs", "channel '__previous__' differs"],
        ),
        ("with context", ["context schema differs"]),
    ],
)
def test_a_functional_graph_schema_change_is_caught(run: str, differences: list[str]) -> None:
    with pytest.raises(TopologyMismatchError) as caught:
        check_topology(functional("int -> str"), functional(run))
    assert [line.split(":")[0] for line in caught.value.differences] == differences


def test_a_context_schema_field_type_change_is_caught() -> None:
    with pytest.raises(TopologyMismatchError) as caught:
        check_topology(build(context_schema=Context), build(context_schema=ContextWithIntUser))
    assert caught.value.differences == ["context schema differs"]


def test_fingerprints_compare_like_graphs() -> None:
    """`check_topology` takes a precomputed fingerprint on either side (the factory caches the read one)."""
    read = topology(build())
    assert isinstance(read, Topology)
    assert check_topology(read, build()) == []
    with pytest.raises(TopologyMismatchError) as caught:
        check_topology(read, topology(build(state=StateWithNotes)))
    assert caught.value.differences == ["channel 'notes' is extra"]


def test_the_mismatch_is_logged_when_asked_to_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="mcpbridge"):
        differences = check_topology(build(), build(state=StateWithNotes), on_mismatch="warn")
    assert differences == ["channel 'notes' is extra"]
    assert "channel 'notes' is extra" in caplog.text


def test_create_agent_without_tools_has_another_topology() -> None:
    """``create_agent(model, tools=[])`` has no ``tools`` node: as a read graph it would not match runs."""
    model = OfflineChatModel()
    read = create_agent(model, tools=[])
    run = create_agent(model, tools=[local_note])
    with pytest.raises(TopologyMismatchError) as caught:
        check_topology(read, run)
    assert "node 'tools' is extra" in caught.value.differences
    assert check_topology(read, run, on_mismatch="warn") == caught.value.differences
