"""The OAuth routes in the real Agent Server (``langgraph dev``, ``http.app``, custom route auth).

The deployment is ``tests/support/oauth_app.py``: the callback without a bearer
token, the rest behind the deployment's auth. Alice authorizes at the real
authorization server (oidc-provider) through the Agent Server's callback; her
entry in the store is sealed, and opens with the deployment's key to her tokens.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import httpx2
import jwt
import pytest

from mcpbridge._oauth_sealing import Sealed, binding
from mcpbridge.oauth import KeyRing, Tokens
from tests.support.oidc import AuthorizationServer, authorization_server, login
from tests.support.processes import (
    HOST,
    REPO_ROOT,
    agent_server_command,
    child,
    free_port,
    http_ok,
    port_open,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

APP = REPO_ROOT / "tests" / "support" / "oauth_app.py"
GRAPH = REPO_ROOT / "examples" / "agent.py"
KEYS = KeyRing.generate("e2e")


@dataclass(frozen=True)
class Deployment:
    url: str
    mcp_url: str
    redirect_uri: str
    auth_server: AuthorizationServer


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("oauth-deployment")
    port, mcp_port = free_port(), free_port()
    url = f"http://{HOST}:{port}"
    redirect_uri = f"{url}/mcpbridge/oauth/callback"
    config = {
        "dependencies": [str(REPO_ROOT)],
        "graphs": {"agent": f"{GRAPH}:make_graph"},
        "auth": {"path": f"{APP}:auth", "disable_studio_auth": True},
        "http": {"app": f"{APP}:app", "enable_custom_route_auth": True},
    }
    (workdir / "langgraph.json").write_text(json.dumps(config), encoding="utf-8")
    env = {**os.environ, "MCPBRIDGE_TEST_REDIRECT_URI": redirect_uri, "MCPBRIDGE_OAUTH_KEYS": KEYS}
    env["PYTHONUNBUFFERED"] = "1"
    with authorization_server(workdir) as auth_server:
        mcp_log = workdir / "protected.log"
        command = [sys.executable, "-m", "tests.support.servers.protected", "--port", str(mcp_port)]
        command += ["--issuer", auth_server.issuer]
        with child(command, cwd=REPO_ROOT, env=dict(os.environ), log=mcp_log) as mcp:
            wait_until(lambda: port_open(mcp_port), mcp, mcp_log, "the protected MCP server", 30)
            log = workdir / "agent-server.log"
            with child(
                agent_server_command(port, workdir / "langgraph.json"), cwd=workdir, env=env, log=log
            ) as agent:
                wait_until(lambda: http_ok(f"{url}/ok"), agent, log, "the Agent Server", 90)
                yield Deployment(url, f"http://{HOST}:{mcp_port}/mcp", redirect_uri, auth_server)


async def test_alice_authorizes_through_the_agent_servers_callback(deployment: Deployment) -> None:
    alice = {"Authorization": "Bearer alice-token"}
    with anyio.fail_after(60):
        async with httpx2.AsyncClient(base_url=deployment.url, timeout=30) as http:
            # Without the deployment's auth: the user's routes refuse, the callback answers by its state.
            assert (await http.get("/mcpbridge/oauth/connections")).status_code == 401
            forged = await http.get("/mcpbridge/oauth/callback", params={"state": "forged", "code": "c"})
            assert forged.status_code == 400 and "state_unknown" in forged.text
            body = {"server": "protected", "server_url": deployment.mcp_url}
            started = await http.post("/tests/oauth/start", json=body, headers=alice)
            assert started.status_code == 200, started.text
            params = await login(started.json()["url"], "alice", redirect_uri=deployment.redirect_uri)
            page = await http.get("/mcpbridge/oauth/callback", params=params)
            assert page.status_code == 200 and "return to the chat" in page.text
            replayed = await http.get("/mcpbridge/oauth/callback", params=params)
            assert replayed.status_code == 400
            listed = (await http.get("/mcpbridge/oauth/connections", headers=alice)).json()
            assert [c["server"] for c in listed] == ["protected"]
            bobs = await http.get(
                "/mcpbridge/oauth/connections", headers={"Authorization": "Bearer bob-token"}
            )
            assert bobs.json() == []
            [entry] = (await http.get("/tests/oauth/sealed", headers=alice)).json()
    assert params["code"] not in json.dumps(entry)
    keys = KeyRing.parse(KEYS)
    sealed = Sealed(entry["key_id"], entry["nonce"], entry["ciphertext"])
    opened = keys.open(sealed, binding("alice", entry["issuer"], entry["resource"], deployment.mcp_url))
    assert opened is not None
    tokens = Tokens.from_json(json.loads(opened))
    assert tokens.access_token.get_secret_value() not in json.dumps(entry)
    claims = jwt.decode(tokens.access_token.get_secret_value(), options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["aud"] == deployment.mcp_url
    # Moved to bob, the entry does not open.
    assert keys.open(sealed, binding("bob", entry["issuer"], entry["resource"], deployment.mcp_url)) is None
