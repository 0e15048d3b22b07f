"""Process helpers shared by the tests, the benchmarks and the soak: free ports, children, the demo servers.

`demo_servers` starts what ``python -m examples.serve_demo`` starts, with the tests'
recording echo server (`tests.support.servers.echo`) in place of the example one:
over streamable HTTP beside the Agent Server, and over stdio inside each run of the
example agent (through `EXAMPLE_SERVER_ENV`). Every process is stopped by its own
handle. `smoke` is one scripted conversation with the served example agent. The
helpers for ports and children are the examples' own (`examples.processes`), re-exported.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Generator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from examples.processes import HOST, child, http_ok, port_open, wait_until

# Re-exported: the tests, the benchmarks and the soak take them from here.
from examples.processes import free_port as free_port
from examples.processes import port_free as port_free
from examples.processes import stop as stop
from examples.processes import tail as tail

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = REPO_ROOT / "langgraph.json"

ECHO_MODULE = "tests.support.servers.echo"
"""The tests' recording echo server, run with ``python -m`` from the repository root."""

EXAMPLE_SERVER_ENV = "MCPBRIDGE_EXAMPLE_SERVER"
"""The module ``examples/agent.py`` runs over stdio for each run (default ``mcpbridge.testing.echo``).

`demo_servers` sets it to `ECHO_MODULE`, so that the tests see what the agent's servers
received; the agent also passes its ``MCPBRIDGE_*`` variables (the recording knobs of
`tests.support.servers.common`) on to that server.
"""

SERVER_ENV: Mapping[str, str] = {
    # Nothing but 127.0.0.1 is needed: no analytics, no version check, no tracing.
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}
"""Environment defaults for ``langgraph dev`` (values already set in the environment win)."""


def portable_config(config: Path, directory: Path) -> Path:
    """Write a copy of ``config`` into ``directory`` with every relative path made absolute.

    ``langgraph dev`` resolves the paths in ``langgraph.json`` against its working
    directory and keeps its state (``.langgraph_api/``) there; the copy lets it run
    from any directory, such as a temporary one.
    """
    data: dict[str, Any] = json.loads(config.read_text(encoding="utf-8"))
    base = config.resolve().parent

    def absolute(spec: str) -> str:
        path, sep, rest = spec.partition(":")
        if path.startswith((".", "/")) or path.endswith(".py"):
            return str((base / path).resolve()) + sep + rest
        return spec  # a module path such as "my_pkg.graph:graph"

    data["dependencies"] = [
        str((base / dep).resolve()) if dep.startswith(".") else dep for dep in data.get("dependencies", [])
    ]
    graphs: dict[str, Any] = data.get("graphs", {})
    for name, spec in graphs.items():
        if isinstance(spec, str):
            graphs[name] = absolute(spec)
        else:
            spec["path"] = absolute(spec["path"])
    auth: dict[str, Any] | None = data.get("auth")
    if auth and "path" in auth:
        auth["path"] = absolute(auth["path"])
    http: dict[str, Any] | None = data.get("http")
    if http and "app" in http:
        http["app"] = absolute(http["app"])
    if isinstance(data.get("env"), str):
        data["env"] = str((base / data["env"]).resolve())
    target = directory / "langgraph.json"
    target.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return target


PER_RUN_AGENT = REPO_ROOT / "tests" / "support" / "per_run_agent.py"
"""The example agent connecting per run (``pool=False``), served as ``agent`` by `per_run_config`."""


def per_run_config(config: Path, directory: Path) -> Path:
    """`portable_config`, with the ``agent`` graph connecting for each run (``pool=False``).

    For the tests that count one connection set per run; the repository's ``langgraph.json``
    serves the example's default (sessions kept warm per user and event loop).
    """
    target = portable_config(config, directory)
    data: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    data["graphs"]["agent"]["path"] = f"{PER_RUN_AGENT}:make_graph"
    target.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return target


def echo_server_command(port: int) -> list[str]:
    """The command that serves the recording echo server over streamable HTTP on ``port``."""
    return [
        sys.executable,
        "-m",
        ECHO_MODULE,
        "--http",
        "--host",
        HOST,
        "--port",
        str(port),
        "--audience",
        "remote",
    ]


def agent_server_command(
    port: int, config: Path, *, allow_blocking: bool = False, jobs: int | None = None
) -> list[str]:
    """The ``langgraph dev`` command serving ``config`` on ``port``, without reload or browser.

    ``jobs`` is how many runs it executes at once (``--n-jobs-per-worker``; its default is 1).
    """
    command = [sys.executable, "-m", "langgraph_cli", "dev", "--no-browser", "--no-reload"]
    command += ["--host", HOST, "--port", str(port), "--config", str(config)]
    if allow_blocking:
        command.append("--allow-blocking")
    if jobs is not None:
        command += ["--n-jobs-per-worker", str(jobs)]
    return command


def serve_command() -> list[str]:
    """The ``mcpbridge`` console script of this environment (``python -m mcpbridge.cli`` without it)."""
    script = Path(sys.executable).with_name("mcpbridge")
    if script.exists():
        return [str(script)]
    found = shutil.which("mcpbridge")
    return [found] if found else [sys.executable, "-m", "mcpbridge.cli"]


