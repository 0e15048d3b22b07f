"""Serving graphs of this process: factories called as the Agent Server calls them, threads kept.

A factory is called with a ``_ReadRuntime`` (``assistants.read``) to describe its
tool and (``threads.read``) to look a thread up, and with an ``_ExecutionRuntime``
(``threads.create_run``) for each call (both langgraph-sdk private classes, built
through `mcpbridge._compat`), with the caller as ``runtime.user``. The
run config carries the thread, the run id and the user
(``langgraph_auth_user``), so mcpbridge forwards them to the agent's own MCP
servers. A thread belongs to the graph and the user that started it; another
user's thread is answered exactly as one that does not exist, and "busy" is only
ever said of the caller's own threads: one call at a time per thread, across every
replica on the same Postgres (`mcpbridge.serving.threadlocks`).
"""

from __future__ import annotations

import inspect
import logging
import typing
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import anyio
import mcp_types as types
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command, StateSnapshot
from langgraph_sdk.runtime import ServerRuntime
from mcp import MCPError

from mcpbridge._compat import SERVER_RUNTIME_CLASSES, server_runtime
from mcpbridge.errors import ConfigError
from mcpbridge.serving.backend import NO_INPUT, Caller, ClientInput
from mcpbridge.serving.checkpointers import CheckpointerSpec, open_checkpointer, parse_checkpointer
from mcpbridge.serving.interface import (
    CallInput,
    RunOutcome,
    ToolInterface,
    describe_error,
    error_result,
    interface_for,
)
from mcpbridge.serving.loading import ServedGraph
from mcpbridge.serving.progress import ProgressReporter
from mcpbridge.serving.questions import PendingInput, questions_of
from mcpbridge.serving.resuming import call_input, follow_up, resume_answers
from mcpbridge.serving.threadlocks import ThreadLocks, open_thread_locks
from mcpbridge.serving.users import User

__all__ = ["LocalGraphs"]

logger = logging.getLogger("mcpbridge")

AnyGraph = Pregel[Any, Any, Any, Any]
AccessContext = Literal["threads.create_run", "threads.update", "threads.read", "assistants.read"]

OWNER_KEY = "mcpbridge_owner"
"""Checkpoint metadata: the identity of the user who started the thread (absent without auth)."""
GRAPH_KEY = "mcpbridge_graph"
"""Checkpoint metadata: the served graph the thread belongs to."""

_RUNTIME_NAMES = {"ServerRuntime": ServerRuntime, "RunnableConfig": RunnableConfig}


class LocalGraphs:
    """Runs graphs of this process for MCP calls.

    Args:
        graphs: The graphs, one tool each.
        checkpointer: Where threads are kept: ``"memory"`` (default), ``"sqlite:PATH"``,
            ``"postgres://..."``, or a checkpointer you own.
        store: The store graphs get (``runtime.store``); an ``InMemoryStore`` by default.

    Example:
        ```python
        backend = LocalGraphs([ServedGraph("agent", make_graph)], checkpointer="sqlite:threads.db")
        ```
    """

    def __init__(
        self,
        graphs: Sequence[ServedGraph],
        *,
        checkpointer: str | CheckpointerSpec | BaseCheckpointSaver[Any] | None = None,
        store: BaseStore | None = None,
    ) -> None:
        names = [graph.name for graph in graphs]
        if not names:
            raise ConfigError("no graph to serve; name at least one", field="graphs")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(
                f"two graphs are named {duplicates[0]!r}; give each its own name (name=module:attr)",
                field="graphs",
            )
        self.graphs = tuple(graphs)
        self.checkpointer = checkpointer
        self.store: BaseStore = store if store is not None else InMemoryStore()
        self._memory: BaseCheckpointSaver[Any] | None = None
        self._open: _OpenGraphs | None = None

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[_OpenGraphs, None]:
        """Open the checkpointer and describe every graph."""
        spec = self.checkpointer
        if spec is None or spec == "memory":
            # One in-memory saver for the backend's life, so threads outlive a transport run.
            if self._memory is None:
                self._memory = InMemorySaver()
            spec = self._memory
        if isinstance(spec, str):
            spec = parse_checkpointer(spec)
        # With Postgres, a thread busy in one replica is busy in all that share the database.
        shared = spec.target if isinstance(spec, CheckpointerSpec) and spec.kind == "postgres" else None
        async with open_checkpointer(spec) as saver, open_thread_locks(shared) as locks:
            graphs = _OpenGraphs([_Entry(g) for g in self.graphs], saver, self.store, locks)
            await graphs.describe_all()
            self._open = graphs
            try:
                yield graphs
            finally:
                if self._open is graphs:
                    self._open = None

    def header_schema(self, name: str) -> Mapping[str, Any] | None:
        """The input schema of tool ``name`` if it declares ``Mcp-Param-*`` headers, else ``None``.

        The same for every caller (a graph is described once), so the MCP SDK checks a
        2026-era call's headers against it without listing the tools for each call; ``None``
        also while the backend is not running or the graph not yet described.
        """
        return None if self._open is None else self._open.header_schema(name)


