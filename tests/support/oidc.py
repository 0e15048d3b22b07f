"""For the OAuth tests: a headless user logging in at the authorization server; a Client ID Metadata Document.

The authorization server itself (``oidc-provider``) and the MCP server it protects are
the demo's (`examples.oauth_servers`). `login` is the user's browser: it follows an
authorization URL, signs in and consents through the provider's development
interactions, and returns the redirect's query (``code``, ``state``, ``iss``).
`metadata_document` serves a Client ID Metadata Document over TLS on 127.0.0.1 (a
``trustme`` CA the provider is told to trust).
"""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx2
import trustme

from tests.support.processes import HOST

__all__ = ["LoginFailed", "MetadataDocument", "login", "metadata_document"]


class LoginFailed(Exception):
    """The headless login did not reach the redirect URI; the message says where it stopped."""


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


async def login(
    authorization_url: str,
    user: str,
    *,
    redirect_uri: str,
    http: httpx2.AsyncClient | None = None,
    max_steps: int = 12,
) -> dict[str, str]:
    """Sign ``user`` in at ``authorization_url`` and consent, as a browser would; return the callback's query.

    Redirects are followed by hand until one points at ``redirect_uri`` (nothing
    listens there: its query is what the authorization server sent the user's
    browser back with). The login and consent forms of ``oidc-provider``'s
    development interactions are posted along the way.

    Raises:
        LoginFailed: The provider answered with an error, or no redirect to ``redirect_uri`` came.
    """
    own = http is None
    client = http or httpx2.AsyncClient(follow_redirects=False, timeout=10.0)
    try:
        url, response = authorization_url, await client.get(authorization_url)
        for _ in range(max_steps):
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                if url.startswith(redirect_uri):
                    return dict(parse_qsl(urlsplit(url).query))
                response = await client.get(url)
                continue
            if response.status_code != 200:
                raise LoginFailed(f"{url} answered {response.status_code}: {response.text[:500]}")
            form = _FORM.search(response.text)
            if form is None:
                raise LoginFailed(f"{url} showed no form: {response.text[:500]}")
            fields = dict(_HIDDEN.findall(form.group(2)))
            if fields.get("prompt") == "login":
                fields.update(login=user, password="any")
            url = urljoin(url, form.group(1))
            response = await client.post(url, data=fields)
        raise LoginFailed(f"no redirect to {redirect_uri} after {max_steps} steps (last: {url})")
    finally:
        if own:
            await client.aclose()


@dataclass
class MetadataDocument:
    """A Client ID Metadata Document served over TLS.

    Attributes:
        url: Its https URL, which is also its ``client_id``.
        ca_path: The PEM of the CA that signed the server's certificate.
        fetches: How many times it was fetched.
    """

    url: str
    ca_path: Path
    fetches: int = 0


@contextmanager
def metadata_document(
    directory: Path, document: Mapping[str, Any]
) -> Generator[MetadataDocument, None, None]:
    """Serve ``document`` (with its ``client_id`` set to its URL) at ``https://127.0.0.1:<port>/oauth/client.json``.

    The server runs in a thread of this process and is shut down on exit.
    """
    ca = trustme.CA()
    ca_path = directory / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    served = MetadataDocument(url="", ca_path=ca_path)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/oauth/client.json":
                self.send_error(404)
                return
            served.fetches += 1
            body = json.dumps({**document, "client_id": served.url}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    served.url = f"https://{HOST}:{server.server_address[1]}/oauth/client.json"
    thread = threading.Thread(target=server.serve_forever, name="metadata-document", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
