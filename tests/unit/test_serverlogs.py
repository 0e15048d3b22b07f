"""A server's log notifications: escaped, cut, level-capped and rate-bounded."""

from __future__ import annotations

import logging
from typing import Any

import mcp_types as types
import pytest

import mcpbridge._serverlogs as serverlogs
from mcpbridge import MemoryServer
from mcpbridge._connection import ServerConnection
from mcpbridge._serverlogs import ServerLogs


def server_logs(**options: Any) -> ServerLogs:
    """The server log handling of a connection asking for ``info``."""
    config = MemoryServer(name="chatty", server=None, **options)
    connection = ServerConnection(
        config, client_info=types.Implementation(name="t", version="0"), log_level="info"
    )
    return connection._logs


def log_params(
    level: types.LoggingLevel, data: Any, logger: str | None = None
) -> types.LoggingMessageNotificationParams:
    return types.LoggingMessageNotificationParams(level=level, data=data, logger=logger)


@pytest.mark.anyio
async def test_server_log_text_cannot_forge_lines_or_raise_alarms(caplog: pytest.LogCaptureFixture) -> None:
    logs = server_logs()
    forged = "done\n2026-01-01 CRITICAL mcpbridge: admin password reset\x1b[2J\u2028end"
    with caplog.at_level(logging.DEBUG, logger="mcpbridge.server.chatty"):
        await logs.on_log(log_params("emergency", forged, logger="evil\nlogger"))
        await logs.on_log(log_params("debug", "below the level asked for"))
        await logs.on_log(log_params("info", "x" * 10_000))
        await logs.on_log(log_params("error", {"nested": "a\nb"}))
    [forgery, long, nested] = caplog.records
    assert "\n" not in forgery.getMessage() and "\x1b" not in forgery.getMessage()
    assert forgery.getMessage() == (
        "[evil\\nlogger] done\\n2026-01-01 CRITICAL mcpbridge: admin password reset\\x1b[2J\\u2028end"
    )
    assert forgery.levelno == logging.WARNING  # capped at max_log_level
    assert long.getMessage() == "x" * 2000 + " [cut: 2,000 of 10,000 characters shown]"
    assert nested.levelno == logging.WARNING and nested.getMessage() == '{"nested": "a\\nb"}'

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="mcpbridge.server.chatty"):
        await logs.on_log(log_params("info", "fetched https://u:p@api.example.com/v1?token=s3cr3t#f"))
    [redacted] = caplog.records
    assert redacted.getMessage() == "fetched https://api.example.com/v1"  # like every logged URL

    permissive = server_logs(max_log_level="emergency")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="mcpbridge.server.chatty"):
        await permissive.on_log(log_params("emergency", "real emergency"))
    assert [r.levelno for r in caplog.records] == [logging.CRITICAL]


@pytest.mark.anyio
async def test_a_server_log_flood_is_bounded_and_the_drops_are_counted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types as pytypes

    clock = pytypes.SimpleNamespace(now=1000.0)
    monkeypatch.setattr(serverlogs, "time", pytypes.SimpleNamespace(monotonic=lambda: clock.now))
    logs = server_logs()
    with caplog.at_level(logging.DEBUG, logger="mcpbridge.server.chatty"):
        for n in range(10_000):  # all at once: the burst passes, the rest is dropped
            await logs.on_log(log_params("warning", f"message {n}"))
        clock.now += 1.0  # a second later, the steady rate admits 10 more
        for n in range(10_000, 10_020):
            await logs.on_log(log_params("warning", f"message {n}"))
        logs.report_dropped()  # as the session's end does
    messages = [r.getMessage() for r in caplog.records]
    logged = [int(m.split()[1]) for m in messages if m.startswith("message ")]
    burst = serverlogs.LOG_BURST
    assert logged == [*range(burst), *range(10_000, 10_000 + int(serverlogs.LOG_PER_SECOND))]
    summaries = [m for m in messages if m.startswith("dropped ")]
    assert summaries == [
        f"dropped {10_000 - burst} log messages of MCP server 'chatty': it sent more than {burst} at once "
        "or 10 a second",
        "dropped 10 log messages of MCP server 'chatty': it sent more than 50 at once or 10 a second",
    ]
