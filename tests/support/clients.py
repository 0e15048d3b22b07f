"""MCP clients nobody on this project wrote, installed once into ``.clients/`` (git-ignored).

Each Python client gets a venv of its own (`PYTHON_CLIENTS`, pinned), driven by a
module of `tests.support.client_drivers` that runs inside it; the MCP Inspector's CLI
is installed from npm into a prefix there. A directory whose recorded requirements
match is reused, so a CI run installs each client once.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.support.peers import RECORD_NAME, REPO_ROOT, ensure_venv, locked

CLIENTS_DIR = REPO_ROOT / ".clients"


@dataclass(frozen=True, slots=True)
class PythonClient:
    """A Python MCP client: its pinned requirements and the driver module run in its venv."""

    name: str
    requirements: tuple[str, ...]
    driver: str

    @property
    def venv(self) -> Path:
        return CLIENTS_DIR / self.name


PYTHON_CLIENTS: Mapping[str, PythonClient] = {
    "mcp1": PythonClient("mcp1", ("mcp==1.30.0",), "tests.support.client_drivers.mcp1"),
    "fastmcp4": PythonClient(
        "fastmcp4", ("fastmcp-slim[client]==4.0.10",), "tests.support.client_drivers.fastmcp4"
    ),
    "adapters": PythonClient(
        "adapters",
        (
            "langchain-mcp-adapters==0.3.2",
            "mcp==1.30.0",  # the last 1.x, which the adapters require
            f"langchain-core=={importlib.metadata.version('langchain-core')}",
        ),
        "tests.support.client_drivers.adapters",
    ),
}
"""The mcp SDK's 1.x client, FastMCP 4's client (``fastmcp-slim[client]``: FastMCP's client without
its server) and langchain-mcp-adapters. The mcp SDK's 2.x client is this environment's own."""

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
INSPECTOR_PREFIX = CLIENTS_DIR / "inspector"


def inspector_command() -> list[str]:
    """The MCP Inspector's CLI (``mcp-inspector --cli``), installed when needed."""
    binary = INSPECTOR_PREFIX / "node_modules" / ".bin" / "mcp-inspector"
    record = INSPECTOR_PREFIX / RECORD_NAME
    with locked(INSPECTOR_PREFIX):
        if not (binary.exists() and record.exists() and record.read_text() == INSPECTOR + "\n"):
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("npm is not installed: the MCP Inspector cannot be installed")
            shutil.rmtree(INSPECTOR_PREFIX, ignore_errors=True)
            INSPECTOR_PREFIX.mkdir(parents=True)
            command = [npm, "install", "--prefix", str(INSPECTOR_PREFIX), "--no-audit", "--no-fund"]
            done = subprocess.run(
                [*command, "--loglevel=error", INSPECTOR], capture_output=True, text=True, check=False
            )
            if done.returncode != 0 or not binary.exists():
                raise RuntimeError(
                    f"npm install {INSPECTOR} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
                )
            record.write_text(INSPECTOR + "\n")
    return [str(binary), "--cli"]


def ensure_clients(log: IO[str] = sys.stderr) -> dict[str, Path | list[str] | Exception]:
    """Install every client at once (in parallel): each python, the Inspector's command, or why not."""

    def python(client: PythonClient) -> Path:
        return ensure_venv(client.venv, client.requirements, log=log)

    with ThreadPoolExecutor(max_workers=len(PYTHON_CLIENTS) + 1) as pool:
        futures = {name: pool.submit(python, client) for name, client in PYTHON_CLIENTS.items()}
        inspector = pool.submit(inspector_command)
        found: dict[str, Path | list[str] | Exception] = {}
        for name, future in [*futures.items(), ("inspector", inspector)]:
            try:
                found[name] = future.result()
            except Exception as exc:  # reported by the tests of that client
                found[name] = exc
    return found
