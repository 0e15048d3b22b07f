"""A user value cannot become an option of the deployment's stdio server.

The deployment runs a stdio MCP server with the user's team as its positional
argument (``{user.team}``). The server (this module, run as ``python -m
tests.security.test_templates``) parses its argv before anything else and
appends what it parsed to a marker file, so the marker shows every start and
whether a value arrived as an option (``--unsafe``: an option no deployment of
this test passes, standing for the options that change what a server does).

The attack: a user whose team is ``--unsafe``. The entry is refused with the
rule, the server never starts (no line in the marker) and the run goes on
without it. Controls: a team without the dash (``acme-inc``) starts the server
with the team as its workspace; and the same ``--unsafe`` put into argv with the
template check left out (the protection off) reaches the server as the option.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.messages import ToolMessage
from mcp.server.mcpserver import MCPServer

from mcpbridge import Bridge, StdioServer
from mcpbridge.scoping import Scoped, UserContext, UserServers
from tests.integration.support import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

MARKER_ENV = "TEMPLATES_MARKER"
CALL_TIMEOUT = 30.0
ATTACK = "--unsafe"


def files_server(marker: Path, args: tuple[str, ...] = ("{user.team}",)) -> StdioServer:
    """The deployment's stdio server, its workspace from the user's team."""
    return StdioServer(
        name="files",
        command=sys.executable,
        args=("-m", "tests.security.test_templates", *args),
        cwd=ROOT,
        env={MARKER_ENV: str(marker)},
        prefix="files",
        required=False,
    )


def starts(marker: Path) -> list[dict[str, Any]]:
    """What each start of the server parsed from its argv."""
    if not marker.exists():
        return []
    return [json.loads(line) for line in marker.read_text(encoding="utf-8").splitlines() if line]


def team(name: str) -> UserContext:
    return UserContext.from_user({"identity": "mallory", "permissions": [], "team": name})


async def workspace_of(servers: list[StdioServer] | tuple[Any, ...], **bridge: Any) -> str | None:
    """Open the servers as a run would and call ``files_workspace``; ``None`` when no such tool is there."""
    async with Bridge(servers, **bridge) as opened:
        tools = {tool.name: tool for tool in opened.tools}
        if "files_workspace" not in tools:
            return None
        call = {"name": "files_workspace", "args": {}, "id": "call-1", "type": "tool_call"}
        with anyio.fail_after(CALL_TIMEOUT):
            message = await tools["files_workspace"].ainvoke(call)
    assert isinstance(message, ToolMessage)
    return str(message.text)


async def test_a_dash_leading_user_value_never_reaches_the_servers_argv(tmp_path: Path) -> None:
    marker = tmp_path / "starts.jsonl"
    servers = UserServers([Scoped(files_server(marker))])

    selection = await servers.select(team(ATTACK))

    assert selection.servers == ()
    [refusal] = selection.refused
    assert refusal.server == "files"
    assert "'args'" in refusal.reason and "'team'" in refusal.reason and "'-'" in refusal.reason
    assert await workspace_of(selection.servers, refused=selection.refused) is None
    assert starts(marker) == []  # the server never started


async def test_a_value_without_the_dash_starts_the_server_with_it(tmp_path: Path) -> None:
    marker = tmp_path / "starts.jsonl"
    servers = UserServers([Scoped(files_server(marker))])

    selection = await servers.select(team("acme-inc"))

    assert selection.refused == ()
    assert await workspace_of(selection.servers) == "acme-inc"
    assert starts(marker) == [{"workspace": "acme-inc", "unsafe": False}]


async def test_without_the_rule_the_same_value_arrives_as_an_option(tmp_path: Path) -> None:
    """The protection off: what rendering would give without the rule, passed straight to the server."""
    marker = tmp_path / "starts.jsonl"

    assert await workspace_of([files_server(marker, args=(ATTACK,))]) == "None"  # started, no workspace
    assert starts(marker) == [{"workspace": None, "unsafe": True}]


# --- the server ---------------------------------------------------------------------------------


def _serve() -> None:
    parser = argparse.ArgumentParser(description="A stdio MCP server with a workspace per team.")
    parser.add_argument("workspace", nargs="?")
    parser.add_argument("--unsafe", action="store_true", help="an option the deployment never passes")
    options = parser.parse_args()
    with open(os.environ[MARKER_ENV], "a", encoding="utf-8") as file:
        file.write(json.dumps({"workspace": options.workspace, "unsafe": options.unsafe}) + "\n")
    server = MCPServer("files")

    @server.tool()
    def workspace() -> str:  # pyright: ignore[reportUnusedFunction] - registered by the decorator
        """The workspace this server was started for."""
        return str(options.workspace)

    server.run()


if __name__ == "__main__":
    _serve()
