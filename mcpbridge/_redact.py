"""URLs in log records lose their userinfo, query and fragment (they may hold tokens).

httpx2 and httpx log every request's full URL at INFO (``HTTP Request: POST
https://...?token=...``), and the ``mcp`` SDK's clients log endpoint, redirect
and discovery URLs at DEBUG and WARNING. `install_url_redaction` puts one filter
on each of those loggers (once, however often it is called) that rewrites the
record's message (and its exception's text) with every URL passed through
`mcpbridge.config.safe_url`; a record about an elicitation loses its URLs whole (a
URL-mode elicitation's URL is the user's, whatever its shape).
A filter on a logger sees only the records logged on that very logger, so each
logger that may log a URL is named here.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from mcpbridge.config import safe_url

__all__ = ["URL_LOGGERS", "UrlRedactor", "install_url_redaction", "redact_urls"]

URL_LOGGERS: Final = (
    "httpx2",
    "httpx",
    "httpcore2",
    "httpcore",
    "mcp.client.streamable_http",
    "mcp.client.sse",
    "mcp.client.client",
    "mcp.client.auth.oauth2",
    "client",  # the SDK's client session logs under this bare name
    "mcpbridge",
    "mcpbridge.network",
)
"""Every logger known to log a URL of an MCP server."""

_FORMATTER: Final = logging.Formatter()
_URL: Final = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def redact_urls(text: str) -> str:
    """``text`` with each URL in it without userinfo, query or fragment (or whole, about an elicitation)."""
    if "://" not in text:
        return text
    if "elicitation" in text or "elicitationId" in text:
        return _URL.sub("<URL>", text)
    return _URL.sub(lambda match: _redacted(match.group(0)), text)


def _redacted(url: str) -> str:
    if not any(mark in url for mark in ("@", "?", "#")):
        return url  # nothing to remove: keep the URL exactly as written
    return safe_url(url)


class UrlRedactor(logging.Filter):
    """A logging filter that rewrites each record's message with its URLs redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let the handler report it as it would
            return True
        redacted = redact_urls(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        if record.exc_info and not record.exc_text:
            # Exceptions name URLs too (httpx2's status errors do); formatters print exc_text when set.
            record.exc_text = redact_urls(_FORMATTER.formatException(record.exc_info))
        return True


_REDACTOR: Final = UrlRedactor()


def install_url_redaction() -> None:
    """Put the URL filter on every logger of `URL_LOGGERS` that does not have it yet."""
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, UrlRedactor) for f in logger.filters):
            logger.addFilter(_REDACTOR)
