"""The ``langchain.mcp`` peer (LangChain's own MCP adapter): its venv and its driver's connections.

``langchain[mcp]`` brings FastMCP, which mcpbridge does not depend on, so the
peer runs in ``bench/.venv-langchain-mcp`` (built on first use, rebuilt with
``--fresh-venv`` or when the pins change), with the same LangChain, LangGraph
and LangChain Core as this environment, driven over a pipe by
``bench.langchain_mcp_driver``.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
from typing import IO, Any

from bench._adapters import ensure_venv
from bench._processes import ROOT, server_args

VENV = ROOT / "bench" / ".venv-langchain-mcp"
DRIVER = "bench.langchain_mcp_driver"


AGENT_SERVER = ("langgraph-cli", "langgraph-api", "langgraph-runtime-inmem")
"""The Agent Server (``langgraph dev``), at this environment's versions: the bench's end-to-end runs
serve a ``langchain.mcp`` graph from this venv."""


def pins() -> tuple[str, ...]:
    """``langchain[mcp]`` at this environment's ``langchain`` version, and the same Agent Server."""
    server = tuple(f"{name}=={importlib.metadata.version(name)}" for name in AGENT_SERVER)
    server = (server[0].replace("langgraph-cli", "langgraph-cli[inmem]", 1), *server[1:])
    return (f"langchain[mcp]=={importlib.metadata.version('langchain')}", *server)


def ensure(*, fresh: bool = False, log: IO[str] = sys.stderr) -> Path:
    """The python of the ``langchain.mcp`` venv, built when needed."""
    return ensure_venv(fresh=fresh, log=log, venv=VENV, pins=pins())


def stdio_connection() -> dict[str, Any]:
    """The bench server over stdio, as the driver hands it to FastMCP's ``StdioTransport``."""
    return {"transport": "stdio", "command": sys.executable, "args": server_args(), "cwd": str(ROOT)}


def http_connection(url: str) -> dict[str, Any]:
    """A bench server over streamable HTTP (``MCPAdapter(url)``)."""
    return {"transport": "http", "url": url}