@dataclass(frozen=True)
class DemoServers:
    """The running servers: the Agent Server's URL and both processes."""

    url: str
    mcp_url: str
    agent: subprocess.Popen[Any]
    echo: subprocess.Popen[Any]

    def exited(self) -> str | None:
        """Which server has exited, if one has."""
        for name, process in (("the Agent Server", self.agent), ("the HTTP echo MCP server", self.echo)):
            if process.poll() is not None:
                return f"{name} exited with code {process.returncode}"
        return None


@contextmanager
def demo_servers(
    *,
    port: int,
    mcp_port: int,
    workdir: Path,
    config: Path,
    logs: Path,
    env: Mapping[str, str] | None = None,
    allow_blocking: bool = False,
    jobs: int | None = None,
    timeout: float = 90.0,
) -> Generator[DemoServers, None, None]:
    """Start the echo MCP server and the Agent Server, yield them, and stop both by their handles.

    Args:
        port: The Agent Server's port.
        mcp_port: The HTTP echo server's port.
        workdir: ``langgraph dev``'s working directory (paths in ``config`` resolve against it).
        config: The ``langgraph.json`` to serve.
        logs: Directory for ``echo-http.log`` and ``agent-server.log``.
        env: Extra environment for both servers (e.g. ``MCPBRIDGE_RECORD``).
        allow_blocking: Pass ``--allow-blocking`` to ``langgraph dev``.
        jobs: Runs the Agent Server executes at once (``--n-jobs-per-worker``).
        timeout: Seconds to wait for each server to be ready.
    """
    base = {**os.environ, **(env or {})}
    base.pop("MCPBRIDGE_DEMO_HTTP_URL", None)
    # Calls carry a signed identity the echo servers verify; users may register servers on 127.0.0.1.
    base.setdefault("MCPBRIDGE_IDENTITY_SECRET", secrets.token_urlsafe(48))
    base.setdefault("MCPBRIDGE_ALLOWED_HOSTS", f"{HOST}:*")  # any port: tests start servers on free ports
    base.setdefault(EXAMPLE_SERVER_ENV, ECHO_MODULE)
    server_env = {**SERVER_ENV, **base, "MCPBRIDGE_DEMO_HTTP_URL": f"http://{HOST}:{mcp_port}/mcp"}
    echo_log, agent_log = logs / "echo-http.log", logs / "agent-server.log"
    url, mcp_url = f"http://{HOST}:{port}", f"http://{HOST}:{mcp_port}/mcp"
    with ExitStack() as stack:
        echo = stack.enter_context(
            child(echo_server_command(mcp_port), cwd=REPO_ROOT, env=base, log=echo_log)
        )
        wait_until(lambda: port_open(mcp_port), echo, echo_log, "the HTTP echo MCP server", timeout)
        command = agent_server_command(port, config, allow_blocking=allow_blocking, jobs=jobs)
        agent = stack.enter_context(child(command, cwd=workdir, env=server_env, log=agent_log))
        wait_until(lambda: http_ok(f"{url}/ok"), agent, agent_log, "the Agent Server", timeout)
        yield DemoServers(url=url, mcp_url=mcp_url, agent=agent, echo=echo)


class SmokeFailure(Exception):
    """The scripted conversation did not go as expected."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SmokeFailure(message)


def smoke(url: str, out: IO[str]) -> None:
    """One scripted conversation through the SDK; raises `SmokeFailure` when something is off."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=url, api_key=None, headers={"Authorization": "Bearer alice-token"})
    try:
        thread_id = client.threads.create()["thread_id"]
        runs: list[Any] = []
        state = cast(
            dict[str, Any],
            client.runs.wait(  # pyright: ignore[reportUnknownMemberType]
                thread_id,
                "agent",
                input={"messages": [{"role": "user", "content": "call local_whoami {}"}]},
                on_run_created=runs.append,
            ),
        )
        tool = next(m for m in state["messages"] if m["type"] == "tool")
        meta = json.loads(tool["content"][0]["text"])["meta"]
        expected = {"thread_id": thread_id, "run_id": runs[0]["run_id"], "user_id": "alice"}
        seen = {key: meta.get(f"dev.mcpbridge/{key}") for key in expected}
        _check(seen == expected, f"the stdio server saw identity {seen}, expected {expected}")
        out.write(f"local_whoami: the stdio MCP server saw {seen}\n")

        progress: list[Any] = []
        for part in client.runs.stream(
            thread_id,
            "agent",
            input={"messages": [{"role": "user", "content": 'call remote_count {"to": 3}'}]},
            stream_mode=["updates", "custom"],
        ):
            data = cast(dict[str, Any], part.data)  # pyright: ignore[reportUnknownMemberType]
            if part.event == "custom" and data.get("type") == "mcp_progress":
                progress.append(data["progress"])
        _check(progress == [1, 2, 3], f"expected progress 1, 2, 3 from remote_count, got {progress}")
        values = cast(dict[str, Any], client.threads.get_state(thread_id)["values"])
        answer = values["messages"][-1]["content"]
        _check(answer == "remote_count returned: counted to 3", f"unexpected answer {answer!r}")
        out.write(f"remote_count: progress {progress}, answer {answer!r}\n")
    finally:
        client.close()
