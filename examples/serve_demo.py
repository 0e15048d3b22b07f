"""Serve the demo agent on a local Agent Server, with an HTTP MCP server beside it.

Run from the repository root::

    python -m examples.serve_demo            # serve on port 2024 until Ctrl-C
    python -m examples.serve_demo --port 0   # any free port

It starts the example MCP server (``python -m mcpbridge.testing.echo``) over streamable
HTTP on a free port, then ``langgraph dev`` (the in-memory Agent Server) with
``langgraph.json``, whose agent (``examples/agent.py``) reaches that server as ``remote``
and starts its own stdio copy (``local``) for each user, kept warm between their runs.
When Node.js and npm are on the machine, it also starts a real authorization server
(``oidc-provider`` from npm, installed into ``.cache/`` on first use; users alice and bob)
and an MCP server it protects, which the agent reaches as ``oauth``: until a user has
authorized it, each of their runs first asks them to in an interrupt, which they answer
by signing in (or decline to go on without it); ``--no-oauth`` skips this, and without
Node it says how to get it. It prints how to talk to the agent and stops
every process on Ctrl-C, SIGTERM or any exit. The Agent Server keeps its threads in
``.langgraph_api/`` of ``--workdir`` (default: the repository root).

No model provider is needed: without ``MCPBRIDGE_MODEL`` the agent uses the offline
model, which calls the tools a message names.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

from examples.processes import HOST, child, free_port, http_ok, port_free, port_open, wait_until

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 90.0
"""Seconds each server may take to start."""


def config_in(workdir: Path) -> Path:
    """``langgraph.json`` for ``langgraph dev`` running in ``workdir``: its paths made absolute."""
    if workdir == ROOT:
        return ROOT / "langgraph.json"
    data: dict[str, Any] = json.loads((ROOT / "langgraph.json").read_text(encoding="utf-8"))
    data["dependencies"] = [str(ROOT)]
    for spec in [*data["graphs"].values(), data["auth"]]:
        spec["path"] = str(ROOT / spec["path"])
    data["http"]["app"] = str(ROOT / data["http"]["app"])
    path = workdir / "langgraph.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def start(
    stack: ExitStack,
    command: list[str],
    ready: Callable[[], bool],
    *,
    what: str,
    log: Path,
    cwd: Path,
    env: dict[str, str],
) -> subprocess.Popen[bytes]:
    """Start ``command`` (output in ``log``), stopped when ``stack`` closes, and wait for ``ready``."""
    process = stack.enter_context(child(command, cwd=cwd, env=env, log=log))
    try:
        wait_until(ready, process, log, what, READY_TIMEOUT)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    return process


def instructions(url: str, mcp_url: str, log: Path, *, oauth: bool) -> str:
    """How to talk to the served agent (on a thread when OAuth is on: its first run asks to authorize)."""
    ask = {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": "call local_whoami"}]}}
    head = f"""
