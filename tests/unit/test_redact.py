"""URL redaction in the logs of the HTTP and MCP clients (``mcpbridge._redact``)."""

from __future__ import annotations

import logging

import httpx2
import pytest

from mcpbridge._redact import URL_LOGGERS, UrlRedactor, install_url_redaction, redact_urls


def test_urls_lose_userinfo_query_and_fragment() -> None:
    text = 'HTTP Request: POST https://u:pw@mcp.example.com/mcp?token=s3cret#frag "HTTP/1.1 200 OK"'
    assert redact_urls(text) == 'HTTP Request: POST https://mcp.example.com/mcp "HTTP/1.1 200 OK"'
    assert redact_urls("see http://127.0.0.1:8000/mcp, then") == "see http://127.0.0.1:8000/mcp, then"
    assert redact_urls("no url") == "no url"


def test_the_filter_is_installed_once_on_every_url_logger(caplog: pytest.LogCaptureFixture) -> None:
    install_url_redaction()
    install_url_redaction()
    for name in URL_LOGGERS:
        assert sum(isinstance(f, UrlRedactor) for f in logging.getLogger(name).filters) == 1, name
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpx2").info(
        "HTTP Request: %s %s", "POST", httpx2.URL("https://h.test/p?token=s3cret")
    )
    logging.getLogger("mcp.client.streamable_http").debug("Connecting to https://h.test/mcp?key=s3cret")
    try:
        raise RuntimeError("Client error '404 Not Found' for url 'https://h.test/mcp?token=s3cret'")
    except RuntimeError:
        logging.getLogger("mcp.client.streamable_http").exception("Error in post_writer")
    messages = [r.getMessage() for r in caplog.records]
    assert "HTTP Request: POST https://h.test/p" in messages
    assert "for url 'https://h.test/mcp'" in caplog.text  # the exception's text, redacted
    assert "s3cret" not in caplog.text
    assert "Connecting to https://h.test/mcp" in messages
    assert not any("s3cret" in m for m in messages)


def test_a_record_about_an_elicitation_loses_its_urls_whole() -> None:
    text = "SSE message: method='elicitation/create' params={'url': 'https://login.example.com/flow'}"
    assert "login.example.com" not in redact_urls(text)
    assert redact_urls("GET https://api.example.com/x") == "GET https://api.example.com/x"