@dataclass
class _Entry:
    served: ServedGraph
    interface: ToolInterface | None = None
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    bound: AnyGraph | None = None
    """A compiled graph with the checkpointer and store, made once (a factory makes one per access)."""

    @property
    def name(self) -> str:
        return self.served.name


class _OpenGraphs:
    def __init__(
        self,
        entries: Sequence[_Entry],
        checkpointer: BaseCheckpointSaver[Any],
        store: BaseStore,
        locks: ThreadLocks,
    ) -> None:
        self._entries = {entry.name: entry for entry in entries}
        self._checkpointer = checkpointer
        self._store = store
        for entry in entries:
            value: Any = entry.served.graph
            if isinstance(value, Pregel):
                entry.bound = self._bind(cast(AnyGraph, value))
        self._locks = locks
        """Threads with a call running, by (caller, thread): a caller never sees another's."""

    async def describe_all(self) -> None:
        for entry in self._entries.values():
            try:
                await self._interface(entry, None)
            except PermissionError:  # the factory wants a user even to be described: wait for one
                logger.info("graph %r will be described at the first request, with its user", entry.name)

    def header_schema(self, name: str) -> Mapping[str, Any] | None:
        entry = self._entries.get(name)
        return None if entry is None or entry.interface is None else entry.interface.header_schema

    async def list_tools(self, caller: Caller) -> list[types.Tool]:
        tools: list[types.Tool] = []
        for entry in self._entries.values():
            interface = await self._interface(entry, caller.user)
            description = entry.served.description or interface.describe(entry.name)
            tools.append(interface.tool(entry.name, description))
        return tools

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        caller: Caller,
        progress: ProgressReporter,
        *,
        client: ClientInput = NO_INPUT,
    ) -> types.CallToolResult | types.InputRequiredResult:
        entry = self._entries.get(name)
        if entry is None:
            raise MCPError(
                code=types.INVALID_PARAMS,
                message=f"unknown tool {name!r}; this server offers {', '.join(sorted(self._entries))}",
            )
        interface = await self._interface(entry, caller.user)
        user = caller.user
        identity = user.identity if user is not None else None
        found = call_input(interface, arguments, client, name, identity)
        if isinstance(found, str):
            return error_result(found)
        parsed, pending = found
        thread_id = parsed.thread_id or str(uuid.uuid4())
        # Keyed by the caller too: a call with another user's thread id never meets that thread's
        # "busy" (an existence oracle) nor blocks its owner; `_thread` answers it as unknown.
        try:
            async with self._locks.claim((identity, thread_id)) as claimed:
                if not claimed:
                    return error_result(
                        f"Thread {thread_id} is busy with another call; wait for it to end, then call again."
                    )
                return await self._call_claimed(
                    entry, interface, name, thread_id, parsed, pending, user, progress, client
                )
        except MCPError:
            raise
        except Exception as exc:  # the claim itself failed (the run's own failures are results)
            logger.warning("cannot claim thread %s of graph %r", thread_id, name, exc_info=True)
            return error_result(
                f"Cannot tell whether thread {thread_id} is free ({describe_error(exc)}); call again later."
            )

    async def _call_claimed(
        self,
        entry: _Entry,
        interface: ToolInterface,
        name: str,
        thread_id: str,
        parsed: CallInput,
        pending: PendingInput | None,
        user: User | None,
        progress: ProgressReporter,
        client: ClientInput,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Run a call on ``thread_id``, which it has claimed."""
        identity = user.identity if user is not None else None
        run_id = uuid.uuid4()
        try:
            run_input: dict[str, Any] | Command[Any] = parsed.input
            if parsed.thread_id is not None:
                state = await self._thread(entry, thread_id, user)
                if isinstance(state, str):
                    return error_result(state)
                if pending is not None or parsed.resuming:
                    checkpoint_id = str((state.config.get("configurable") or {}).get("checkpoint_id", ""))
                    waiting = RunOutcome(
                        thread_id,
                        pending.run_id if pending is not None else "",
                        state.values,
                        questions=questions_of(state.interrupts),
                        checkpoint_id=checkpoint_id,
                    )
                    answers = resume_answers(interface, waiting, parsed.resume, pending, client)
                    if not isinstance(answers, dict):
                        return answers
                    run_input = Command(resume=answers)
                elif state.interrupts:
                    return error_result(
                        f"Thread {thread_id} waits for input (an interrupt) and takes no new message until "
                        f"it is resumed (the {interface.resume_key} argument); leave out thread_id to start "
                        "a new conversation."
                    )
            while True:
                config = _run_config(entry.name, thread_id, run_id, user)
                outcome = await self._run(entry, run_input, config, user, progress)
                answered = await follow_up(interface, outcome, client, name, identity)
                if not isinstance(answered, dict):
                    return answered
                run_input, run_id = Command(resume=answered), uuid.uuid4()
        except MCPError:
            raise
        except Exception as exc:  # boundary: the client gets a readable message, the log the details
            logger.warning("run %s of graph %r on thread %s failed", run_id, name, thread_id, exc_info=True)
            return error_result(f"The run of {name!r} failed (thread {thread_id}): {describe_error(exc)}")

    async def _run(
        self,
        entry: _Entry,
        run_input: dict[str, Any] | Command[Any],
        config: RunnableConfig,
        user: User | None,
        progress: ProgressReporter,
    ) -> RunOutcome:
        """How the run went (the checkpoint it stopped at is read only when it stopped at interrupts)."""
        values: Mapping[str, Any] | None = None
        interrupts: list[Any] = []
        checkpoint_id = ""
        async with self._graph(entry, "threads.create_run", user, config) as graph:
            runner: Any = graph  # astream's overloads are partly untyped
            # `updates` carry interrupts, `values` the final state; `custom` is for progress only (and
            # streaming it makes LangGraph run each step through its slower streaming path).
            modes = ["updates", "custom", "values"] if progress.active else ["updates", "values"]
            stream = cast(
                AsyncGenerator[tuple[str, Any], None], runner.astream(run_input, config, stream_mode=modes)
            )
            async with aclosing(stream):
                async for mode, chunk in stream:
                    if mode == "values":
                        values = cast(Mapping[str, Any], chunk)
                    elif mode == "updates":
                        if isinstance(chunk, Mapping) and "__interrupt__" in chunk:
                            interrupts.extend(cast(Sequence[Any], chunk["__interrupt__"]))
                        await progress.update(chunk)
                    else:
                        await progress.custom(chunk)
            output = _output(graph, values)
            if interrupts:
                configurable = config.get("configurable") or {}
                state = await graph.aget_state({"configurable": {"thread_id": configurable["thread_id"]}})
                checkpoint_id = str((state.config.get("configurable") or {}).get("checkpoint_id", ""))
        configurable = config.get("configurable") or {}
        outcome = RunOutcome(
            thread_id=str(configurable["thread_id"]),
            run_id=str(config.get("run_id")),
            values=values,
            interrupts=[getattr(i, "value", i) for i in interrupts],
            output=output,
            questions=questions_of(interrupts),
            checkpoint_id=checkpoint_id,
        )
        return outcome

    async def _thread(self, entry: _Entry, thread_id: str, user: User | None) -> StateSnapshot | str:
        """The state of ``thread_id`` if ``user`` may continue it on this graph, else why not."""
        async with self._graph(
            entry, "threads.read", user, _run_config(entry.name, thread_id, None, user)
        ) as graph:
            state = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        metadata: Mapping[str, Any] = state.metadata or {}
        owner = metadata.get(OWNER_KEY)
        identity = user.identity if user is not None else None
        if state.created_at is None or metadata.get(GRAPH_KEY) != entry.name or owner != identity:
            # Someone else's thread looks exactly like one that does not exist.
            return (
                f"There is no thread {thread_id} for {entry.name!r}. Leave out thread_id to start a new "
                "conversation, or pass the thread_id an earlier result of this tool gave you."
            )
        return state

    async def _interface(self, entry: _Entry, user: User | None) -> ToolInterface:
        if entry.interface is not None:
            return entry.interface
        async with entry.lock:
            if entry.interface is None:
                async with self._graph(entry, "assistants.read", user, None) as graph:
                    entry.interface = interface_for(_input_schema(entry.name, graph))
            return entry.interface

    @asynccontextmanager
    async def _graph(
        self, entry: _Entry, access: AccessContext, user: User | None, config: RunnableConfig | None
    ) -> AsyncGenerator[AnyGraph, None]:
        """The graph for one access, with this server's checkpointer and store, as the Agent Server does."""
        if entry.bound is not None:
            yield entry.bound
            return
        value: Any = entry.served.graph
        runtime: Any = server_runtime(access, user=user, store=self._store)
        produced = _call_factory(entry.name, cast(Callable[..., Any], value), config or {}, runtime)
        async with _entered(produced) as graph:
            if isinstance(graph, StateGraph):
                graph = cast("StateGraph[Any, Any, Any, Any]", graph).compile()  # pyright: ignore[reportUnknownMemberType]
            if not isinstance(graph, Pregel):
                raise ConfigError(
                    f"the factory of graph {entry.name!r} gave a {type(graph).__name__}; it must give a "
                    "compiled graph or a StateGraph",
                    field="graph",
                )
            yield self._bind(cast(AnyGraph, graph))

    def _bind(self, graph: AnyGraph) -> AnyGraph:
        return graph.copy(update={"checkpointer": self._checkpointer, "store": self._store})


def _run_config(graph: str, thread_id: str, run_id: uuid.UUID | None, user: User | None) -> RunnableConfig:
    identity = user.identity if user is not None else None
    configurable: dict[str, Any] = {
        "thread_id": thread_id,
        "graph_id": graph,
        "langgraph_auth_user": user,
        "langgraph_auth_user_id": identity,
    }
    metadata: dict[str, Any] = {GRAPH_KEY: graph}
    if identity is not None:
        metadata[OWNER_KEY] = identity
    config: RunnableConfig = {"configurable": configurable, "metadata": metadata}
    if run_id is not None:
        config["run_id"] = run_id
    return config


def _output(graph: AnyGraph, values: Mapping[str, Any] | None) -> Any:
    """The graph's output: the state's output channels (the ``values`` stream carries them all)."""
    channels: Any = graph.output_channels
    if values is None or not isinstance(channels, list):
        return values
    return {key: value for key, value in values.items() if key in cast(list[str], channels)}


def _input_schema(name: str, graph: AnyGraph) -> dict[str, Any] | None:
    try:
        return graph.get_input_jsonschema()
    except Exception as exc:  # a state type pydantic cannot describe: serve it with an open schema
        logger.warning("cannot make an input schema for graph %r (%s); it takes any object", name, exc)
        return None


def _call_factory(name: str, factory: Callable[..., Any], config: RunnableConfig, runtime: Any) -> Any:
    """Call ``factory`` with the runtime and/or config, by its signature, as the Agent Server does."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return factory(runtime)
    try:
        hints = typing.get_type_hints(factory, localns=_RUNTIME_NAMES)
    except Exception:  # annotations that do not resolve: go by names
        hints = {}

    def is_runtime(parameter: inspect.Parameter) -> bool:
        annotation = hints.get(parameter.name, parameter.annotation)
        if annotation is ServerRuntime or typing.get_origin(annotation) is ServerRuntime:
            return True
        if isinstance(annotation, type) and issubclass(annotation, SERVER_RUNTIME_CLASSES):
            return True
        text = annotation if isinstance(annotation, str) else ""
        return "ServerRuntime" in text or (
            annotation is inspect.Parameter.empty and parameter.name == "runtime"
        )

    if not parameters:
        return factory()
    if len(parameters) == 1:
        return factory(runtime) if is_runtime(parameters[0]) else factory(config)
    if len(parameters) == 2:
        runtime_params = [p for p in parameters if is_runtime(p)]
        if len(runtime_params) == 1:
            other = next(p for p in parameters if p is not runtime_params[0])
            return factory(**{runtime_params[0].name: runtime, other.name: config})
    raise ConfigError(
        f"the factory of graph {name!r} must take the ServerRuntime and/or the config "
        f"(at most one of each), not ({', '.join(p.name for p in parameters)})",
        field="graph",
    )


@asynccontextmanager
async def _entered(value: Any) -> AsyncGenerator[Any, None]:
    """What a factory gave, entered: an async or sync context manager, an awaitable, or a graph."""
    if isinstance(value, AbstractAsyncContextManager):
        async with cast(AbstractAsyncContextManager[Any], value) as entered:
            yield entered
    elif isinstance(value, AbstractContextManager):
        with cast(AbstractContextManager[Any], value) as entered:
            yield entered
    elif inspect.isawaitable(value):
        yield await value
    else:
        yield value
