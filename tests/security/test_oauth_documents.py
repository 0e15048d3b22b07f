"""A hostile authorization server's documents cannot send the OAuth flow to a refused address.

A server on 127.0.0.1 (the address the policy admits) answers the MCP server's protected
resource metadata and its authorization server's metadata over real HTTP, with one endpoint
pointed at a tripwire on 127.0.0.2 (an address the policy refuses). Starting a user's
authorization is refused, naming the endpoint, nothing is kept, and the tripwire records no
connection.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
from langgraph.store.memory import InMemoryStore

from mcpbridge import OAuthError, UrlPolicy
from mcpbridge.oauth import OAuthFlow, OAuthSettings, StoreClientRegistry, StoreStateStore
from tests.integration.support import SERVER_STOP_TIMEOUT
from tests.security.network import Tripwire

pytestmark = pytest.mark.anyio

HOST, TRAP_HOST = "127.0.0.1", "127.0.0.2"
POLICY = UrlPolicy(allow=[f"{HOST}:*"])


@contextmanager
def hostile_documents(endpoint: str, target: str) -> Generator[tuple[str, list[str]]]:
    """The MCP URL of a server whose authorization server points ``endpoint`` at ``target``; paths asked."""
    asked: list[str] = []
    origin = ""

    class Documents(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            if "oauth-protected-resource" in self.path:
                body: dict[str, Any] = {"resource": f"{origin}/mcp", "authorization_servers": [origin]}
            elif "oauth-authorization-server" in self.path or "openid-configuration" in self.path:
                body = {
                    "issuer": origin,
                    "authorization_endpoint": f"{origin}/auth",
                    "token_endpoint": f"{origin}/token",
                    "registration_endpoint": f"{origin}/reg",
                    "code_challenge_methods_supported": ["S256"],
                    endpoint: target,
                }
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer((HOST, 0), Documents)
    server.daemon_threads = True
    origin = f"http://{HOST}:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, name="hostile-documents", daemon=True)
    thread.start()
    try:
        yield f"{origin}/mcp", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=SERVER_STOP_TIMEOUT)


@pytest.mark.parametrize("endpoint", ["token_endpoint", "registration_endpoint", "authorization_endpoint"])
async def test_an_endpoint_at_a_refused_address_is_never_reached(endpoint: str) -> None:
    store = InMemoryStore()
    settings = OAuthSettings(redirect_uri="http://127.0.0.1:9/mcpbridge/oauth/callback", url_policy=POLICY)
    flow = OAuthFlow(settings, states=StoreStateStore(store), clients=StoreClientRegistry(store))
    with Tripwire(TRAP_HOST) as trap:
        target = f"http://{TRAP_HOST}:{trap.port}/{endpoint}"
        with hostile_documents(endpoint, target) as (mcp_url, asked), anyio.fail_after(30):
            async with flow:
                with pytest.raises(OAuthError) as caught:
                    await flow.start(user="alice", server="hostile", server_url=mcp_url)
        assert await trap.canary() == []
    assert caught.value.reason == "url_refused" and caught.value.field == endpoint
    assert any("oauth-authorization-server" in p or "openid-configuration" in p for p in asked)
    assert store.search(("mcpbridge",)) == [] and list(store.list_namespaces()) == []
