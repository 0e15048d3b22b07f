"""Every use of a private name of LangChain, LangGraph, ``mcp`` or ``httpx2``, in one place.

Where an upstream package offers no public API for something mcpbridge needs, the
private name is used here and only here, one small function or constant per use,
each documented with the upstream name, the versions it was checked against, and
what breaks without it. ``tests/unit/test_compat.py`` has one test per use, named
after the upstream name, asserting the shape relied on: an upgrade that changes it
fails that one test. The same file checks that no other module of mcpbridge imports
or reads a private upstream name.

The documented extension points of LangChain's base classes (``BaseTool._run`` and
``_arun``, ``BaseChatModel._generate``, ``_agenerate``, ``_llm_type`` and
``_identifying_params``) are meant to be overridden and are not counted here.

The fast tool-call path
-----------------------
`MCPTool.ainvoke <mcpbridge.tools.MCPTool.ainvoke>` answers a ``ToolNode`` tool call
without LangChain's callback machinery when `mcpbridge._callbacks.no_listeners` finds
that no handler listens; that check reads `configure_hooks` below. When one listens,
`mcpbridge._callbacks.traced_tool_call` tells the handlers of the call as
``BaseTool.arun`` does. The fast path is kept only as long as the benchmark shows that
it pays against the thinnest MCP tool through ``ToolNode`` (the raw client's call,
itself answered without callbacks). ``python -m bench.fastpath --calls 300 --repeats 5``
measures the three interleaved over stdio, mcpbridge with the path and with it switched
off. On 2026-12-03 (langchain-core 1.8.3, langgraph 1.2.24, mcp 2.3.0, a shared 2-core
machine), when a listened call still took ``BaseTool.arun``, as median (range) of the
five repetitions' medians: with the path mcpbridge took 1.14x (1.02-1.17x) the thinnest
tool's time, without it 1.27x (1.12-1.33x); the path saved 0.23 ms (0.18-0.24 ms) a
call. Since listened calls take `traced_tool_call`, the path saves less: 0.04 ms of CPU
a call on that machine under load (a ``ToolNode`` call answered in memory: 0.147 ms with
the path, 0.187 ms without, 0.070 ms for the thinnest tool), which stdio timings there
were too noisy to show.
Decision: the path is kept; rerun that command on an upstream upgrade, and drop the
path when it no longer pays.
"""

from __future__ import annotations

import os
import typing
from contextvars import ContextVar
from typing import Any, Final, cast

import httpcore2
import httpx2
from langchain_core.tools import BaseTool
from langchain_core.tracers import context as tracer_context
from langgraph._internal import _constants as _lg_constants
from langgraph_sdk.runtime import _ExecutionRuntime, _ReadRuntime  # pyright: ignore[reportPrivateUsage]
from langsmith import utils as _ls_utils
from langsmith._internal import _context as _ls_context

__all__ = [
    "env_flag_set",
    "langsmith_tracing",
    "pending_interrupt_values",
    "resuming",
    "RUN_ACCESS",
    "SERVER_RUNTIME_CLASSES",
    "ConfigureHook",
    "configure_hooks",
    "resolve_arun_hints",
    "server_runtime",
    "set_injected_args_keys",
    "set_transport_pool",
]

# --- langchain-core ------------------------------------------------------------------------------

ConfigureHook = tuple[ContextVar[Any], bool, type | None, str | None]
"""One entry of ``_configure_hooks``: context variable, inheritable, handler class, env var."""


_HOOKS: object = getattr(tracer_context, "_configure_hooks", None)
_CONFIGURE_HOOKS: Final[list[ConfigureHook] | None] = (
    cast(list[ConfigureHook], _HOOKS) if isinstance(_HOOKS, list) else None
)


def configure_hooks() -> list[ConfigureHook] | None:
    """The configure hooks registered with LangChain, or ``None`` when they cannot be read.

    Upstream: ``langchain_core.tracers.context._configure_hooks``, the list that
    ``register_configure_hook`` appends to and ``CallbackManager.configure`` reads
    (checked with langchain-core 1.7.2 to 1.8.3). No public API lists the hooks.
    The list is read once: it is only ever appended to (``langchain_core.callbacks.manager``
    imports it by name too). Without it, `mcpbridge._callbacks.no_listeners` cannot tell
    whether a hook (LangSmith's, a user's) would attach a handler: on ``None`` it answers
    ``False``, so every tool call takes LangChain's slower path, and the fast path is lost.
    """
    return _CONFIGURE_HOOKS


_LS_ENABLED: ContextVar[Any] | None = getattr(_ls_context, "_TRACING_ENABLED", None)
_LS_RUN_TREE: ContextVar[Any] | None = getattr(_ls_context, "_PARENT_RUN_TREE_REF", None)
_LS_READABLE: Final = (
    _LS_ENABLED is not None and _LS_RUN_TREE is not None and hasattr(_ls_context, "_GLOBAL_TRACING_ENABLED")
)


