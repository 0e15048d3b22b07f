"""Per-user OAuth end to end, through the real Agent Server (``langgraph dev``) and ``langgraph-sdk``.

One deployment for the module: the example agent (``examples/agent.py``) with its
OAuth-protected server enabled (``MCPBRIDGE_DEMO_OAUTH_URL``), the example auth, and
``tests/support/oauth_app.py`` as ``http.app`` (the example's OAuth routes, and one
route showing a user's entries as the store keeps them). Beside it run a real
authorization server (oidc-provider, short-lived access tokens, rotated refresh tokens)
and the MCP SDK's protected server, which verifies each token with the authorization
server's keys and records each caller's subject. A headless client is the users' browser.

What is counted comes from the other programs' own records: refreshes and revocations
from the authorization server's event log, callers from the protected server's record.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
import jwt
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from examples.oauth_servers import AuthorizationServer, authorization_server, protected_server
from mcpbridge._oauth_sealing import Sealed, binding
from mcpbridge.oauth import KeyRing, Tokens
from tests.support.oidc import login
from tests.support.processes import (
    CONFIG,
    REPO_ROOT,
    DemoServers,
    demo_servers,
    free_port,
    portable_config,
    stop,
    tail,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(240)]

APP = REPO_ROOT / "tests" / "support" / "oauth_app.py"
KEYS = KeyRing.generate("e2e")
SERVER = "oauth"
TOKEN_TTL = 10
"""Seconds an access token lives at the authorization server (refreshed after half of it)."""
TOKENS = {"alice": "alice-token", "bob": "bob-token"}
ASK: dict[str, Any] = {"messages": [{"role": "user", "content": "call oauth_whoami {}"}]}
ACCEPT = {"resume": {SERVER: {"action": "accept"}}}
STREAM_MODES: list[Any] = [
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "events",
    "debug",
    "tasks",
    "checkpoints",
]


@dataclass
class Deployment:
    servers: DemoServers
    workdir: Path
    auth_server: AuthorizationServer
    mcp_url: str
    record: Path
    log: Path
    secrets: set[str] = field(default_factory=set[str])
    """Every access and refresh token seen in the test, to look for where none may be."""
    codes: set[str] = field(default_factory=set[str])
    """Every authorization code the users' browsers brought back."""
    threads: dict[str, list[str]] = field(default_factory=lambda: {"alice": [], "bob": []})

    @property
    def url(self) -> str:
        return self.servers.url

    @property
    def callback(self) -> str:
        return f"{self.url}/mcpbridge/oauth/callback"

    def callers(self) -> list[str]:
        """The subjects the protected server recorded, in order."""
        if not self.record.exists():
            return []
        return [json.loads(line)["subject"] for line in self.record.read_text().splitlines() if line]

    def events(self, name: str, account: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.auth_server.events(name) if account is None or e["account"] == account]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir, outside = tmp_path_factory.mktemp("agent-server"), tmp_path_factory.mktemp("oauth")
    config = portable_config(CONFIG, workdir)
    data = json.loads(config.read_text())
    data["http"]["app"] = f"{APP}:app"
    config.write_text(json.dumps(data))
    port, record = free_port(), outside / "callers.jsonl"
    with (
        authorization_server(outside, access_token_ttl=TOKEN_TTL) as auth_server,
        protected_server(auth_server.issuer, outside, record=record) as mcp_url,
    ):
        env = {
            "MCPBRIDGE_DEMO_OAUTH_URL": mcp_url,
            "MCPBRIDGE_DEMO_OAUTH_REDIRECT_URI": f"http://127.0.0.1:{port}/mcpbridge/oauth/callback",
            "MCPBRIDGE_OAUTH_KEYS": KEYS,
            "MCPBRIDGE_MODEL": "",
            "LOG_LEVEL": "DEBUG",
            "PYTHONUNBUFFERED": "1",
        }
        with demo_servers(
            port=port, mcp_port=free_port(), workdir=workdir, config=config, logs=workdir, env=env, jobs=4
        ) as servers:
            yield Deployment(servers, workdir, auth_server, mcp_url, record, workdir / "agent-server.log")


