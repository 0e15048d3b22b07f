"""Whether a tool call has any LangChain callback handler listening.

`AsyncCallbackManager.configure` is the costliest step of a LangChain tool call
(about 0.1 ms, a tenth of a stdio MCP round trip). `no_listeners` answers whether
it would give a call no handler at all, from the same sources it reads: the
config's and the tool's callbacks, verbose and debug modes, LangSmith tracing,
and registered configure hooks. Any doubt answers ``False``, and the caller then
takes LangChain's own path.
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.globals import get_debug
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.tracers import context as tracer_context
from langchain_core.utils.env import env_var_is_set
from langsmith import utils as langsmith_utils

from mcpbridge._compat import configure_hooks

__all__ = ["no_listeners"]

_V1_TRACING_ENV = ("LANGCHAIN_TRACING", "LANGCHAIN_HANDLER")
_UNSET = frozenset({"", "0", "false", "False"})
"""Values `langchain_core.utils.env.env_var_is_set` takes for unset."""


def no_listeners(tool: BaseTool, config: RunnableConfig) -> bool:
    """``True`` when LangChain would run ``tool`` with ``config`` without any callback handler."""
    callbacks: Any = config.get("callbacks")
    if callbacks and (isinstance(callbacks, list) or callbacks.handlers or callbacks.inheritable_handlers):
        return False
    if tool.callbacks or tool.verbose or get_debug():
        return False
    tracing = langsmith_utils.tracing_is_enabled()  # pyright: ignore[reportUnknownMemberType]
    if tracer_context.tracing_v2_callback_var.get() is not None or tracing:
        return False
    if any(os.environ.get(name, "") not in _UNSET for name in _V1_TRACING_ENV):
        return False
    hooks = configure_hooks()
    if hooks is None:
        return False
    for hook in hooks:
        var, _inheritable, handler_class, env_var = hook
        if var.get() is not None or (handler_class is not None and env_var and env_var_is_set(env_var)):
            return False
    return True
