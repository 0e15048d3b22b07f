"""``mcpbridge.testing.echo``: the example server's three tools, in memory."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client

from mcpbridge.testing import echo

pytestmark = pytest.mark.anyio


async def test_the_server_offers_whoami_add_and_count() -> None:
    with anyio.fail_after(10):
        async with Client(echo.server) as client:
            tools = await client.list_tools()
    assert [tool.name for tool in tools.tools] == ["whoami", "add", "count"]


async def test_whoami_returns_the_identity_under_the_mcpbridge_prefix_only() -> None:
    meta: Any = {"dev.mcpbridge/user_id": "alice", "dev.mcpbridge/thread_id": "t-1", "other/key": "x"}
    with anyio.fail_after(10):
        async with Client(echo.server) as client:
            result = await client.call_tool("whoami", {}, meta=meta)
    assert result.structured_content == {"dev.mcpbridge/user_id": "alice", "dev.mcpbridge/thread_id": "t-1"}


async def test_add_adds_and_count_reports_every_step() -> None:
    steps: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append((progress, total, message))

    with anyio.fail_after(10):
        async with Client(echo.server) as client:
            added = await client.call_tool("add", {"a": 2, "b": 40})
            counted = await client.call_tool("count", {"to": 3}, progress_callback=on_progress)
    assert added.structured_content == {"result": 42.0}
    assert counted.structured_content == {"result": "counted to 3"}
    assert steps == [(1, 3, "step 1 of 3"), (2, 3, "step 2 of 3"), (3, 3, "step 3 of 3")]


def test_main_rejects_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        echo.main(["--bogus"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