def langsmith_tracing() -> bool:
    """Whether LangSmith traces here: ``langsmith.utils.tracing_is_enabled()``, without its context dict.

    Upstream: ``tracing_is_enabled`` reads the ``_TRACING_ENABLED`` context variable, the
    current run tree, ``_GLOBAL_TRACING_ENABLED`` and then the environment (through its
    cached ``get_env_var``), in that order (``langsmith._internal._context``; checked with
    langsmith 0.15.1). It builds the whole tracing context on the way, a few microseconds
    on every tool call. Without these names, the public function is called.
    """
    if not _LS_READABLE or _LS_ENABLED is None or _LS_RUN_TREE is None:
        return bool(_ls_utils.tracing_is_enabled())  # pyright: ignore[reportUnknownMemberType]
    value: Any = _LS_ENABLED.get()
    if value is not None:
        return bool(value)
    tree: Any = _LS_RUN_TREE.get()
    if tree is not None and tree() is not None:
        return True
    fallback: Any = _ls_context._GLOBAL_TRACING_ENABLED  # pyright: ignore[reportPrivateUsage]
    if fallback is not None:
        return bool(fallback)
    # Positional arguments: the cache's key of a keyword argument costs twice as much to make.
    default: Any = _ls_utils.get_env_var("TRACING", "")  # pyright: ignore[reportUnknownMemberType]
    return _ls_utils.get_env_var("TRACING_V2", default) == "true"  # pyright: ignore[reportUnknownMemberType]


_ENV_UNSET: Final = frozenset({"", "0", "false", "False"})
"""Values ``langchain_core.utils.env.env_var_is_set`` takes for unset."""
_ENVIRON: Final[Any] = os.environ
_ENV_DATA: Final[dict[Any, Any] | None] = (
    _ENVIRON._data  # pyright: ignore[reportPrivateUsage]
    if isinstance(getattr(_ENVIRON, "_data", None), dict) and callable(getattr(_ENVIRON, "encodekey", None))
    else None
)
_ENV_UNSET_RAW: Final[frozenset[Any]] = frozenset(
    _ENVIRON.encodevalue(value) for value in _ENV_UNSET if _ENV_DATA is not None
)
_ENV_KEYS: dict[str, Any] = {}


def env_flag_set(name: str) -> bool:
    """``langchain_core.utils.env.env_var_is_set(name)``: set, and not to ``""``, ``0`` or ``false``.

    Python: ``os.environ._data``, the dict behind ``os.environ`` that its reads and writes
    go through, keyed and valued as ``encodekey`` and ``encodevalue`` give (checked with
    CPython 3.11). ``os.environ.get`` of an unset name raises and catches a
    ``KeyError`` on the way, about a microsecond, and the fast tool-call path asks of
    several names on every call. Without these names, ``os.environ`` is read.
    """
    data = _ENV_DATA
    if data is None:
        return _ENVIRON.get(name, "") not in _ENV_UNSET
    key = _ENV_KEYS.get(name)
    if key is None:
        key = _ENV_KEYS[name] = _ENVIRON.encodekey(name)
    value = data.get(key)
    return value is not None and value not in _ENV_UNSET_RAW


def set_injected_args_keys(tool_class: type[BaseTool], key_attribute: str) -> None:
    """Make each tool of ``tool_class`` declare ``getattr(tool, key_attribute)`` its injected argument.

    Upstream: ``langchain_core.tools.BaseTool._injected_args_keys`` (a cached property
    that inspects ``_run``/``_arun`` for ``ToolRuntime`` or ``InjectedToolArg``
    parameters; checked with langchain-core 1.7.2 to 1.8.3), read when a tool's input is
    parsed (the key is kept) and when a ``ToolNode`` error is described. An `MCPTool
    <mcpbridge.tools.MCPTool>` takes its ``ToolRuntime`` under a name chosen per tool
    (``runtime``, or another when the server's tool has an argument called so), which
    no signature can declare. Without it, the ``ToolRuntime`` shows among the tool's
    inputs that callbacks see (traces, ``astream_events``).
    """

    def keys(tool: BaseTool) -> frozenset[str]:
        return frozenset({getattr(tool, key_attribute)})

    setattr(tool_class, "_injected_args_keys", property(keys))  # noqa: B010  (a class attribute, by name)


def resolve_arun_hints(tool_class: type[BaseTool]) -> None:
    """Resolve the string annotations of ``tool_class._arun`` once, in place.

    Upstream: ``BaseTool.arun`` calls ``langchain_core.tools.base._get_runnable_config_param``
    on ``_arun`` for every call on LangChain's path, which runs ``typing.get_type_hints``
    on it (checked with langchain-core 1.7.2 to 1.8.3); with ``from __future__ import
    annotations`` each call evaluates the strings again. Without it, calls still work,
    each a little slower.
    """
    arun = tool_class._arun  # pyright: ignore[reportPrivateUsage]
    arun.__annotations__ = typing.get_type_hints(arun)


