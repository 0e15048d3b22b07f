"""LangChain's callback handlers around a tool call: whether any listens, and telling them of it.

`AsyncCallbackManager.configure` is the costliest step of a LangChain tool call
(about 0.1 ms, a tenth of a stdio MCP round trip). `no_listeners` answers whether
it would give a call no handler at all, from the same sources it reads: the
config's (or the enclosing run's) and the tool's callbacks, verbose and debug
modes, LangSmith tracing, and registered configure hooks. Any doubt answers
``False``, and the caller then tells the handlers.

`traced_tool_call` tells them of one tool call as `BaseTool.arun` does (the same
events, payloads and run ids), without the per-call inspection of the tool's
signature and type hints that `BaseTool.arun` repeats on every call, and without
running the call in a task of its own: the call runs no LangChain code that would
read a child config.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.callbacks import AsyncCallbackManager
from langchain_core.globals import get_debug
from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tools import BaseTool
from langchain_core.tracers import context as tracer_context

from mcpbridge._compat import configure_hooks, env_flag_set, langsmith_tracing

__all__ = ["no_listeners", "traced_tool_call"]

_TRACING_V2 = tracer_context.tracing_v2_callback_var


def no_listeners(tool: BaseTool, config: RunnableConfig | None) -> bool:
    """``True`` when LangChain would run ``tool`` with ``config`` without any callback handler.

    ``config`` as the caller gave it: without callbacks of its own, the enclosing
    run's (the config ``ensure_config`` would merge in) count.
    """
    callbacks: Any = config.get("callbacks") if config is not None else None
    if callbacks is None:
        enclosing = var_child_runnable_config.get()
        callbacks = enclosing.get("callbacks") if enclosing else None
    if callbacks and (isinstance(callbacks, list) or callbacks.handlers or callbacks.inheritable_handlers):
        return False
    if tool.callbacks or tool.verbose or get_debug():
        return False
    if _TRACING_V2.get() is not None or langsmith_tracing():
        return False
    # The environment variables of LangChain's v1 tracing (read by `_get_trace_callbacks`).
    if env_flag_set("LANGCHAIN_TRACING") or env_flag_set("LANGCHAIN_HANDLER"):
        return False
    hooks = configure_hooks()
    if hooks is None:
        return False
    for var, _inheritable, handler_class, env_var in hooks:
        if var.get() is not None or (handler_class is not None and env_var and env_flag_set(env_var)):
            return False
    return True


async def traced_tool_call(
    tool: BaseTool,
    call: ToolCall,
    config: RunnableConfig | None,
    inputs: dict[str, Any],
    run: Callable[[ToolCall, RunnableConfig], Awaitable[ToolMessage]],
) -> ToolMessage:
    """Answer ``call`` with ``run``, telling the handlers of its start and end as `BaseTool.arun` does.

    ``inputs`` are the arguments the handlers see (injected ones left out); ``run``
    answers the call, a failure the model can read as an error message. Anything
    ``run`` raises is told to the handlers (``on_tool_error``) and raised.
    """
    config = ensure_config(config)
    manager = AsyncCallbackManager.configure(
        config.get("callbacks"),
        tool.callbacks,
        tool.verbose,
        config.get("tags"),
        tool.tags,
        config.get("metadata"),
        tool.metadata,
    )
    run_manager = await manager.on_tool_start(
        {"name": tool.name, "description": tool.description},
        str(inputs),
        color="green",
        name=config.get("run_name"),
        run_id=config.pop("run_id", None),
        inputs=inputs,
        tool_call_id=call["id"],
    )
    try:
        message = await run(call, config)
    except BaseException as exc:
        await run_manager.on_tool_error(exc, tool_call_id=call["id"])
        raise
    await run_manager.on_tool_end(message, color="green", name=tool.name)
    return message
