"""Agent Server graph factories: MCP tools for runs, the same tool-less graph everywhere else.

The Agent Server calls a factory named in ``langgraph.json`` for runs
(``threads.create_run``) and for state reads, state updates and schema requests.
A factory made here connects to MCP servers only for runs, keeping the sessions
warm between a user's runs in a `SessionPool` of its own (``pool=False``: a
connection set per run, torn down with it), and serves every other context a
cached graph of the same topology without touching any server, or resolving a
``provider:model`` string.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, Literal, TypeAlias, cast

from langchain.agents import create_agent  # pyright: ignore[reportUnknownVariableType]
from langchain.agents.middleware import AgentMiddleware
from langchain.agents.middleware.types import ModelRequest, ModelResponse, ToolCallRequest
from langchain.chat_models import init_chat_model
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langgraph.config import get_stream_writer
from langgraph.graph.state import StateGraph
from langgraph.pregel import Pregel
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from langgraph_sdk.runtime import ServerRuntime

from mcpbridge._names import ConflictPolicy
from mcpbridge.bridge import Bridge
from mcpbridge.caching import ToolCache
from mcpbridge.config import ServerConfig
from mcpbridge.errors import ConfigError, ServerFailure, UsageError
from mcpbridge.events import SKIPPED_EVENT
from mcpbridge.history import repaired_messages_update
from mcpbridge.identity import IdentityMeta
from mcpbridge.interrupts import InputPolicy
from mcpbridge.pool import SessionPool
from mcpbridge.scoping import Selection
from mcpbridge.topology import Topology, check_topology, topology

__all__ = [
    "BridgeMiddleware",
    "GraphFactory",
    "ServersSource",
    "agent_factory",
    "graph_factory",
]

logger = logging.getLogger("mcpbridge")

AnyGraph: TypeAlias = Pregel[Any, Any, Any, Any]
GraphFactory: TypeAlias = Callable[[ServerRuntime[Any]], AbstractAsyncContextManager[AnyGraph]]
"""A factory for ``langgraph.json``: takes the `ServerRuntime`, yields a compiled graph."""

ServersSource: TypeAlias = (
    Sequence[ServerConfig]
    | Callable[
        [ServerRuntime[Any]],
        Sequence[ServerConfig] | Selection | Awaitable[Sequence[ServerConfig] | Selection],
    ]
)
"""Servers for a run: a fixed list, or a function of the run's `ServerRuntime` (called for runs only),
such as `UserServers`."""

_CHECKED_TOOL_SETS: Final = 256
"""Tool sets a factory remembers as checked against its read graph."""

GraphBuilder: TypeAlias = Callable[..., AnyGraph | StateGraph[Any, Any, Any, Any]]
"""Builds a graph from the run's MCP tools: ``build(tools)``, or ``build(tools, failures)`` when it
has a ``failures`` parameter (the servers the run could not connect, by name)."""


def graph_factory(
    servers: ServersSource,
    build: GraphBuilder,
    *,
    identity: IdentityMeta | None = None,
    on_name_conflict: ConflictPolicy = "prefix",
    on_mismatch: Literal["error", "warn"] = "error",
    pool: SessionPool | bool = True,
    tool_cache: ToolCache | bool = True,
    input_policy: InputPolicy | None = None,
) -> GraphFactory:
    """Make an Agent Server factory from your own graph builder.

    ``build(tools)`` is called with ``[]`` once for every non-run context (the
    graph is cached) and with the run's MCP tools for every run. Both graphs must
    have the same topology; a difference raises `TopologyMismatchError` (or logs
    a warning when ``on_mismatch="warn"``). A builder with a ``failures`` parameter
    also gets the servers the run could not connect, by name (none outside runs);
    `mcpbridge.oauth.authorization_node` makes of them the node that asks the user for
    the OAuth authorizations the run lacks, as `agent_factory`'s agents do.

    Args:
        servers: The MCP servers, or a function of the `ServerRuntime` returning them.
        build: Builds the graph (compiled, or a `StateGraph` to compile) from a list of tools.
        identity: How the run's identity is written into each call's ``_meta``.
        on_name_conflict: What to do when two servers offer the same tool name.
        on_mismatch: Raise or warn when the run's graph differs from the read graph.
        pool: Where runs get their sessions. ``True`` (the default): from a `SessionPool` of the
            factory's own, made at its first run with the default bounds, so that a user's later
            runs on the same event loop reuse the sessions (no process start, no handshake).
            ``False``: every run connects and closes its own sessions. A `SessionPool`: from it.
        tool_cache: Keep tool lists across runs, per user and credential principal, as long as the
            servers' ``ttlMs`` hints say (see `ToolCache`): ``True`` with a cache of the factory's
            own, or in the `ToolCache` given; ``False`` keeps none.
        input_policy: How the servers' requests during a call are answered without a human
            (see `InputPolicy`); sampling budgets are kept in the run's store.

    Example:
        ```python
        # my_app/graph.py, named in langgraph.json as "my_app.graph:make_graph"
        def build(tools):
            graph = StateGraph(MessagesState)
            graph.add_node("agent", call_model_with(tools))
            graph.add_node("tools", ToolNode(tools))
            ...
            return graph.compile()

        make_graph = graph_factory([StdioServer(name="files", command="files-mcp")], build)
        ```
    """
    return _Factory(
        servers,
        _compiled(build),
        identity=identity,
        on_name_conflict=on_name_conflict,
        on_mismatch=on_mismatch,
        pool=pool,
        tool_cache=tool_cache,
        input_policy=input_policy,
    ).as_factory()


def agent_factory(
    servers: ServersSource,
    model: str | BaseChatModel,
    *,
    tools: Sequence[BaseTool] = (),
    system_prompt: str | None = None,
    middleware: Sequence[AgentMiddleware[Any, Any]] = (),
    state_schema: type[Any] | None = None,
    context_schema: type[Any] | None = None,
    name: str | None = None,
    identity: IdentityMeta | None = None,
    on_name_conflict: ConflictPolicy = "prefix",
    on_mismatch: Literal["error", "warn"] = "error",
    pool: SessionPool | bool = True,
    tool_cache: ToolCache | bool = True,
    input_policy: InputPolicy | None = None,
) -> GraphFactory:
    """Make an Agent Server factory serving a ``create_agent`` agent with MCP tools.

    The agent keeps its ``tools`` node in every context, with or without tools,
    so runs, reads, updates and schemas all see one graph.

    Args:
        servers: The MCP servers, or a function of the `ServerRuntime` returning them.
        model: A chat model, or a ``provider:model`` string for ``init_chat_model``, resolved
            for each run only (reads, updates and schemas need neither the provider's package
            nor its key); a run whose string cannot be resolved raises `ConfigError`.
        tools: Tools of your own, offered beside the MCP tools.
        system_prompt: The agent's system prompt.
        middleware: Agent middleware, as for ``create_agent``.
        state_schema: A custom agent state schema.
        context_schema: The run context schema.
        name: The graph's name.
        identity: How the run's identity is written into each call's ``_meta``.
        on_name_conflict: What to do when two servers offer the same tool name.
        on_mismatch: Raise or warn when the run's graph differs from the read graph.
        pool: Where runs get their sessions. ``True`` (the default): from a `SessionPool` of the
            factory's own, made at its first run with the default bounds, so that a user's later
            runs on the same event loop reuse the sessions (no process start, no handshake).
            ``False``: every run connects and closes its own sessions. A `SessionPool`: from it.
        tool_cache: Keep tool lists across runs, per user and credential principal, as long as the
            servers' ``ttlMs`` hints say (see `ToolCache`): ``True`` with a cache of the factory's
            own, or in the `ToolCache` given; ``False`` keeps none.
        input_policy: How the servers' requests during a call are answered without a human
            (see `InputPolicy`); a `Sampling` without a model samples the agent's own model.
            Sampling budgets are kept in the run's store.

    Example:
        ```python
        # agent.py, named in langgraph.json as "agent:make_graph"
        make_graph = agent_factory(load_servers("mcp.json"), "anthropic:claude-sonnet-4-5")
        ```
    """
    own_tools = list(tools)

    def agent(
        model: str | BaseChatModel, mcp_tools: list[BaseTool], failures: Mapping[str, ServerFailure]
    ) -> AnyGraph:
        return create_agent(
            model,
            tools=[*own_tools, *mcp_tools],
            system_prompt=system_prompt,
            middleware=[BridgeMiddleware(failures), *middleware],  # first: others see a repaired history
            state_schema=state_schema,
            context_schema=context_schema,
            name=name,
        )

    def build(mcp_tools: list[BaseTool], failures: Mapping[str, ServerFailure]) -> AnyGraph:
        return agent(_resolve(model) if isinstance(model, str) else model, mcp_tools, failures)

    def build_read() -> AnyGraph:
        # create_agent's graph does not depend on the model: a read needs no provider package
        return agent(_RunOnlyModel(spec=model) if isinstance(model, str) else model, [], {})

    sampling = None if input_policy is None else input_policy.sampling
    if input_policy is not None and sampling is not None and sampling.model is None:
        # the agent's own model answers its servers' sampling requests
        input_policy = dataclasses.replace(input_policy, sampling=dataclasses.replace(sampling, model=model))

    return _Factory(
        servers,
        build,
        build_read=build_read,
        identity=identity,
        on_name_conflict=on_name_conflict,
        on_mismatch=on_mismatch,
        pool=pool,
        tool_cache=tool_cache,
        input_policy=input_policy,
    ).as_factory()


class BridgeMiddleware(AgentMiddleware[Any, Any]):
    """Keeps the ``tools`` node, reports skipped servers, and repairs the history before each model call.

    ``create_agent(model, tools=[])`` drops the ``tools`` node; a middleware that
    wraps tool calls keeps it, so the graph is the same with and without tools.
    A run cancelled or failed during its tool calls leaves calls without results,
    which model providers refuse: before the model is called, each gets an error
    `ToolMessage` saying it did not finish, and answers without a call are dropped
    (`mcpbridge.history.repair_tool_calls`); the thread keeps the repaired history.
    Put it first among the middleware, so the others see the repaired history.

    Example:
        ```python
        agent = create_agent(model, tools, middleware=[BridgeMiddleware(), *my_middleware])
        ```
    """

    def __init__(self, failures: Mapping[str, ServerFailure] | None = None) -> None:
        super().__init__()
        self.failures = dict(failures or {})
        self._reported = False

    def before_model(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Answer tool calls a cancelled or failed run left without results; drop orphan answers."""
        return repaired_messages_update(state["messages"])

    async def abefore_model(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Answer tool calls a cancelled or failed run left without results; drop orphan answers."""
        return repaired_messages_update(state["messages"])

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Before the first model call, ask for the OAuth authorizations the run's user has not given.

        Every server refused for want of the user's authorization is listed in one interrupt, a
        URL-mode input request (``{"type": "mcp_input_request", "requests": {server: {"kind":
        "elicitation", "mode": "url", "message", "url"}}}``); resume with ``{server: {"action":
        "accept" | "decline"}}``. A resumed run is a new factory call, which connects the servers
        the user has authorized since. Then the ``custom`` stream hears which optional servers
        are missing.
        """
        if self.failures and not self._reported:
            self._reported = True  # one middleware per run: the graph is built for each run
            self.failures = _authorize(self.failures)
            _write_skipped(self.failures)
        return await handler(request)

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        """Pass tool calls through unchanged."""
        return handler(request)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """Pass tool calls through unchanged."""
        return await handler(request)


def _resolve(spec: str) -> BaseChatModel:
    """The chat model a ``provider:model`` string names, for a run."""
    try:
        return init_chat_model(spec)
    except (ImportError, ValueError) as exc:  # the Agent Server shows a ValueError's message only
        msg = f"cannot resolve the model {spec!r}: {exc}"
        raise ConfigError(msg, field="model") from exc


class _RunOnlyModel(BaseChatModel):
    """Stands in for a ``provider:model`` string in the graph served outside runs, which never calls it."""

    spec: str

    @property
    def _llm_type(self) -> str:
        return "mcpbridge-run-only"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Accept the tools ``create_agent`` binds; the model is never called."""
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        msg = (
            f"the model {self.spec!r} is resolved for runs only; "
            "this graph serves state reads, updates and schema requests"
        )
        raise UsageError(msg)


_INPUT_REQUEST: Final = "mcp_input_request"
"""The ``type`` of the interrupt payload asking the user for input (URL-mode: authorize a server)."""


def _ask(server: str) -> str:
    return (
        f"Sign in at this URL to let the assistant use the MCP server {server!r} on your behalf, "
        "then answer accept; decline to go on without it."
    )


def _authorize(failures: Mapping[str, ServerFailure]) -> dict[str, ServerFailure]:
    """Interrupt once for the servers needing the user's authorization; the failures, with their answers."""
    needed = {name: f for name, f in failures.items() if f.authorization_url is not None}
    if not needed:
        return dict(failures)
    requests = {
        name: {"kind": "elicitation", "mode": "url", "message": _ask(name), "url": f.authorization_url}
        for name, f in needed.items()
    }
    answer: Any = interrupt({"type": _INPUT_REQUEST, "requests": requests})
    answers: Mapping[str, Any] = cast("Mapping[str, Any]", answer) if isinstance(answer, Mapping) else {}
    updated = dict(failures)
    for name, failure in needed.items():
        given: Any = answers.get(name)
        action: Any = cast("Mapping[str, Any]", given).get("action") if isinstance(given, Mapping) else None
        if action == "accept":
            why = "the user has not completed its authorization yet"
        else:
            why = "the user declined to authorize it"
        updated[name] = ServerFailure(server=failure.server, reason=why, required=failure.required)
    return updated


def _write_skipped(failures: Mapping[str, ServerFailure]) -> None:
    try:
        writer = get_stream_writer()
    except RuntimeError:  # outside a graph run
        return
    writer(
        {
            "type": SKIPPED_EVENT,
            "servers": [{"server": f.server, "reason": f.reason} for f in failures.values()],
        }
    )


def authorization_node(failures: Mapping[str, ServerFailure]) -> Callable[..., None]:
    """A node asking the run's user, in one interrupt, for the OAuth authorizations the run lacks.

    For `graph_factory` builders: give it the ``failures`` the builder receives, and put the
    node before the graph's first model call (it changes no state). It raises the interrupt
    `agent_factory`'s agents raise (a URL-mode input request per server, see the OAuth
    guide), then tells the ``custom`` stream which optional servers the run goes without.
    Resume with ``{server: {"action": "accept" | "decline"}}``; the resumed run is a new
    factory call, which connects the servers the user has authorized since.

    Example:
        ```python
        def build(tools, failures):
            graph = StateGraph(MessagesState)
            graph.add_node("authorize", authorization_node(failures))
            graph.add_node("agent", call_model_with(tools))
            graph.add_edge(START, "authorize")
            graph.add_edge("authorize", "agent")
            ...
        ```
    """
    given = dict(failures)

    def authorize(state: Any) -> None:
        if given:
            _write_skipped(_authorize(given))

    return authorize


def _compiled(build: GraphBuilder) -> Callable[[list[BaseTool], Mapping[str, ServerFailure]], AnyGraph]:
    try:
        with_failures = "failures" in inspect.signature(build).parameters
    except (TypeError, ValueError):  # no signature to read (some builtins): the one-argument form
        with_failures = False

    def compiled(tools: list[BaseTool], failures: Mapping[str, ServerFailure]) -> AnyGraph:
        graph = build(tools, failures=failures) if with_failures else build(tools)
        if isinstance(graph, StateGraph):
            return graph.compile()  # pyright: ignore[reportUnknownMemberType]
        return graph

    return compiled


class _Factory:
    """The state one factory keeps across calls: its pool, the cached read graph and its fingerprint."""

    def __init__(
        self,
        servers: ServersSource,
        build: Callable[[list[BaseTool], Mapping[str, ServerFailure]], AnyGraph],
        *,
        build_read: Callable[[], AnyGraph] | None = None,
        identity: IdentityMeta | None,
        on_name_conflict: ConflictPolicy,
        on_mismatch: Literal["error", "warn"],
        pool: SessionPool | bool,
        tool_cache: ToolCache | bool,
        input_policy: InputPolicy | None = None,
    ) -> None:
        if not isinstance(pool, SessionPool | bool):  # pyright: ignore[reportUnnecessaryIsInstance]
            msg = f"pool must be True (the factory's own pool), False or a SessionPool, not {pool!r}"
            raise ConfigError(msg, field="pool")
        self._servers = servers
        self._pool: SessionPool | None = pool if isinstance(pool, SessionPool) else None
        self._own_pool = pool is True
        self._pool_lock = threading.Lock()  # the Agent Server may run a factory on several loop threads
        self._tool_cache = (
            tool_cache if isinstance(tool_cache, ToolCache) else ToolCache() if tool_cache else None
        )
        self._build = build
        self._build_read = build_read or (lambda: build([], {}))
        self._identity = identity or IdentityMeta()
        self._input_policy = input_policy
        self._on_name_conflict: ConflictPolicy = on_name_conflict
        self._on_mismatch: Literal["error", "warn"] = on_mismatch
        self._read_graph: AnyGraph | None = None
        self._read_topology: Topology | None = None
        self._checked: set[tuple[tuple[str, bool], ...]] = set()

    def read_graph(self) -> AnyGraph:
        """The tool-less graph for reads, updates and schemas, built once."""
        if self._read_graph is None:
            self._read_graph = self._build_read()
        return self._read_graph

    def read_topology(self) -> Topology:
        if self._read_topology is None:
            self._read_topology = topology(self.read_graph())
        return self._read_topology

    def pool(self) -> SessionPool | None:
        """The pool runs borrow from: the user's, the factory's own (made at the first run), or none."""
        if self._pool is None and self._own_pool:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = SessionPool()
        return self._pool

    def check(self, graph: AnyGraph, tools: Sequence[BaseTool]) -> None:
        """Check a run's graph against the read graph, once per set of tools (names and ``return_direct``).

        The builder sees nothing else of a run, so a set of tools it was checked with passes again:
        warm runs skip the fingerprint.
        """
        key = tuple((t.name, t.return_direct) for t in tools)
        if key in self._checked:
            return
        if not check_topology(self.read_topology(), topology(graph), on_mismatch=self._on_mismatch):
            if len(self._checked) >= _CHECKED_TOOL_SETS:
                self._checked.clear()
            self._checked.add(key)

    async def selection(self, runtime: ServerRuntime[Any]) -> Selection:
        source: Any = self._servers
        servers: Any = source(runtime) if callable(source) else source
        if inspect.isawaitable(servers):
            servers = await servers
        if isinstance(servers, Selection):
            return servers
        return Selection(servers=tuple(cast("Sequence[ServerConfig]", servers)))

    def as_factory(self) -> GraphFactory:
        @asynccontextmanager
        async def factory(runtime: ServerRuntime[Any]) -> AsyncGenerator[AnyGraph, None]:
            if runtime.execution_runtime is None:
                yield self.read_graph()
                return
            selection = await self.selection(runtime)
            bridge = Bridge(
                selection.servers,
                identity=self._identity,
                on_name_conflict=self._on_name_conflict,
                refused=selection.refused,
                tool_filter=selection.tool_filter,
                pool=self.pool(),
                tool_cache=self._tool_cache,
                guests=selection.registered,
                user=runtime.user.identity if runtime.user is not None else None,
                input_policy=self._input_policy,
                store=getattr(runtime, "store", None),
            )
            async with bridge:
                tools: list[BaseTool] = list(bridge.tools)
                graph = self._build(tools, bridge.failures)
                self.check(graph, tools)
                yield graph

        return factory