Agent Server:   {url}   (graph "agent"; API docs at {url}/docs)
MCP over HTTP:  {mcp_url}   (the agent's "remote" server)
Server logs:    {log}
Tokens:         alice-token (local + remote tools), bob-token (local tools only)
"""
    tail = f"""
Or with langgraph-sdk: get_client(url="{url}", headers={{"Authorization": "Bearer alice-token"}}),
then client.runs.stream(thread_id, "agent", input=..., stream_mode=["updates", "custom"]);
try 'call remote_count {{"to": 3}}' to see its progress in the custom stream.
"""
    if not oauth:
        return f"""{head}
    curl -s {url}/runs/wait -H 'Authorization: Bearer alice-token' \\
      -H 'Content-Type: application/json' -d '{json.dumps(ask)}'
{tail}"""
    decline = {"assistant_id": "agent", "command": {"resume": {"oauth": {"action": "decline"}}}}
    return f"""{head}
    T=$(curl -s {url}/threads -H 'Authorization: Bearer alice-token' -H 'Content-Type: application/json' \\
      -d '{{}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["thread_id"])')
    curl -s {url}/threads/$T/runs/wait -H 'Authorization: Bearer alice-token' \\
      -H 'Content-Type: application/json' -d '{json.dumps(ask)}'

Until a user authorizes the "oauth" server (OAuth, below), each of their runs first stops in
an interrupt asking them to. To go on without it, resume the run with:

    curl -s {url}/threads/$T/runs/wait -H 'Authorization: Bearer alice-token' \\
      -H 'Content-Type: application/json' -d '{json.dumps(decline)}'
{tail}"""


OAUTH_HOW_TO = """
OAuth, step by step (alice; bob works the same way with bob-token):

    T=$(curl -s {url}/threads -H 'Authorization: Bearer alice-token' -H 'Content-Type: application/json' \\
      -d '{{}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["thread_id"])')
    curl -s {url}/threads/$T/runs/wait -H 'Authorization: Bearer alice-token' \\
      -H 'Content-Type: application/json' -d '{ask}'

The run stops in an interrupt: "__interrupt__" -> value -> requests -> oauth -> url. Open that
URL in a browser, sign in as alice (any password) and consent; the authorization server sends
the browser back to {url}/mcpbridge/oauth/callback. Then resume the run:

    curl -s {url}/threads/$T/runs/wait -H 'Authorization: Bearer alice-token' \\
      -H 'Content-Type: application/json' -d '{resume}'

oauth_whoami answers with alice's subject, as the protected server saw it in her token; her
later runs need no login. POST {url}/mcpbridge/oauth/disconnect with {{"server": "oauth"}}
(and her bearer token) disconnects it.
"""


def oauth_instructions(url: str, oauth: tuple[str, str] | str) -> str:
    """How to try the OAuth flow, or why it is off and how to turn it on."""
    if isinstance(oauth, str):
        return f"\nOAuth:          off: {oauth}\n"
    mcp_url, issuer = oauth
    ask = {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": "call oauth_whoami"}]}}
    resume = {"assistant_id": "agent", "command": {"resume": {"oauth": {"action": "accept"}}}}
    head = (
        f'OAuth:          {mcp_url}   (the agent\'s "oauth" server, tools oauth_*)\n'
        f"                authorized by {issuer}   (oidc-provider; users alice, bob)\n"
    )
    return head + OAUTH_HOW_TO.format(url=url, ask=json.dumps(ask), resume=json.dumps(resume))


def start_oauth(stack: ExitStack, logs: Path, env: dict[str, str], url: str) -> tuple[str, str] | str:
    """Start oidc-provider and the MCP server it protects; their URLs, or why OAuth is off.

    Sets the agent's OAuth variables in ``env`` (the protected server's URL, the callback
    URL, a key ring for the tokens unless one is set).
    """
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        return (
            f"needs {' and '.join(missing)} (Node.js 20 or later with npm, e.g. "
            "`apt-get install -y nodejs npm`); install them and run this again"
        )
    from examples.oauth_servers import authorization_server, install, protected_server
    from mcpbridge.oauth import KeyRing

    print("Starting the OAuth authorization server (oidc-provider; installed on first use)...", flush=True)
    try:
        install()
        issuer = stack.enter_context(authorization_server(logs)).issuer
        mcp_url = stack.enter_context(protected_server(issuer, logs))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"the authorization server did not start ({first}); see {logs}"
    env["MCPBRIDGE_DEMO_OAUTH_URL"] = mcp_url
    env["MCPBRIDGE_DEMO_OAUTH_REDIRECT_URI"] = f"{url}/mcpbridge/oauth/callback"
    env.setdefault("MCPBRIDGE_OAUTH_KEYS", KeyRing.generate("demo"))
    return mcp_url, issuer


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=2024, help="Agent Server port (0: any free port)")
    parser.add_argument("--mcp-port", type=int, default=0, help="MCP server port (0: any free port)")
    parser.add_argument("--workdir", type=Path, default=ROOT, help="where the Agent Server keeps its state")
    parser.add_argument(
        "--no-oauth",
        action="store_true",
        help="skip the OAuth-protected server and its authorization server",
    )
    args = parser.parse_args(argv)
    port, mcp_port = args.port or free_port(), args.mcp_port or free_port()
    if not port_free(port):
        print(f"port {port} is taken; the Agent Server uses a free port instead", flush=True)
        port = free_port()
    if not port_free(mcp_port):  # another program's listener would pass for the echo server
        print(f"port {mcp_port} is taken; the HTTP echo MCP server uses a free port instead", flush=True)
        mcp_port = free_port()
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    url, mcp_url = f"http://{HOST}:{port}", f"http://{HOST}:{mcp_port}/mcp"
    env = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true", **os.environ}
    env.setdefault("MCPBRIDGE_ALLOWED_HOSTS", f"{HOST}:*")  # users may register servers on this machine
    env["MCPBRIDGE_DEMO_HTTP_URL"] = mcp_url
    for name in ("MCPBRIDGE_DEMO_OAUTH_URL", "MCPBRIDGE_DEMO_OAUTH_REDIRECT_URI"):
        env.pop(name, None)  # the demo's own, or none
    signal.signal(signal.SIGTERM, _interrupt)
    echo = [sys.executable, "-m", "mcpbridge.testing.echo", "--http", "--port", str(mcp_port)]
    agent = [sys.executable, "-m", "langgraph_cli", "dev", "--no-browser", "--no-reload"]
    agent += ["--host", HOST, "--port", str(port), "--config", str(config_in(workdir))]
    try:
        with tempfile.TemporaryDirectory(prefix="mcpbridge-demo-") as logs, ExitStack() as stack:
            log = Path(logs) / "servers.log"
            echo_process = start(
                stack,
                echo,
                lambda: port_open(mcp_port),
                what="the HTTP echo MCP server",
                log=log,
                cwd=workdir,
                env=env,
            )
            oauth = "--no-oauth was given" if args.no_oauth else start_oauth(stack, Path(logs), env, url)
            agent_process = start(
                stack,
                agent,
                lambda: http_ok(f"{url}/ok"),
                what="the Agent Server",
                log=log,
                cwd=workdir,
                env=env,
            )
            text = instructions(url, mcp_url, log, oauth=not isinstance(oauth, str))
            text += oauth_instructions(url, oauth)
            print(f"{text}Press Ctrl-C to stop.", flush=True)
            while echo_process.poll() is None and agent_process.poll() is None:
                time.sleep(1)
            print(f"a server exited:\n{log.read_text(errors='replace')[-4000:]}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
