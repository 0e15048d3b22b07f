"""``python -m examples.serve_demo`` (with its OAuth flow, and without Node) and the smoke conversation."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from langgraph_sdk import get_client

from tests.e2e.agent_server import CONFIG, ROOT, AgentServer, alive, descendants
from tests.support.oidc import login
from tests.support.processes import HOST, portable_config, smoke

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_the_smoke_conversation_passes(agent_server: AgentServer) -> None:
    out = io.StringIO()
    smoke(agent_server.url, out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("local_whoami: the stdio MCP server saw {'thread_id': ")
    assert lines[1] == "remote_count: progress [1.0, 2.0, 3.0], answer 'remote_count returned: counted to 3'"


def test_the_config_copy_only_makes_paths_absolute(tmp_path: Path) -> None:
    original = json.loads(CONFIG.read_text())
    copy = json.loads(portable_config(CONFIG, tmp_path).read_text())
    graph_path, _, variable = copy["graphs"]["agent"]["path"].partition(":")
    auth_path, _, name = copy["auth"]["path"].partition(":")
    assert (Path(graph_path), variable) == (ROOT / "examples" / "agent.py", "make_graph")
    assert (Path(auth_path), name) == (ROOT / "examples" / "auth.py", "auth")
    app_path, _, app = copy["http"]["app"].partition(":")
    assert (Path(app_path), app) == (ROOT / "examples" / "oauth_app.py", "app")
    assert copy["http"]["enable_custom_route_auth"] is True
    assert copy["dependencies"] == [str(ROOT)]
    for key in ("graphs", "auth", "http", "dependencies"):
        del copy[key], original[key]
    assert copy == original
    assert original == {"$schema": original["$schema"], "python_version": "3.11"}


@contextmanager
def running_demo(
    tmp_path: Path, env: dict[str, str], *args: str
) -> Generator[tuple[subprocess.Popen[bytes], Path], None, None]:
    """``python -m examples.serve_demo`` until it prints its instructions; stopped by its handle if left.

    Left running (a failed assertion), it is sent SIGTERM, on which it stops its servers, and
    killed only if it does not end: a killed demo would leave its servers running.
    """
    out = tmp_path / "demo.out"
    with out.open("wb") as file:
        demo = subprocess.Popen(
            [sys.executable, "-m", "examples.serve_demo", "--port", "0", "--workdir", str(tmp_path), *args],
            cwd=ROOT,
            env=env,
            stdout=file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "Press Ctrl-C to stop." not in out.read_text():
            assert demo.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)  # poll the demo's output: another program
        yield demo, out
    finally:
        if demo.poll() is None:
            demo.terminate()
            try:
                demo.wait(60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MCPBRIDGE_")}, **extra}


@pytest.mark.parametrize(
    ("signum", "node"),
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["sigint-with-oauth", "sigterm-without-node"],
)
def test_the_demo_stops_every_server_when_stopped(tmp_path: Path, signum: int, node: bool) -> None:
    # Without Node on the PATH (a fresh machine), the demo runs without OAuth and says how to get it.
    env = clean_env() if node else clean_env(PATH=str(Path(sys.executable).parent))
    with socket.create_server((HOST, 0)) as taken:  # another program's port, asked for as --mcp-port
        held = taken.getsockname()[1]
        args = () if node else ("--mcp-port", str(held))
        with running_demo(tmp_path, env, *args) as (demo, out):
            printed = out.read_text()
            children = descendants(demo.pid)
            if node:
                assert "/mcpbridge/oauth/callback" in printed and "oauth_whoami" in printed, printed
                # the HTTP echo server, oidc-provider, the protected MCP server, the Agent Server
                assert len(children) >= 4, children
            else:
                assert "OAuth:          off: needs node and npm" in printed, printed
                assert len(children) >= 2, children  # the HTTP echo server and the Agent Server
                assert f"port {held} is taken; the HTTP echo MCP server uses a free port" in printed, printed
                assert "MCP over HTTP:  http://" in printed and f":{held}/mcp" not in printed, printed
            demo.send_signal(signum)
            assert demo.wait(60) == 0, out.read_text()
    assert not [pid for pid in children if alive(pid)]
    assert (tmp_path / ".langgraph_api").is_dir()  # the server's state went to --workdir


@pytest.mark.anyio
async def test_the_demos_oauth_instructions_work(tmp_path: Path) -> None:
    """Follow what the demo prints: alice is asked to authorize, signs in, and her resumed run calls as her"""
    with running_demo(tmp_path, clean_env()) as (demo, out):
        printed = out.read_text()
        url = re.search(r"Agent Server: +(http://\S+)", printed)
        assert url is not None, printed
        client = get_client(url=url[1], api_key=None, headers={"Authorization": "Bearer alice-token"})
        ask: Any = {"messages": [{"role": "user", "content": "call oauth_whoami"}]}
        with anyio.fail_after(90):
            async with client:
                # The first example: the run asks for the authorization; declined, it goes on without it.
                assert '"resume": {"oauth": {"action": "decline"}}' in printed, printed
                first_example: Any = {"messages": [{"role": "user", "content": "call local_whoami"}]}
                thread_id = (await client.threads.create())["thread_id"]
                asked: Any = await client.runs.wait(thread_id, "agent", input=first_example)
                assert "oauth" in asked["__interrupt__"][0]["value"]["requests"], asked
                decline: Any = {"resume": {"oauth": {"action": "decline"}}}
                answered: Any = await client.runs.wait(thread_id, "agent", command=decline)
                (whoami,) = [m for m in answered["messages"] if m["type"] == "tool"]
                assert "alice" in json.dumps(whoami["content"]), whoami
                thread_id = (await client.threads.create())["thread_id"]
                first: Any = await client.runs.wait(thread_id, "agent", input=ask)
                authorization_url = first["__interrupt__"][0]["value"]["requests"]["oauth"]["url"]
                assert authorization_url in printed or "requests -> oauth -> url" in printed
                callback = f"{url[1]}/mcpbridge/oauth/callback"
                params = await login(authorization_url, "alice", redirect_uri=callback)
                async with httpx2.AsyncClient(timeout=30) as browser:
                    assert (await browser.get(callback, params=params)).status_code == 200
                resume: Any = {"resume": {"oauth": {"action": "accept"}}}
                done: Any = await client.runs.wait(thread_id, "agent", command=resume)
        (tool,) = [m for m in done["messages"] if m["type"] == "tool"]
        assert json.loads(tool["content"][0]["text"])["subject"] == "alice", tool
        demo.send_signal(signal.SIGINT)
        assert demo.wait(60) == 0, out.read_text()
