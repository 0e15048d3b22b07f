from __future__ import annotations

import pytest

from mcpbridge import (
    ConfigError,
    ConnectError,
    MCPBridgeError,
    ServerError,
    ServerFailure,
    ToolCallError,
    ToolNameConflictError,
    ToolTimeoutError,
    TopologyMismatchError,
)


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
