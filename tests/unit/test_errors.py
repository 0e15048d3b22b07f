from __future__ import annotations

import ast
import builtins
import importlib
import pkgutil
from pathlib import Path
from types import SimpleNamespace

import anyio
import mcp_types as types
import pytest
from mcp.server.mcpserver import MCPServer

import mcpbridge
import mcpbridge.pool
from mcpbridge import (
    Bridge,
    ConfigError,
    ConnectError,
    IdentityError,
    MCPBridgeError,
    MemoryServer,
    ServerError,
    ServerFailure,
    ServerRefusedError,
    SessionPool,
    StdioServer,
    ToolCallError,
    ToolNameConflictError,
    ToolTimeoutError,
    TopologyMismatchError,
    UsageError,
)
from mcpbridge._failures import describe_failure
from mcpbridge._failures import leaf as _leaf
from mcpbridge.server import verified_identity


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (ConfigError, (MCPBridgeError, ValueError)),
        (ToolNameConflictError, (ConfigError,)),
        (ServerError, (MCPBridgeError, RuntimeError)),
        (ConnectError, (ServerError,)),
        (ToolCallError, (ServerError,)),
        (ToolTimeoutError, (ToolCallError, TimeoutError)),
        (TopologyMismatchError, (ConfigError,)),
    ],
)
def test_hierarchy(cls: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    for base in bases:
        assert issubclass(cls, base)


def test_caller_mistakes_and_runtime_failures_are_apart() -> None:
    assert not issubclass(ConfigError, ServerError)
    assert not issubclass(ServerError, ConfigError)


def test_connect_error_lists_required_failures_only() -> None:
    failures = {
        "a": ServerFailure(server="a", reason="down", required=True),
        "b": ServerFailure(server="b", reason="flaky", required=False),
    }
    err = ConnectError(failures)
    assert str(err).startswith("could not connect to 1 required MCP server:\n  - a: down\n")
    assert "flaky" not in str(err)
    assert "required=False" in str(err)
    assert err.server == "a"
    assert err.failures == failures
    failures["c"] = ServerFailure(server="c", reason="gone", required=True)
    assert "c" not in err.failures


def test_connect_error_plural() -> None:
    err = ConnectError({n: ServerFailure(server=n, reason="down", required=True) for n in ("a", "b")})
    assert "2 required MCP servers" in str(err)


def test_tool_call_error_attributes() -> None:
    err = ToolTimeoutError("slow", server="s", tool="t")
    assert (err.server, err.tool, err.code, err.data) == ("s", "t", None, None)
    err2 = ToolCallError("bad", server="s", tool="t", code=-32602, data={"x": 1})
    assert (err2.code, err2.data) == (-32602, {"x": 1})


# --- the tree holds for every exception mcpbridge defines ----------------------------------------------


def _exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(mcpbridge.__path__, prefix="mcpbridge."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__.startswith("mcpbridge")
                and value not in found
            ):
                found.append(value)
    return found


def test_every_exception_class_of_mcpbridge_derives_from_the_base() -> None:
    classes = _exception_classes()
    assert {ConfigError, UsageError, ServerRefusedError, IdentityError} <= set(classes)
    assert len(classes) > 12  # private ones too: the walk saw every module
    outside = [f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, MCPBridgeError)]
    assert outside == []


def _is_validator(node: ast.AST) -> bool:
    if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
        return True  # the module attribute protocol: an unknown name raises AttributeError
    return isinstance(node, ast.FunctionDef) and any(
        isinstance(d, ast.Call) and getattr(d.func, "id", "").endswith("_validator")
        for d in node.decorator_list
    )


def _builtin_raised(node: ast.Raise) -> str | None:
    target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    name = getattr(target, "id", "")
    value = getattr(builtins, name, None)
    return name if isinstance(value, type) and issubclass(value, BaseException) else None


def _missing_extra(tree: ast.Module, node: ast.Raise) -> bool:
    """An ``ImportError`` raised at import time for an optional dependency, as Python reports one."""
    return _builtin_raised(node) == "ImportError" and any(
        node in ast.walk(handler)
        for statement in tree.body
        if isinstance(statement, ast.Try)
        for handler in statement.handlers
    )


