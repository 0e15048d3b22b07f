"""A server's log notifications, admitted and written to the process's log.

The server's log notifications go to the ``mcpbridge.server.<name>`` logger with
control characters escaped (a server cannot forge log lines), their text cut to
`LOG_TEXT_CHARS`, their level capped at ``max_log_level``, and their rate bounded
per session (a burst of `LOG_BURST`, then `LOG_PER_SECOND`); a line says how many
were dropped.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any, Final

import mcp_types as types

from mcpbridge._redact import redact_urls
from mcpbridge.config import LogLevel

__all__ = ["LOG_BURST", "LOG_PER_SECOND", "LOG_TEXT_CHARS", "ServerLogs"]

LOG_TEXT_CHARS: Final = 2000
"""The most characters of one server log message that are logged; the rest is cut, with a note."""
LOG_BURST: Final = 50
"""Server log messages one session may send at once before the rate bound applies."""
LOG_PER_SECOND: Final = 10.0
"""Server log messages per second one session may send after its burst; more are dropped and counted."""
_LOGGER_NAME_CHARS: Final = 100
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

_LOG_LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}


class ServerLogs:
    """One server's log notifications: the session's ``logging_callback`` (`on_log`) and its rate bound.

    ``max_log_level`` caps the level a line is logged at; ``log_level`` is the level the
    client asked the server for (``None``: none asked, so nothing is logged).
    """

    def __init__(self, name: str, *, max_log_level: LogLevel, log_level: types.LoggingLevel | None) -> None:
        self.name = name
        self._logger = logging.getLogger(f"mcpbridge.server.{name}")
        self._cap = _LOG_LEVELS[max_log_level]
        self._floor = _LOG_LEVELS[log_level] if log_level is not None else logging.CRITICAL + 1
        self._tokens = float(LOG_BURST)
        self._refilled = time.monotonic()
        self._dropped = 0

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        """Log one notification of the server, if its level and the rate bound admit it."""
        level = _LOG_LEVELS.get(params.level, logging.INFO)
        if level < self._floor:  # below what was asked for: a server ignoring the level
            return
        if not self._admit():
            return
        self.report_dropped()
        source = f"[{_log_text(params.logger, _LOGGER_NAME_CHARS)}] " if params.logger else ""
        # The server picks its level; the deployment caps it, so a server cannot raise alarms.
        self._logger.log(min(level, self._cap), "%s%s", source, _log_text(params.data))

    def _admit(self) -> bool:
        """A token bucket per session: a burst, then a steady rate; what is over it is counted, not logged."""
        now = time.monotonic()
        refill = (now - self._refilled) * LOG_PER_SECOND
        self._tokens = min(float(LOG_BURST), self._tokens + refill)
        self._refilled = now
        if self._tokens < 1:
            self._dropped += 1
            return False
        self._tokens -= 1
        return True

    def report_dropped(self) -> None:
        """Log how many notifications were dropped since the last report, if any were."""
        dropped, self._dropped = self._dropped, 0
        if dropped:
            self._logger.log(
                min(logging.WARNING, self._cap),
                "dropped %d log messages of MCP server %r: it sent more than %d at once or %g a second",
                dropped,
                self.name,
                LOG_BURST,
                LOG_PER_SECOND,
            )


def _log_text(data: Any, limit: int = LOG_TEXT_CHARS) -> str:
    """A server's log data as one line: cut to ``limit`` characters, URLs redacted, controls escaped."""
    if isinstance(data, str):
        text = data
    else:
        try:
            text = json.dumps(data, ensure_ascii=False, default=str)
        except (TypeError, ValueError):  # not JSON data (the SDK parsed it, so rare): its repr
            text = repr(data)
    note = ""
    if len(text) > limit:
        note = f" [cut: {limit:,} of {len(text):,} characters shown]"
        text = text[:limit]
    # The server's text may hold URLs with tokens, like any other log line.
    return _CONTROL_RE.sub(_escape, redact_urls(text)) + note


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")
