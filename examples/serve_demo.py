"""Serve the example agent on a local Agent Server, with its HTTP MCP server beside it.

Run from the repository root::

    python -m examples.serve_demo              # serve until Ctrl-C
    python -m examples.serve_demo --smoke      # one scripted run through the SDK, then exit 0 or 1

It starts the example echo MCP server over streamable HTTP on a free port, then
``langgraph dev`` (the in-memory Agent Server) with ``langgraph.json``, pointing
the agent's ``remote`` server at the echo server (``MCPBRIDGE_DEMO_HTTP_URL``).
Each run of the agent also starts its own stdio echo server (``local``). It
prints how to talk to the agent, and stops both processes on Ctrl-C, SIGTERM or
any exit.

The server keeps threads in ``.langgraph_api/`` in its working directory: the
repository root, as with a plain ``langgraph dev``, or ``--workdir DIR``;
``--smoke`` uses a temporary directory and leaves nothing behind.

No model provider is needed: without ``MCPBRIDGE_MODEL`` the agent uses the
offline model, which calls the tools a message names.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, cast

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG = REPO_ROOT / "langgraph.json"
HOST = "127.0.0.1"

SERVER_ENV: Mapping[str, str] = {
    # Nothing but 127.0.0.1 is needed: no analytics, no version check, no tracing.
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}
"""Environment defaults for ``langgraph dev`` (values already set in the environment win)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


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
    if isinstance(data.get("env"), str):
        data["env"] = str((base / data["env"]).resolve())
    target = directory / "langgraph.json"
    target.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return target


def echo_server_command(port: int) -> list[str]:
    """The command that serves the example echo server over streamable HTTP on ``port``."""
    return [
        sys.executable,
        "-m",
        "examples.servers.echo",
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


def stop(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Stop one child process by its handle: terminate, wait, then kill if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(timeout)


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file (empty if there is none)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until(ready: Any, process: subprocess.Popen[Any], log: Path, what: str, timeout: float) -> None:
    """Poll ``ready()`` every 0.1 s until it is true; fail early if ``process`` exits, late on ``timeout``."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {timeout:g}s:\n{tail(log)}")
        time.sleep(0.1)


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on ``127.0.0.1:port``."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    """Whether ``127.0.0.1:port`` can be listened on (nothing holds it, on any address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def serve_command() -> list[str]:
    """The ``mcpbridge`` console script of this environment (``python -m mcpbridge.cli`` without it)."""
    script = Path(sys.executable).with_name("mcpbridge")
    if script.exists():
        return [str(script)]
    found = shutil.which("mcpbridge")
    return [found] if found else [sys.executable, "-m", "mcpbridge.cli"]


def http_ok(url: str) -> bool:
    """Whether ``GET url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def child(
    command: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
) -> Generator[subprocess.Popen[Any], None, None]:
    """Run ``command`` with its output in ``log``; always stopped by its handle on exit."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        stop(process)


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


def instructions(url: str, mcp_url: str, logs: Path) -> str:
    """How to talk to the served agent."""
    message = {"role": "user", "content": "call local_whoami {}"}
    payload = json.dumps({"assistant_id": "agent", "input": {"messages": [message]}})
    return textwrap.dedent(
        f"""
        Agent Server:   {url}   (graph "agent"; API docs at {url}/docs)
        MCP over HTTP:  {mcp_url}   (the agent's "remote" server)
        Logs:           {logs}
        Tokens:         alice-token (local + remote tools), bob-token (local tools only)

        Python (langgraph-sdk):

            import asyncio
            from langgraph_sdk import get_client

            async def main():
                client = get_client(url="{url}", api_key=None,
                                    headers={{"Authorization": "Bearer alice-token"}})
                thread = await client.threads.create()
                async for part in client.runs.stream(
                    thread["thread_id"], "agent",
                    input={{"messages": [{{"role": "user", "content": 'call remote_count {{"to": 3}}'}}]}},
                    stream_mode=["updates", "custom"],
                ):
                    print(part.event, part.data)

            asyncio.run(main())

        curl (a stateless run; the answer is the final state):

            curl -s {url}/runs/wait -H 'Authorization: Bearer alice-token' \\
              -H 'Content-Type: application/json' \\
              -d '{payload}'

        Try "call local_slow {{\\"seconds\\": 1}}": the run stops for approval; resume it on the thread
        with command={{"resume": {{"decisions": [{{"type": "approve"}}]}}}}.
        Press Ctrl-C to stop.
        """
    )


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


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=2024, help="Agent Server port (0: any free port)")
    parser.add_argument(
        "--mcp-port", type=int, default=0, help="HTTP echo MCP server port (0: any free port)"
    )
    parser.add_argument("--smoke", action="store_true", help="run one scripted conversation, then exit")
    parser.add_argument(
        "--record", type=Path, help="have both echo servers record their calls in this JSONL file"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="run the Agent Server in this directory, which keeps its state there "
        "(default: the repository root; with --smoke, a temporary directory)",
    )
    parser.add_argument(
        "--allow-blocking", action="store_true", help="pass --allow-blocking to langgraph dev (dev-only)"
    )
    args = parser.parse_args(argv)
    port = free_port() if args.smoke or args.port == 0 else args.port
    if not port_free(port):
        chosen = free_port()
        print(
            f"port {port} is taken on this machine; the Agent Server uses port {chosen} instead", flush=True
        )
        port = chosen
    mcp_port = args.mcp_port or free_port()
    env = {"MCPBRIDGE_RECORD": str(args.record.resolve())} if args.record else {}
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)

    with tempfile.TemporaryDirectory(prefix="mcpbridge-demo-") as scratch:
        logs = Path(scratch)
        if args.workdir is not None:
            workdir = args.workdir.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
            config = portable_config(CONFIG, workdir)
        elif args.smoke:  # keep the server's state out of the repository
            workdir, config = logs, portable_config(CONFIG, logs)
        else:
            workdir, config = REPO_ROOT, CONFIG
        try:
            with demo_servers(
                port=port,
                mcp_port=mcp_port,
                workdir=workdir,
                config=config,
                logs=logs,
                env=env,
                allow_blocking=args.allow_blocking,
            ) as servers:
                if args.smoke:
                    try:
                        smoke(servers.url, sys.stdout)
                    except Exception as exc:
                        print(f"smoke run failed: {exc!r}\n--- agent server log ---", file=sys.stderr)
                        print(tail(logs / "agent-server.log", 120), file=sys.stderr)
                        return 1
                    print("smoke run passed")
                    return 0
                print(instructions(servers.url, servers.mcp_url, logs), flush=True)
                while (exited := servers.exited()) is None:
                    time.sleep(1)
                print(f"{exited}:\n{tail(logs / 'agent-server.log')}", file=sys.stderr)
                return 1
        except KeyboardInterrupt:
            print("\nstopping", file=sys.stderr)
            return 0
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