@pytest.fixture
async def users(deployment: Deployment) -> AsyncIterator[dict[str, LangGraphClient]]:
    clients = {
        user: get_client(url=deployment.url, api_key=None, headers={"Authorization": f"Bearer {token}"})
        for user, token in TOKENS.items()
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()


# --- helpers -------------------------------------------------------------------------------------


async def new_thread(deployment: Deployment, client: LangGraphClient, user: str) -> str:
    thread_id = (await client.threads.create())["thread_id"]
    deployment.threads[user].append(thread_id)
    return thread_id


async def run(client: LangGraphClient, thread_id: str, **given: Any) -> dict[str, Any]:
    result = await client.runs.wait(thread_id, "agent", **given)  # pyright: ignore[reportUnknownMemberType]
    return cast(dict[str, Any], result)


def asked(result: dict[str, Any]) -> dict[str, Any]:
    """The input requests of the run's one interrupt."""
    assert "__interrupt__" in result, result
    (pending,) = result["__interrupt__"]
    assert pending["value"]["type"] == "mcp_input_request"
    return pending["value"]["requests"]


def subject(result: dict[str, Any]) -> str:
    """The subject the protected server answered the run's ``oauth_whoami`` with."""
    assert "__interrupt__" not in result, result["__interrupt__"]
    (message,) = [m for m in result["messages"] if m["type"] == "tool"]
    assert message["status"] == "success", message["content"]
    content = message["content"]
    text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
    return json.loads(text)["subject"]


async def entry(client: LangGraphClient) -> dict[str, Any]:
    """The user's one token entry as the store keeps it (sealed)."""
    found = await client.http.get("/tests/oauth/sealed")
    (kept,) = cast(list[dict[str, Any]], found)
    return kept


def opened(kept: dict[str, Any], user: str, deployment: Deployment) -> Tokens:
    """A kept entry opened with the deployment's key, as the user's (``None`` would fail the test)."""
    sealed = Sealed(kept["key_id"], kept["nonce"], kept["ciphertext"])
    text = KeyRing.parse(KEYS).open(
        sealed, binding(user, kept["issuer"], kept["resource"], deployment.mcp_url)
    )
    assert text is not None
    other = "bob" if user == "alice" else "alice"  # copied under another user, the entry does not open
    assert (
        KeyRing.parse(KEYS).open(sealed, binding(other, kept["issuer"], kept["resource"], deployment.mcp_url))
        is None
    )
    return Tokens.from_json(json.loads(text))


async def tokens_of(client: LangGraphClient, deployment: Deployment, user: str) -> Tokens:
    """The user's tokens as kept now; remembered as secrets."""
    kept = await entry(client)
    tokens = opened(kept, user, deployment)
    found = [tokens.access_token.get_secret_value()]
    if tokens.refresh_token is not None:
        found.append(tokens.refresh_token.get_secret_value())
    deployment.secrets.update(found)
    assert not [s for s in found if s in json.dumps(kept)]  # sealed
    return tokens


async def past_expiry(tokens: Tokens) -> None:
    """Return once the access token has expired (by the expiry the authorization server gave it)."""
    assert tokens.expires_at is not None
    with anyio.fail_after(TOKEN_TTL + 30):
        while time.time() <= tokens.expires_at:  # noqa: ASYNC110 - the token's own clock, nothing to await
            await anyio.sleep(0.2)


async def authorize(deployment: Deployment, user: str, url: str) -> None:
    """The user's browser: sign in at the authorization server, then through the Agent Server's callback."""
    params = await login(url, user, redirect_uri=deployment.callback)
    deployment.codes.add(params["code"])
    async with httpx2.AsyncClient(timeout=30) as browser:  # no bearer token: the state is the credential
        page = await browser.get(deployment.callback, params=params)
        assert page.status_code == 200 and "return to the chat" in page.text, page.text
        replayed = await browser.get(deployment.callback, params=params)
        assert replayed.status_code == 400 and "state_unknown" in replayed.text


# --- tests ---------------------------------------------------------------------------------------


async def test_the_routes_refuse_what_neither_a_user_nor_a_state_authorizes(deployment: Deployment) -> None:
    async with httpx2.AsyncClient(base_url=deployment.url, timeout=30) as http:
        assert (await http.get("/mcpbridge/oauth/connections")).status_code == 401
        assert (await http.post("/mcpbridge/oauth/disconnect", json={"server": SERVER})).status_code == 401
        forged = await http.get("/mcpbridge/oauth/callback", params={"state": "forged", "code": "c"})
        assert forged.status_code == 400 and "state_unknown" in forged.text
        # What a user writes through the store API lands in their own namespace, never among the tokens.
        alice = {"Authorization": "Bearer alice-token"}
        item = {"namespace": ["mcpbridge", "oauth", "tokens", "alice"], "key": "x", "value": {"a": 1}}
        assert (await http.put("/store/items", json=item, headers=alice)).status_code in (200, 204)
        assert (await http.get("/tests/oauth/sealed", headers=alice)).json() == []


async def test_alice_and_bob_authorize_in_interrupts_and_their_runs_call_as_themselves(
    deployment: Deployment, users: dict[str, LangGraphClient]
) -> None:
    try:
        with anyio.fail_after(180):
            await _authorize_both(deployment, users)
            await _refresh_once_for_concurrent_runs(deployment, users["alice"])
            await _streams_hold_no_token(deployment, users["alice"])
            await _revoking_alices_grant_asks_her_again(deployment, users)
            await _disconnect_acts_for_its_user_only(deployment, users)
            await _tokens_are_nowhere_else(deployment, users)
    except BaseException:
        print(f"Agent Server log (tail):\n{tail(deployment.log, 150)}")
        print(f"oidc-provider events (tail):\n{tail(deployment.auth_server.events_path, 30)}")
        raise


async def _authorize_both(deployment: Deployment, users: dict[str, LangGraphClient]) -> None:
    async def first(user: str) -> None:
        client = users[user]
        thread_id = await new_thread(deployment, client, user)
        request = asked(await run(client, thread_id, input=ASK))[SERVER]
        assert request["kind"] == "elicitation" and request["mode"] == "url"
        assert SERVER in request["message"]
        assert request["url"].startswith(f"{deployment.auth_server.issuer}/")
        await authorize(deployment, user, request["url"])
        assert subject(await run(client, thread_id, command=ACCEPT)) == user
        # Later runs need no interrupt.
        assert subject(await run(client, await new_thread(deployment, client, user), input=ASK)) == user
        tokens = await tokens_of(client, deployment, user)
        claims = jwt.decode(tokens.access_token.get_secret_value(), options={"verify_signature": False})
        assert claims["sub"] == user and claims["aud"] == deployment.mcp_url
        listed = await client.http.get("/mcpbridge/oauth/connections")
        assert [(c["server"], c["server_url"]) for c in listed] == [(SERVER, deployment.mcp_url)]

    async with anyio.create_task_group() as tg:
        for user in users:
            tg.start_soon(first, user)
    assert sorted(deployment.callers()) == ["alice", "alice", "bob", "bob"]


async def _refresh_once_for_concurrent_runs(deployment: Deployment, alice: LangGraphClient) -> None:
    await past_expiry(await tokens_of(alice, deployment, "alice"))
    consumed = len(deployment.events("refresh_token.consumed", "alice"))
    revoked = len(deployment.events("grant.revoked"))
    threads = [await new_thread(deployment, alice, "alice") for _ in range(4)]
    seen: list[str] = []

    async def one(thread_id: str) -> None:
        seen.append(subject(await run(alice, thread_id, input=ASK)))

    async with anyio.create_task_group() as tg:
        for thread_id in threads:
            tg.start_soon(one, thread_id)
    assert seen == ["alice"] * 4
    assert len(deployment.events("refresh_token.consumed", "alice")) == consumed + 1
    assert len(deployment.events("grant.revoked")) == revoked
    await tokens_of(alice, deployment, "alice")


async def _streams_hold_no_token(deployment: Deployment, alice: LangGraphClient) -> None:
    thread_id = await new_thread(deployment, alice, "alice")
    parts: list[str] = []
    async for part in alice.runs.stream(thread_id, "agent", input=ASK, stream_mode=STREAM_MODES):
        parts.append(json.dumps([part.event, part.data], default=str))
    streamed = "\n".join(parts)
    assert '\\"subject\\": \\"alice\\"' in streamed  # the call went, and the stream shows its answer
    assert not [s for s in deployment.secrets | deployment.codes if s in streamed]


async def _revoking_alices_grant_asks_her_again(
    deployment: Deployment, users: dict[str, LangGraphClient]
) -> None:
    alice, bob = users["alice"], users["bob"]
    tokens = await tokens_of(alice, deployment, "alice")
    assert tokens.refresh_token is not None and tokens.revocation_endpoint is not None
    async with httpx2.AsyncClient(timeout=30) as http:  # at the authorization server, not through mcpbridge
        data = {"token": tokens.refresh_token.get_secret_value(), "client_id": tokens.client_id}
        assert (await http.post(tokens.revocation_endpoint, data=data)).status_code == 200
    assert deployment.events("grant.revoked")
    await past_expiry(tokens)
    alices = await new_thread(deployment, alice, "alice")
    bobs = await new_thread(deployment, bob, "bob")
    async with anyio.create_task_group() as tg:

        async def alice_is_asked() -> None:
            request = asked(await run(alice, alices, input=ASK))[SERVER]
            assert request["url"].startswith(f"{deployment.auth_server.issuer}/")

        async def bob_goes_on() -> None:
            assert subject(await run(bob, bobs, input=ASK)) == "bob"

        tg.start_soon(alice_is_asked)
        tg.start_soon(bob_goes_on)
    assert await alice.http.get("/mcpbridge/oauth/connections") == []
    assert [c["server"] for c in await bob.http.get("/mcpbridge/oauth/connections")] == [SERVER]
    assert deployment.callers()[-1] == "bob"


async def _disconnect_acts_for_its_user_only(
    deployment: Deployment, users: dict[str, LangGraphClient]
) -> None:
    alice, bob = users["alice"], users["bob"]
    async with httpx2.AsyncClient(base_url=deployment.url, timeout=30) as http:
        as_alice = {"Authorization": "Bearer alice-token"}
        mine = await http.post("/mcpbridge/oauth/disconnect", json={"server": SERVER}, headers=as_alice)
        assert mine.status_code == 404  # alice has no tokens for it; bob's are not hers to drop
        assert [c["server"] for c in await bob.http.get("/mcpbridge/oauth/connections")] == [SERVER]
        revoked = len(deployment.events("grant.revoked"))
        as_bob = {"Authorization": "Bearer bob-token"}
        done = await http.post("/mcpbridge/oauth/disconnect", json={"server": SERVER}, headers=as_bob)
        assert done.status_code == 200 and done.json() == {
            "server": SERVER,
            "disconnected": True,
            "revoked": True,
        }
    assert len(deployment.events("grant.revoked")) == revoked + 1
    assert await bob.http.get("/mcpbridge/oauth/connections") == []
    assert asked(await run(bob, await new_thread(deployment, bob, "bob"), input=ASK))[SERVER]["url"]
    assert await alice.http.get("/tests/oauth/sealed") == []


async def _tokens_are_nowhere_else(deployment: Deployment, users: dict[str, LangGraphClient]) -> None:
    tokens, codes = deployment.secrets, deployment.codes
    assert len(tokens) >= 6 and len(codes) == 2  # both users' first tokens and codes, alice's refreshed ones
    secrets = tokens | codes
    for user, client in users.items():
        for thread_id in deployment.threads[user]:
            state = json.dumps(await client.threads.get_state(thread_id), default=str)
            history = json.dumps(await client.threads.get_history(thread_id, limit=100), default=str)
            assert not [s for s in secrets if s in state or s in history]
    # The Agent Server writes its state to disk when it stops.
    await anyio.to_thread.run_sync(stop, deployment.servers.agent)
    log = deployment.log.read_text(encoding="utf-8", errors="replace")
    assert "debug" in log.lower()
    on_disk = [p for p in deployment.workdir.rglob("*") if p.is_file()]
    assert any(p.parts[-2] == ".langgraph_api" or ".langgraph_api" in p.parts for p in on_disk)
    for path in on_disk:
        data = path.read_bytes()
        assert not [s for s in tokens if s.encode() in data], f"a token in {path}"
        # The Agent Server's access log shows the query of a request answered 4xx: the replayed
        # callbacks' codes, already spent (and useless without the PKCE verifier). Nothing else may.
        if path != deployment.log:
            assert not [c for c in codes if c.encode() in data], f"an authorization code in {path}"
    for line in log.splitlines():
        if any(c in line for c in codes):
            assert "GET /mcpbridge/oauth/callback 400" in line, line
