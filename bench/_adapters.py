"""The ``langchain-mcp-adapters`` peer: its throw-away venv, and the driver process that runs in it.

The adapters pin ``mcp<2``, so they cannot share mcpbridge's environment. The
suite keeps a venv at ``bench/.venv-adapters`` (rebuilt with ``--fresh-venv``,
or when the pinned requirements change) with the same LangGraph and LangChain
Core as this environment, so the ``ToolNode`` around every peer is the same code.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from bench._processes import ROOT, server_args, tail
from bench._stats import Block

VENV = ROOT / "bench" / ".venv-adapters"
ADAPTERS_PINS = ("langchain-mcp-adapters==0.3.2", "mcp==1.30.0")
"""The peer's versions: the newest that install here (``mcp`` is the last 1.x the adapters accept)."""
REQUIREMENTS = VENV / "bench-requirements.txt"
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
    python = venv / "bin" / "python"
    record = venv / REQUIREMENTS.name
    wanted = "\n".join(requirements(pins)) + "\n"
    if not fresh and python.exists() and record.exists() and record.read_text() == wanted:
        return python
    print(f"bench: building {venv.relative_to(ROOT)} ({', '.join(requirements(pins))})", file=log, flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    pip_log = ROOT / "bench" / "results" / f"{venv.name}.log.tmp"
    pip_log.parent.mkdir(parents=True, exist_ok=True)
    with pip_log.open("w") as out:
        for command in (
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *requirements(pins)],
        ):
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise RuntimeError(f"{' '.join(command)} failed:\n{tail(pip_log)}")
    record.write_text(wanted)
    pip_log.unlink(missing_ok=True)
    return python


def stdio_connection() -> dict[str, Any]:
    """The adapters' connection to the bench server over stdio (the same command mcpbridge starts)."""
    return {"transport": "stdio", "command": sys.executable, "args": server_args(), "cwd": str(ROOT)}


def http_connection(url: str) -> dict[str, Any]:
    """The adapters' connection to a bench server over streamable HTTP."""
    return {"transport": "streamable_http", "url": url}


class AdaptersDriver:
    """A peer's driver (``bench.adapters_driver`` by default) running in its venv, spoken to in JSON lines."""

    def __init__(self, python: Path, log: Path, module: str = "bench.adapters_driver") -> None:
        self.python = python
        self.log = log
        self.module = module
        self._process: anyio.abc.Process | None = None
        self._stdout: BufferedByteReceiveStream | None = None
        self._log_file: IO[bytes] | None = None

    async def __aenter__(self) -> Self:
        self._log_file = self.log.open("wb")
        self._process = await anyio.open_process(
            [str(self.python), "-m", self.module], cwd=ROOT, stderr=self._log_file
        )
        assert self._process.stdout is not None
        self._stdout = BufferedByteReceiveStream(self._process.stdout)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        process, self._process = self._process, None
        try:
            if process is not None:
                with anyio.CancelScope(shield=True):
                    await self._stop(process)
        finally:
            if self._log_file is not None:
                self._log_file.close()

    async def _stop(self, process: anyio.abc.Process) -> None:
        with anyio.move_on_after(10):
            try:
                assert process.stdin is not None
                await process.stdin.send(b'{"op": "exit"}\n')
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
            await process.wait()
        if process.returncode is None:
            process.terminate()
            with anyio.move_on_after(10):
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()

    async def request(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send one command and return its answer; a failed command raises."""
        process, stdout = self._process, self._stdout
        if process is None or process.stdin is None or stdout is None:
            raise RuntimeError(f"{self.module} is not running")
        with anyio.fail_after(REQUEST_TIMEOUT):
            await process.stdin.send((json.dumps(command) + "\n").encode())
            try:
                line = await stdout.receive_until(b"\n", 1 << 24)
            except (anyio.EndOfStream, anyio.IncompleteRead) as exc:
                raise RuntimeError(f"{self.module} exited:\n{tail(self.log)}") from exc
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"{self.module}: {answer.get('error')}\n{tail(self.log, 1500)}")
        return answer

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
