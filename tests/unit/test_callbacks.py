"""`no_listeners`: every source of a LangChain callback handler sends a call down LangChain's own path."""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, cast

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, AsyncCallbackManager, Callbacks
from langchain_core.globals import set_debug
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tools import BaseTool, tool
from langchain_core.tracers import context as tracer_context
from langchain_core.tracers.context import register_configure_hook
from langsmith import utils as langsmith_utils

from mcpbridge._callbacks import no_listeners
from mcpbridge._compat import configure_hooks


@tool
def plain(text: str) -> str:
    """Answer ``text``."""
    return text


def listens(tool_: BaseTool, config: RunnableConfig) -> bool:
    """What LangChain itself decides: does configuring the call give it a handler?"""
    manager = AsyncCallbackManager.configure(
        config.get("callbacks"), tool_.callbacks, tool_.verbose, None, None, None, None
    )
    return bool(manager.handlers)


@pytest.fixture(autouse=True)
def quiet_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING"):
        monkeypatch.delenv(name, raising=False)


def test_nothing_listens_by_default() -> None:
    config: RunnableConfig = {}
    assert no_listeners(plain, config)
    assert not listens(plain, config)


def test_an_empty_callback_manager_or_list_is_no_listener() -> None:
    for callbacks in ([], AsyncCallbackManager(handlers=[])):
        config: RunnableConfig = {"callbacks": callbacks}
        assert no_listeners(plain, config)
        assert not listens(plain, config)


def test_handlers_in_the_config_listen() -> None:
    handler = AsyncCallbackHandler()
    choices: tuple[Callbacks, ...] = ([handler], AsyncCallbackManager(handlers=[handler]))
    for callbacks in choices:
        config: RunnableConfig = {"callbacks": callbacks}
        assert not no_listeners(plain, config)
        assert listens(plain, config)


def test_the_tools_own_callbacks_and_verbose_mode_listen() -> None:
    for changed in (
        plain.model_copy(update={"callbacks": [AsyncCallbackHandler()]}),
        plain.model_copy(update={"verbose": True}),
    ):
        assert not no_listeners(changed, {})
        assert listens(changed, {})


@pytest.fixture
def debug() -> Iterator[None]:
    set_debug(True)
    yield
    set_debug(False)


def test_debug_mode_listens(debug: None) -> None:
    assert not no_listeners(plain, {})


def test_langsmith_tracing_from_the_environment_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_env_cache: Any = cast(Any, langsmith_utils.get_env_var).cache_clear  # LangSmith caches env reads
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    clear_env_cache()
    try:
        assert not no_listeners(plain, {})
    finally:
        monkeypatch.delenv("LANGSMITH_TRACING")
        clear_env_cache()
    assert no_listeners(plain, {})


def test_a_tracer_in_context_listens() -> None:
    token = tracer_context.tracing_v2_callback_var.set(AsyncCallbackHandler())  # pyright: ignore[reportArgumentType]
    try:
        assert not no_listeners(plain, {})
    finally:
        tracer_context.tracing_v2_callback_var.reset(token)


def test_a_registered_configure_hook_listens() -> None:
    var: ContextVar[Any] = ContextVar("mcpbridge_test_hook", default=None)
    register_configure_hook(var, inheritable=True)
    try:
        assert no_listeners(plain, {})
        token = var.set(AsyncCallbackHandler())
        try:
            assert not no_listeners(plain, {})
            assert listens(plain, {})
        finally:
            var.reset(token)
    finally:
        hooks = configure_hooks()
        assert hooks is not None
        hooks.pop()


def test_the_enclosing_runs_handlers_listen_when_the_config_has_none() -> None:
    """Without callbacks of its own, a call has the enclosing run's (as `ensure_config` merges them)."""
    token = var_child_runnable_config.set({"callbacks": [AsyncCallbackHandler()]})
    try:
        configs: tuple[RunnableConfig | None, ...] = (None, {}, {"tags": ["t"]})
        for config in configs:
            assert not no_listeners(plain, config)
            assert listens(plain, ensure_config(config))
        assert no_listeners(plain, {"callbacks": []})  # the call's own callbacks win, as in `ensure_config`
    finally:
        var_child_runnable_config.reset(token)
    assert no_listeners(plain, None)
