"""`mcpbridge._compat`: one test per private upstream name it uses, and no other module uses one.

Each test is named after the upstream name and asserts the shape the shim relies
on, so an upgrade that changes it fails that test alone, with the name in it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import typing
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import httpcore2
import httpx2
import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.tools import BaseTool
from langchain_core.tools import base as tools_base
from langchain_core.tracers import context as tracer_context
from langchain_core.tracers.context import register_configure_hook
from langchain_core.utils.env import env_var_is_set
from langgraph.store.memory import InMemoryStore
from langgraph_sdk.runtime import ServerRuntime

import mcpbridge
from mcpbridge import _compat
from mcpbridge._compat import (
    RUN_ACCESS,
    SERVER_RUNTIME_CLASSES,
    configure_hooks,
    env_flag_set,
    resolve_arun_hints,
    server_runtime,
    set_injected_args_keys,
    set_transport_pool,
)
from mcpbridge.tools import MCPTool

pytestmark = pytest.mark.anyio

# --- Python --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [(None, False), ("", False), ("0", False), ("false", False), ("1", True)]
)
def test_python_os_environ_data_answers_as_env_var_is_set(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    """``os.environ._data``: what ``os.environ`` writes is read there, as LangChain reads it."""
    assert _compat._ENV_DATA is not None  # pyright: ignore[reportPrivateUsage]
    name = "MCPBRIDGE_COMPAT_FLAG"
    if value is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, value)
    assert env_flag_set(name) is expected is env_var_is_set(name)


# --- langchain-core ------------------------------------------------------------------------------


def test_langchain_core_configure_hooks_is_a_list() -> None:
    """``tracer_context._configure_hooks``: the list ``register_configure_hook`` appends 4-tuples to."""
    var: ContextVar[Any] = ContextVar("compat_hook", default=None)
    hooks = configure_hooks()
    assert hooks is not None
    assert hooks is tracer_context._configure_hooks  # pyright: ignore[reportPrivateUsage]
    before = len(hooks)
    register_configure_hook(var, True, AsyncCallbackHandler, "MCPBRIDGE_COMPAT_HOOK")
    try:
        assert len(hooks) == before + 1
        assert hooks[-1] == (var, True, AsyncCallbackHandler, "MCPBRIDGE_COMPAT_HOOK")
    finally:
        hooks.pop()


class _Inputs(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.inputs: list[dict[str, Any] | None] = []

    async def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.inputs.append(inputs)


class _KeyedTool(BaseTool):
    """A tool taking an injected argument under a name of its own, as `MCPTool` does."""

    name: str = "keyed"
    description: str = "Answer ``x``."
    args_schema: dict[str, Any] = {"type": "object", "properties": {"x": {"type": "integer"}}}  # pyright: ignore[reportIncompatibleVariableOverride]
    key: str = "injected"
    received: list[dict[str, Any]] = []

    def _run(self, /, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def _arun(self, /, *args: Any, **kwargs: Any) -> str:
        self.received.append(kwargs)
        return str(kwargs.get("x"))


set_injected_args_keys(_KeyedTool, "key")


async def test_langchain_core_base_tool_injected_args_keys() -> None:
    """``BaseTool._injected_args_keys``: the keys kept out of the inputs callbacks see, kept for ``_arun``."""
    assert "_injected_args_keys" in vars(BaseTool)
    tool = _KeyedTool(key="rt")
    assert tool._injected_args_keys == frozenset({"rt"})  # pyright: ignore[reportPrivateUsage]
    listener, runtime = _Inputs(), object()
    result = await tool.ainvoke({"x": 1, "rt": runtime}, {"callbacks": [listener]})
    assert result == "1"
    assert listener.inputs == [{"x": 1}]
    assert tool.received == [{"x": 1, "rt": runtime}]


async def test_langchain_core_base_tool_arun_type_hints_read_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``BaseTool.arun`` reads ``_arun``'s type hints (``_get_runnable_config_param``) on every call."""
    read: list[object] = []
    get_type_hints = tools_base.get_type_hints  # pyright: ignore[reportPrivateImportUsage]

    def recording(obj: Any, *args: Any, **kwargs: Any) -> Any:
        read.append(getattr(obj, "__func__", obj))
        return get_type_hints(obj, *args, **kwargs)

    monkeypatch.setattr(tools_base, "get_type_hints", recording)
    tool = _KeyedTool()
    arun = _KeyedTool._arun  # pyright: ignore[reportPrivateUsage]
    for _ in range(2):
        await tool.ainvoke({"x": 2}, {"callbacks": [_Inputs()]})
    assert read.count(arun) >= 2
    resolve_arun_hints(MCPTool)  # what mcpbridge.tools does on import: idempotent
    hints = MCPTool._arun.__annotations__  # pyright: ignore[reportPrivateUsage]
    assert hints and not any(isinstance(value, str) for value in hints.values())


