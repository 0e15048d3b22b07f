"""Child processes of the examples on 127.0.0.1: free ports, readiness checks, start and stop.

Every process is started by `child` and stopped by its own handle (`stop`: terminate,
wait, then kill) when the block ends; `wait_until` waits for it to be ready, bounded
by a timeout, and fails early, with the end of its log, if it exits first.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "HOST",
    "child",
    "free_port",
    "http_ok",
    "port_free",
    "port_open",
    "stop",
    "tail",
    "wait_until",
]

HOST = "127.0.0.1"
"""The only address the examples' servers listen on."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether ``127.0.0.1:port`` can be listened on (nothing holds it, on any address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on ``127.0.0.1:port``."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """Whether ``GET url`` answers 200 within 2 seconds."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:  # urllib.error.URLError included
        return False


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a log file (empty if there is none)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    ready: Callable[[], bool], process: subprocess.Popen[Any], log: Path, what: str, timeout: float
) -> None:
    """Poll ``ready()`` every 0.1 s until it is true; fail early if ``process`` exits, late on ``timeout``.

    Raises:
        RuntimeError: ``process`` exited, or was not ready in time; the message names
            ``what`` and ends with the last lines of ``log``.
    """
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {timeout:g}s:\n{tail(log)}")
        time.sleep(0.1)  # poll: the process is starting


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


@contextmanager
def child(
    command: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
) -> Generator[subprocess.Popen[bytes], None, None]:
    """Run ``command`` with its output appended to ``log``; always stopped by its handle on exit."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        stop(process)
