"""``python -m examples.serve_demo`` and the smoke conversation of `tests.support.processes`."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.agent_server import CONFIG, ROOT, AgentServer, alive, descendants
from tests.support.processes import portable_config, smoke

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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_demo_stops_both_servers_when_stopped(tmp_path: Path, signum: int) -> None:
    out = tmp_path / "demo.out"
    with out.open("wb") as file:
        demo = subprocess.Popen(
            [sys.executable, "-m", "examples.serve_demo", "--port", "0", "--workdir", str(tmp_path)],
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith("MCPBRIDGE_")},
            stdout=file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while "Press Ctrl-C to stop." not in out.read_text():
            assert demo.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        children = descendants(demo.pid)
        assert len(children) >= 2, children  # the HTTP echo server and the Agent Server
        demo.send_signal(signum)
        assert demo.wait(60) == 0, out.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert not [pid for pid in children if alive(pid)]
    assert (tmp_path / ".langgraph_api").is_dir()  # the server's state went to --workdir