# --- langgraph-sdk -------------------------------------------------------------------------------


def test_langgraph_sdk_server_runtime_is_execution_runtime_or_read_runtime() -> None:
    """``ServerRuntime`` is the union of ``_ExecutionRuntime`` and ``_ReadRuntime``."""
    members = typing.get_args(ServerRuntime.__value__)
    assert tuple(typing.get_origin(member) or member for member in members) == SERVER_RUNTIME_CLASSES


def test_langgraph_sdk_execution_runtime_and_read_runtime_take_access_user_store() -> None:
    """``_ExecutionRuntime`` (runs) and ``_ReadRuntime`` take ``access_context``, ``user`` and ``store``."""
    execution, read = SERVER_RUNTIME_CLASSES
    store, user = InMemoryStore(), object()
    run = server_runtime(RUN_ACCESS, user=user, store=store)
    described = server_runtime("assistants.read", user=None, store=store)
    assert type(run) is execution and type(described) is read
    assert (run.access_context, run.user, run.store) == (RUN_ACCESS, user, store)
    assert (described.access_context, described.user, described.store) == ("assistants.read", None, store)


# --- httpx2 --------------------------------------------------------------------------------------


class _Refusing(httpcore2.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(
        self, host: str, port: int, *args: Any, **kwargs: Any
    ) -> httpcore2.AsyncNetworkStream:
        self.hosts.append(host)
        raise httpcore2.ConnectError("refused")


async def test_httpx2_async_http_transport_pool() -> None:
    """``AsyncHTTPTransport._pool``: the httpcore2 pool every request of the transport goes through."""
    transport = httpx2.AsyncHTTPTransport()
    assert isinstance(transport._pool, httpcore2.AsyncConnectionPool)  # pyright: ignore[reportPrivateUsage]
    backend = _Refusing()
    set_transport_pool(transport, httpcore2.AsyncConnectionPool(network_backend=backend))
    async with transport:
        with pytest.raises(httpx2.ConnectError):
            await transport.handle_async_request(httpx2.Request("GET", "http://compat.test/"))
    assert backend.hosts == ["compat.test"]


# --- no other module uses a private upstream name ------------------------------------------------

UPSTREAM = frozenset(
    {
        "langchain_core",
        "langchain",
        "langgraph",
        "langgraph_sdk",
        "langgraph_api",
        "mcp",
        "mcp_types",
        "httpx2",
        "httpcore2",
    }
)
EXTENSION_POINTS = frozenset({"_run", "_arun", "_generate", "_agenerate", "_llm_type", "_identifying_params"})
"""Private by name, documented by LangChain as what a subclass overrides."""
PACKAGE = Path(mcpbridge.__file__).parent
ATTRIBUTE_FUNCTIONS = frozenset({"getattr", "setattr", "hasattr", "delattr"})


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _upstream_bases(value: object) -> list[type]:
    if not inspect.isclass(value):
        return []
    return [base for base in value.__mro__[1:] if base.__module__.split(".")[0] in UPSTREAM]


def _upstream_defines(value: object, name: str) -> bool:
    """Whether an upstream base class of ``value`` defines ``name`` (attribute or pydantic private one)."""
    return any(
        name in vars(base) or name in (getattr(base, "__private_attributes__", None) or {})
        for base in _upstream_bases(value)
    )


class _Finder(ast.NodeVisitor):
    """Private upstream names a module imports, reads or overrides, as ``line: what``.

    Flagged: an import of a private upstream name or module; a private attribute read
    (``x._y``, or ``getattr(x, "_y")`` and kin) on anything but ``self``, ``cls`` or an
    object mcpbridge defines; on those, a private name an upstream base class defines
    (read or, in a class body, overridden), except LangChain's documented extension
    points. Reading another object's private attribute is refused even when it is an
    mcpbridge object, since its type is not known here: none does so.
    """

    def __init__(self, namespace: Mapping[str, object]) -> None:
        self.namespace = namespace
        self.own: set[str] = set()
        self.classes: list[object] = []
        self.found: list[str] = []

    def run(self, tree: ast.Module) -> list[str]:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                self.own.add(node.name)
            elif isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").split(".")[0] == "mcpbridge"
            ):
                self.own.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                self.own.update(
                    (alias.asname or alias.name).split(".")[0]
                    for alias in node.names
                    if alias.name.split(".")[0] == "mcpbridge"
                )
        self.visit(tree)
        return self.found

    def flag(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{getattr(node, 'lineno', 0)}: {what}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        parts = (node.module or "").split(".")
        if node.level == 0 and parts[0] in UPSTREAM:
            if any(_private(part) for part in parts):
                self.flag(node, f"from {node.module} import")
            for alias in node.names:
                if _private(alias.name):
                    self.flag(node, f"from {node.module} import {alias.name}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] in UPSTREAM and any(_private(part) for part in parts):
                self.flag(node, f"import {alias.name}")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        value = self.namespace.get(node.name)
        for statement in node.body:
            names: list[str] = []
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                names = [statement.name]
            elif isinstance(statement, ast.Assign):
                names = [t.id for t in statement.targets if isinstance(t, ast.Name)]
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                names = [statement.target.id]
            for name in names:
                if _private(name) and name not in EXTENSION_POINTS and _upstream_defines(value, name):
                    self.flag(statement, f"{node.name} overrides {name}")
        self.classes.append(value)
        self.generic_visit(node)
        self.classes.pop()

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.check(node, node.value, node.attr)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in ATTRIBUTE_FUNCTIONS and len(node.args) >= 2:
            name = node.args[1]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                self.check(node, node.args[0], name.value)
        self.generic_visit(node)

    def check(self, node: ast.AST, receiver: ast.expr, name: str) -> None:
        if not _private(name):
            return
        where = ast.unparse(receiver)
        if isinstance(receiver, ast.Name) and receiver.id in {"self", "cls"}:
            owner = self.classes[-1] if self.classes else None
            if name not in EXTENSION_POINTS and _upstream_defines(owner, name):
                self.flag(node, f"{where}.{name} (defined upstream)")
        elif isinstance(receiver, ast.Name) and receiver.id in self.own:
            if _upstream_defines(self.namespace.get(receiver.id), name):
                self.flag(node, f"{where}.{name} (defined upstream)")
        else:
            self.flag(node, f"{where}.{name}")


def private_upstream_uses(source: str, namespace: Mapping[str, object] | None = None) -> list[str]:
    """The private upstream names ``source`` uses (``namespace``: the module's, for its classes)."""
    return _Finder(namespace or {}).run(ast.parse(source))


def _modules() -> Iterator[tuple[str, Path]]:
    """The modules of mcpbridge and of the benchmarks (but ``bench/__main__.py``, which runs them)."""
    for directory in (PACKAGE, PACKAGE.parent / "bench"):
        for path in sorted(directory.rglob("*.py")):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            if any(part.startswith(".") for part in parts):  # a peer's venv, such as bench/.venv-adapters
                continue
            if parts[-1] != "__main__":
                yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "from langgraph_sdk.runtime import ServerRuntime, _ReadRuntime",
            ["1: from langgraph_sdk.runtime import _ReadRuntime"],
        ),
        (
            "from langgraph._internal._config import patch_config",
            ["1: from langgraph._internal._config import"],
        ),
        ("import mcp.shared._httpx_utils", ["1: import mcp.shared._httpx_utils"]),
        (
            "from langchain_core.tracers import context\ncontext._configure_hooks",
            ["2: context._configure_hooks"],
        ),
        ('getattr(tracer_context, "_configure_hooks", None)', ["1: tracer_context._configure_hooks"]),
        ("def plug(transport, pool):\n    transport._pool = pool", ["2: transport._pool"]),
        ("self.client._session", ["1: self.client._session"]),
        (
            "from mcpbridge.tools import MCPTool\nMCPTool._arun.__annotations__ = {}",
            ["2: MCPTool._arun (defined upstream)"],
        ),
        (
            "class MCPTool:\n    def _injected_args_keys(self): ...",
            ["2: MCPTool overrides _injected_args_keys"],
        ),
        ("class MCPTool:\n    def _arun(self):\n        self._caller, self._runtime_key", []),
        ("from mcpbridge import _compat\n_compat.configure_hooks()", []),
        ("class A:\n    def f(self):\n        return self._x, A._y", []),
    ],
)
def test_the_private_name_check_finds_each_form(source: str, expected: list[str]) -> None:
    assert private_upstream_uses(source, {"MCPTool": MCPTool}) == expected


def test_the_private_name_check_sees_every_use_in_compat() -> None:
    module = _compat.__name__
    found = private_upstream_uses(Path(_compat.__file__).read_text(), vars(importlib.import_module(module)))
    text = "\n".join(found)
    for name in (
        "_configure_hooks",
        "_injected_args_keys",
        "_arun",
        "_ExecutionRuntime",
        "_ReadRuntime",
        "_pool",
    ):
        assert name in text, f"{name} not seen in {found}"


def test_no_module_but_compat_uses_a_private_upstream_name() -> None:
    """Every private LangChain, LangGraph, mcp or httpx2 name goes through `mcpbridge._compat`.

    That holds for the benchmarks too: they build Agent Server runtimes as the library does.
    """
    uses: dict[str, list[str]] = {}
    for name, path in _modules():
        if name == _compat.__name__:
            continue
        found = private_upstream_uses(path.read_text(), vars(importlib.import_module(name)))
        if found:
            uses[name] = found
    assert uses == {}, "use a private upstream name through mcpbridge._compat only"
