"""Clients written by others, each in its own venv, driven over a pipe in JSON lines.

Shared by the tests (the MCP clients of ``mcpbridge serve``) and the benchmarks
(the peers mcpbridge is compared with):

- `ensure_venv` builds a throw-away venv with pinned requirements, once: a venv whose
  recorded requirements match is reused.
- `serve_commands` is the loop a driver runs inside its venv: one JSON command per line
  on stdin, one JSON answer per line on stdout (``{"ok": true, ...}`` or
  ``{"ok": false, "error": ...}``), until ``{"op": "exit"}`` or the end of stdin.
- `PeerProcess` starts such a driver (``python -m MODULE`` from the repository root)
  and speaks to it; it is stopped through its own handle.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Generator, Sequence
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, Self, TextIO

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.buffered import BufferedByteReceiveStream

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORD_NAME = "requirements.txt"
"""The requirements a venv was built with, inside it: a venv is rebuilt when they change."""


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return ""


@contextmanager
def locked(directory: Path) -> Generator[None]:
    """Hold an exclusive lock for building ``directory``: one builder at a time, across processes.

    The lock file lies in the system's temporary directory, so no file is left beside ``directory``.
    """
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"mcpbridge-build-{digest}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_venv(
    venv: Path, requirements: Sequence[str], *, fresh: bool = False, log: IO[str] = sys.stderr
) -> Path:
    """The python of a venv at ``venv`` holding ``requirements``, built (or rebuilt) when needed."""
    python = venv / "bin" / "python"
    record = venv / RECORD_NAME
    wanted = "\n".join(requirements) + "\n"
    with locked(venv):
        if not fresh and python.exists() and record.exists() and record.read_text() == wanted:
            return python
        print(f"building {venv} ({', '.join(requirements)})", file=log, flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        with tempfile.TemporaryDirectory() as scratch:
            pip_log = Path(scratch) / "pip.log"
            with pip_log.open("w") as out:
                for command in (
                    [sys.executable, "-m", "venv", str(venv)],
                    [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *requirements],
                ):
                    done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
                    if done.returncode != 0:
                        shutil.rmtree(venv, ignore_errors=True)
                        raise RuntimeError(f"{' '.join(command)} failed:\n{_tail(pip_log)}")
        record.write_text(wanted)
        return python


class Handler(Protocol):
    """A driver: answers one command."""

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]: ...


async def serve_commands(make_driver: Callable[[AsyncExitStack], Handler]) -> None:
    """Answer commands until ``exit`` or the end of stdin; ``make_driver``'s resources close after."""
    out: TextIO = sys.stdout
    sys.stdout = sys.stderr  # nothing but answers may reach the caller on stdout
    async with AsyncExitStack() as stack:
        driver = make_driver(stack)
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                return
            command: dict[str, Any] = json.loads(line)
            if command["op"] == "exit":
                out.write(json.dumps({"ok": True}) + "\n")
                out.flush()
                return
            try:
                answer = {"ok": True, **await driver.handle(command)}
            except Exception as exc:  # reported to the caller, which fails
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(answer) + "\n")
            out.flush()


class PeerError(RuntimeError):
    """A driver refused a command or exited."""


class PeerProcess:
    """A driver (``python -m MODULE`` in a peer's venv, from the repository root), spoken to in JSON lines."""

    def __init__(self, python: Path, log: Path, module: str, *, request_timeout: float = 900.0) -> None:
        self.python = python
        self.log = log
        self.module = module
        self.request_timeout = request_timeout
        self._process: anyio.abc.Process | None = None
        self._stdout: BufferedByteReceiveStream | None = None
        self._log_file: IO[bytes] | None = None

    async def __aenter__(self) -> Self:
        self._log_file = self.log.open("wb")
        self._process = await anyio.open_process(
            [str(self.python), "-m", self.module], cwd=REPO_ROOT, stderr=self._log_file
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

    def log_tail(self, limit: int = 3000) -> str:
        """The end of the driver's stderr."""
        return _tail(self.log, limit)

    async def request(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send one command and return its answer; a failed command raises `PeerError`."""
        process, stdout = self._process, self._stdout
        if process is None or process.stdin is None or stdout is None:
            raise PeerError(f"{self.module} is not running")
        with anyio.fail_after(self.request_timeout):
            await process.stdin.send((json.dumps(command) + "\n").encode())
            try:
                line = await stdout.receive_until(b"\n", 1 << 24)
            except (anyio.EndOfStream, anyio.IncompleteRead) as exc:
                raise PeerError(f"{self.module} exited:\n{self.log_tail()}") from exc
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise PeerError(f"{self.module}: {answer.get('error')}\n{self.log_tail(1500)}")
        return answer
