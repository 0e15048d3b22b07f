"""Every example of ``examples/`` runs as a user would run it, against real MCP server processes.

Scripts run as ``python examples/<name>.py`` from a directory outside the repository; the
factories run on the real Agent Server (``langgraph dev``) with the example auth, beside the
recording echo server as their HTTP server (``remote``), so a test sees what reached it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from langgraph_sdk import get_client

from mcpbridge import Bridge, StdioServer
from tests.e2e.isolation import help_tools
from tests.support.processes import (
    ECHO_MODULE,
    HOST,
    REPO_ROOT,
    SERVER_ENV,
    agent_server_command,
    child,
    free_port,
    http_ok,
    port_open,
    tail,
    wait_until,
)
from tests.support.servers.common import fingerprint

EXAMPLES = REPO_ROOT / "examples"
RUN_TIMEOUT = 60.0
"""Seconds one script, or one run on the Agent Server, may take."""
ALICE_REMOTE_TOKEN = "alice-remote-token"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def run_script(name: str, cwd: Path) -> str:
    """Run ``examples/<name>`` from ``cwd`` (not the repository) and return its output."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_bridge_agent_calls_the_tools_with_the_run_identity(tmp_path: Path) -> None:
    out = run_script("bridge_agent.py", tmp_path)
    assert '"dev.mcpbridge/user_id": "alice"' in out
    assert '"dev.mcpbridge/thread_id": "thread-1"' in out
    assert "  tool: 42.0" in out
    assert "  progress of count: 3/3" in out
    assert "  ai: count returned: counted to 3" in out


def test_verify_identity_accepts_the_signed_call_and_refuses_the_unsigned_one(tmp_path: Path) -> None:
    signed, unsigned = run_script("verify_identity.py", tmp_path).splitlines()
    assert signed.startswith("signed call:") and "reports of alice (thread thread-1)" in signed
    assert unsigned.startswith("unsigned call:") and "the call carries no signed identity" in unsigned


@pytest.mark.anyio
async def test_serve_agent_serves_the_agent_as_an_mcp_tool() -> None:
    served = StdioServer(name="assistant", command=sys.executable, args=(str(EXAMPLES / "serve_agent.py"),))
    with anyio.fail_after(RUN_TIMEOUT):
        async with Bridge([served]) as bridge:
            (agent,) = bridge.tools
            result = await agent.ainvoke({"message": 'call echo_add {"a": 2, "b": 40}'})
    assert agent.name == "agent"
    assert "echo_add returned: 42.0" in json.dumps(result)


# --- the factories, on the Agent Server ----------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """``langgraph dev`` serving the example factories, and its log."""

    url: str
    log: Path

    async def run(self, token: str, graph: str, message: str) -> list[dict[str, Any]]:
        """The messages of one stateless run of ``graph`` by the user of ``token``."""
        headers = {"Authorization": f"Bearer {token}"}
        with anyio.fail_after(RUN_TIMEOUT):
            async with get_client(url=self.url, api_key=None, headers=headers) as client:
                state: Any = await client.runs.wait(  # pyright: ignore[reportUnknownMemberType]
                    None, graph, input={"messages": [{"role": "user", "content": message}]}
                )
        return state["messages"]


def text(message: dict[str, Any]) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def tool_results(messages: list[dict[str, Any]]) -> dict[str, str]:
    return {m["name"]: text(m) for m in messages if m["type"] == "tool"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The example factories on ``langgraph dev`` with ``examples/auth.py``; ``remote`` records calls."""
    directory = tmp_path_factory.mktemp("examples")
    config = {
        "dependencies": [str(REPO_ROOT)],
        "graphs": {
            "mcp_json": f"{EXAMPLES / 'mcp_json_factory.py'}:make_graph",
            "user_servers": f"{EXAMPLES / 'user_servers.py'}:make_graph",
        },
        "auth": {"path": f"{EXAMPLES / 'auth.py'}:auth", "disable_studio_auth": True},
    }
    (directory / "langgraph.json").write_text(json.dumps(config), encoding="utf-8")
    port, mcp_port = free_port(), free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("MCPBRIDGE_")}
    env = {
        **SERVER_ENV,
        **base,
        # mcp.json runs "python": the one of this environment
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}",
        "ECHO_URL": f"http://{HOST}:{mcp_port}/mcp",
        "REMOTE_TOKEN_ALICE": ALICE_REMOTE_TOKEN,
    }
    echo_log, log = directory / "echo.log", directory / "agent-server.log"
    with ExitStack() as stack:
        echo_command = [sys.executable, "-m", ECHO_MODULE, "--http", "--host", HOST, "--port", str(mcp_port)]
        echo = stack.enter_context(child(echo_command, cwd=REPO_ROOT, env=base, log=echo_log))
        wait_until(lambda: port_open(mcp_port), echo, echo_log, "the HTTP echo server", 30)
        command = agent_server_command(port, directory / "langgraph.json")
        agent = stack.enter_context(child(command, cwd=directory, env=env, log=log))
        wait_until(lambda: http_ok(f"http://{HOST}:{port}/ok"), agent, log, "the Agent Server", 120)
        yield Deployment(url=f"http://{HOST}:{port}", log=log)


@pytest.mark.anyio
async def test_mcp_json_factory_runs_with_the_servers_of_mcp_json(deployment: Deployment) -> None:
    messages = await deployment.run(
        "bob-token", "mcp_json", 'call echo_whoami {} then remote_add {"a": 2, "b": 40}'
    )
    results = tool_results(messages)
    assert json.loads(results["echo_whoami"])["dev.mcpbridge/user_id"] == "bob", tail(deployment.log)
    assert results["remote_add"] == "42.0"


@pytest.mark.anyio
async def test_user_servers_gives_users_their_servers_tools_and_credentials(
    deployment: Deployment,
) -> None:
    alice_help = text((await deployment.run("alice-token", "user_servers", "Hello"))[-1])
    bob_help = text((await deployment.run("bob-token", "user_servers", "Hello"))[-1])
    echo = {"echo_whoami", "echo_add", "echo_count"}
    assert help_tools(alice_help) == echo | {
        "remote_whoami",
        "remote_add",
        "remote_count",
        "remote_slow",
        "remote_fail",
        "remote_crash",
    }
    assert help_tools(bob_help) == echo - {"echo_add"}

    results = tool_results(await deployment.run("alice-token", "user_servers", "call remote_whoami {}"))
    seen = json.loads(results["remote_whoami"])
    assert seen["authorization"] == fingerprint(f"Bearer {ALICE_REMOTE_TOKEN}")
    assert seen["meta"]["dev.mcpbridge/user_id"] == "alice"
