"""The ``langchain-mcp-adapters`` peer: its throw-away venv, and the driver process that runs in it.

The adapters pin ``mcp<2``, so they cannot share mcpbridge's environment. The
suite keeps a venv at ``bench/.venv-adapters`` (rebuilt with ``--fresh-venv``,
or when the pinned requirements change) with the same LangGraph and LangChain
Core as this environment, so the ``ToolNode`` around every peer is the same code.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
from typing import IO, Any

from bench._processes import ROOT, server_args
from bench._stats import Block
from tests.support import peers
from tests.support.peers import PeerProcess

VENV = ROOT / "bench" / ".venv-adapters"
ADAPTERS_PINS = ("langchain-mcp-adapters==0.3.2", "mcp==1.30.0")
"""The peer's versions: the newest that install here (``mcp`` is the last 1.x the adapters accept)."""
REQUEST_TIMEOUT = 900.0


SAME = ("langgraph", "langgraph-prebuilt", "langchain-core")
"""Pinned in every peer venv to this environment's versions: the same ``ToolNode`` around every peer."""


def requirements(pins: tuple[str, ...] = ADAPTERS_PINS) -> list[str]:
    """A peer's ``pins``, plus this environment's LangGraph and LangChain Core (the same ``ToolNode``)."""
    return [*pins, *(f"{name}=={importlib.metadata.version(name)}" for name in SAME)]


def ensure_venv(
    *,
    fresh: bool = False,
    log: IO[str] = sys.stderr,
    venv: Path = VENV,
    pins: tuple[str, ...] = ADAPTERS_PINS,
) -> Path:
    """The python of a peer's venv (the adapters' by default), creating (or re-creating) it when needed."""
    return peers.ensure_venv(venv, requirements(pins), fresh=fresh, log=log)


def stdio_connection() -> dict[str, Any]:
    """The adapters' connection to the bench server over stdio (the same command mcpbridge starts)."""
    return {"transport": "stdio", "command": sys.executable, "args": server_args(), "cwd": str(ROOT)}


def http_connection(url: str) -> dict[str, Any]:
    """The adapters' connection to a bench server over streamable HTTP."""
    return {"transport": "streamable_http", "url": url}


class AdaptersDriver(PeerProcess):
    """A peer's driver (``bench.adapters_driver`` by default) running in its venv, spoken to in JSON lines."""

    def __init__(self, python: Path, log: Path, module: str = "bench.adapters_driver") -> None:
        super().__init__(python, log, module, request_timeout=REQUEST_TIMEOUT)

    async def open(self, peer: str, mode: str, connection: dict[str, Any]) -> list[str]:
        """Open a peer: ``default`` (a session per call) or ``persistent`` (one session)."""
        answer = await self.request({"op": "open", "peer": peer, "mode": mode, "connection": connection})
        return list(answer["tools"])

    def block(self, peer: str) -> Block:
        """Timed single calls of ``peer``, taken in the driver."""

        async def block(k: int) -> list[float]:
            return [float(v) for v in (await self.request({"op": "calls", "peer": peer, "n": k}))["ms"]]

        return block

    def batch_block(self, peer: str, size: int) -> Block:
        """Timed batches of ``size`` parallel calls of ``peer``."""

        async def block(k: int) -> list[float]:
            answer = await self.request({"op": "batch", "peer": peer, "n": k, "size": size})
            return [float(v) for v in answer["ms"]]

        return block

    def connects_block(self, url: str) -> Block:
        """Timed connect, list and close of the peer over HTTP to ``url`` (drivers that offer it)."""

        async def block(k: int) -> list[float]:
            return [float(v) for v in (await self.request({"op": "connects", "url": url, "n": k}))["ms"]]

        return block

    async def versions(self) -> dict[str, str]:
        """Package versions in the driver's venv."""
        return dict((await self.request({"op": "versions"}))["versions"])