# --- langgraph-sdk -------------------------------------------------------------------------------

RUN_ACCESS: Final = "threads.create_run"
"""The access context of a run: the Agent Server gives factories an execution runtime for it."""

SERVER_RUNTIME_CLASSES: Final[tuple[type, ...]] = (_ExecutionRuntime, _ReadRuntime)
"""The classes of the runtimes the Agent Server gives graph factories.

Upstream: ``langgraph_sdk.runtime._ExecutionRuntime`` and ``_ReadRuntime``, the classes
behind the public ``ServerRuntime`` alias (checked with langgraph-sdk 0.4.14). A
factory annotated with one of them is called with the runtime; without them, such a
factory is given the config instead (when it takes one argument) or is refused.
"""


def server_runtime(access_context: Any, *, user: Any, store: Any) -> Any:
    """The runtime the Agent Server gives a graph factory for ``access_context``.

    Upstream: ``langgraph_sdk.runtime._ExecutionRuntime`` for ``threads.create_run``,
    ``_ReadRuntime`` for any other access, both built with the keywords
    ``access_context``, ``user`` and ``store`` (checked with langgraph-sdk 0.4.14). The
    SDK has no public constructor; the server builds them in ``langgraph_api``. Without
    it, ``mcpbridge serve`` cannot call a factory as the Agent Server does.
    """
    kind: Any = _ExecutionRuntime if access_context == RUN_ACCESS else _ReadRuntime
    return kind(access_context=access_context, user=user, store=store)


# --- httpx2 --------------------------------------------------------------------------------------


def set_transport_pool(transport: httpx2.AsyncHTTPTransport, pool: httpcore2.AsyncConnectionPool) -> None:
    """Make ``transport`` send every request through ``pool``.

    Upstream: ``httpx2.AsyncHTTPTransport._pool``, the httpcore2 pool the transport
    builds in ``__init__`` and sends every request through (checked with httpx2
    2.16.2). httpx2 has no public way to give a transport a network backend. The
    replaced pool has opened nothing yet. Without it, a server's `UrlPolicy
    <mcpbridge.urlpolicy.UrlPolicy>` cannot check the addresses connected to.
    """
    transport._pool = pool  # pyright: ignore[reportPrivateUsage]


def resuming(config: Any) -> bool:
    """Whether the task of ``config`` runs again with resume values (a cheap test, no checkpoint read).

    Upstream: the task's scratchpad (``CONFIG_KEY_SCRATCHPAD``) holds the resume values
    of a resumed task (checked with langgraph 1.2.24). Without a scratchpad (outside a
    graph), nothing resumes.
    """
    conf: Any = config.get("configurable") if config else None
    scratchpad: Any = conf.get(_lg_constants.CONFIG_KEY_SCRATCHPAD) if conf else None
    if scratchpad is None:
        return False
    return bool(scratchpad.resume) or scratchpad.get_null_resume(False) is not None


async def pending_interrupt_values(config: Any) -> list[Any]:
    """The values of the interrupts this task left pending, when the run resumes it (else none).

    LangGraph keeps them as the task's ``__interrupt__`` writes of the checkpoint the run
    resumes; the task's scratchpad has resume values only then, so other calls cost nothing.
    """
    from langgraph._internal._constants import (
        CONFIG_KEY_CHECKPOINTER,
        CONFIG_KEY_SCRATCHPAD,
        CONFIG_KEY_TASK_ID,
        INTERRUPT,
        NS_END,
        NS_SEP,
    )

    conf = cast("dict[str, Any]", cast("dict[str, Any]", config or {}).get("configurable") or {})
    scratchpad: Any = conf.get(CONFIG_KEY_SCRATCHPAD)
    saver: Any = conf.get(CONFIG_KEY_CHECKPOINTER)
    if scratchpad is None or saver is None or not resuming(config):
        return []
    task_ns: str = conf.get("checkpoint_ns") or ""
    parent_ns = NS_SEP.join(task_ns.split(NS_SEP)[:-1]) if NS_END in task_ns else task_ns
    saved: Any = await saver.aget_tuple(
        {"configurable": {"thread_id": conf.get("thread_id"), "checkpoint_ns": parent_ns}}
    )
    if saved is None:
        return []
    values: list[Any] = []
    writes = cast("list[tuple[str, str, Any]]", saved.pending_writes or [])
    for task_id, channel, value in writes:
        if task_id == conf.get(CONFIG_KEY_TASK_ID) and channel == INTERRUPT:
            items = cast("list[Any]", value) if isinstance(value, (list, tuple)) else [value]
            values.extend(getattr(item, "value", None) for item in items)
    return values