def test_no_builtin_exception_is_raised_outside_pydantic_validators() -> None:
    # Pydantic validators must raise ValueError; pydantic turns it into the field's error.
    root = Path(mcpbridge.__file__).parent
    raised: list[str] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_validators = {
            line
            for node in ast.walk(tree)
            if _is_validator(node)
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)  # pyright: ignore[reportAttributeAccessIssue]
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Raise)
                and node.lineno not in in_validators
                and not _missing_extra(tree, node)
            ):
                name = _builtin_raised(node)
                if name is not None:
                    raised.append(f"{path.relative_to(root)}:{node.lineno} raises {name}")
    assert raised == []


def test_usage_error_is_a_runtime_error_and_a_caller_mistake() -> None:
    assert issubclass(UsageError, MCPBridgeError)
    assert issubclass(UsageError, RuntimeError)  # `except RuntimeError` keeps working
    assert not issubclass(UsageError, ServerError)
    assert not issubclass(UsageError, ConfigError)


def test_a_refused_server_is_a_runtime_outcome_not_a_config_error() -> None:
    assert issubclass(ServerRefusedError, MCPBridgeError)
    assert not issubclass(ServerRefusedError, ConfigError)
    assert not issubclass(ServerRefusedError, ServerError)
    err = ServerRefusedError("MCP server 'gh': no credentials", server="gh", field="headers.Authorization")
    assert (err.server, err.field, str(err)) == (
        "gh",
        "headers.Authorization",
        "MCP server 'gh': no credentials",
    )
    assert ServerRefusedError("refused", server="gh").field is None


# --- misuse is a UsageError ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_entering_a_bridge_twice() -> None:
    bridge = Bridge([])
    async with bridge:
        with pytest.raises(UsageError, match="entered only once"):
            await bridge.__aenter__()


def test_bridge_tools_before_entry() -> None:
    with pytest.raises(UsageError, match="not open"):
        _ = Bridge([]).tools


@pytest.mark.anyio
async def test_bridge_tools_after_exit() -> None:
    async with Bridge([]) as bridge:
        assert bridge.tools == []
    with pytest.raises(UsageError, match="not open"):
        _ = bridge.tools


@pytest.mark.anyio
async def test_a_bridge_with_a_closed_pool() -> None:
    pool = SessionPool()
    await pool.aclose()
    with pytest.raises(UsageError, match="closed"):
        async with Bridge([], pool=pool):
            pass


@pytest.mark.anyio
async def test_acquiring_from_a_closed_pool() -> None:
    pool = SessionPool()
    await pool.aclose()
    with pytest.raises(UsageError, match="closed"):
        await pool.acquire(
            MemoryServer(name="demo", server=MCPServer("demo")),
            user=None,
            client_info=types.Implementation(name="test", version="0"),
            log_level=None,
        )


@pytest.mark.anyio
async def test_a_pool_outside_asyncio_without_async_with(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the pool's view of the event loop changes: anyio itself still runs on asyncio.
    monkeypatch.setattr(mcpbridge.pool, "sniffio", SimpleNamespace(current_async_library=lambda: "trio"))
    pool = SessionPool()
    with anyio.fail_after(10):
        with pytest.raises(UsageError, match="outside asyncio"):
            await pool.acquire(
                MemoryServer(name="demo", server=MCPServer("demo")),
                user=None,
                client_info=types.Implementation(name="test", version="0"),
                log_level=None,
            )
        await pool.aclose()  # the refused pool still closes


def test_verified_identity_outside_a_verified_request() -> None:
    with pytest.raises(UsageError, match="IdentityVerifier"):
        verified_identity()


# --- exception groups: one error is unwrapped, several are described as several -----------------------

_STDIO = StdioServer(name="files", command="files-mcp")


def test_a_group_of_one_is_described_by_its_error() -> None:
    missing = FileNotFoundError("files-mcp")
    nested = BaseExceptionGroup("outer", [ExceptionGroup("inner", [missing])])
    assert _leaf(nested) is missing
    assert describe_failure(_STDIO, nested) == describe_failure(_STDIO, missing)
    assert "was not found" in describe_failure(_STDIO, nested)


def test_a_group_of_several_is_described_as_several() -> None:
    group = ExceptionGroup("two", [FileNotFoundError("files-mcp"), ExceptionGroup("one", [TimeoutError()])])
    assert _leaf(group) is group
    reason = describe_failure(_STDIO, group, "last line")
    assert reason.startswith("2 failures: (1) command 'files-mcp' was not found")
    assert "(2) files-mcp did not answer in time" in reason
    assert reason.count("last line") == 1  # the server's stderr once, not once per error
