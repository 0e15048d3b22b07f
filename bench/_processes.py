"""Child processes of the suite: bench MCP servers, each stopped through its own handle.

HTTP servers print the port they bound (``PORT <n>``) before serving, so there is
no race for a port. Every process the suite starts is owned by one
`contextlib.ExitStack` and stopped (terminate, wait, kill) when it closes.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from examples.processes import stop

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: servers run as ``python -m bench.servers`` from here."""

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


def stop_process(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """Stop one child by its handle (`examples.processes.stop`), then close its pipes."""
    try:
        stop(process, timeout)
    finally:
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def tail(path: Path, chars: int = 3000) -> str:
    """The end of a log file, for error messages."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


def server_args(*, http: bool = False, handshake_delay: float = 0.0, events: Path | None = None) -> list[str]:
    """The arguments of ``python`` that run the bench server."""
    args = ["-m", "bench.servers"]
    if http:
        args.append("--http")
    if handshake_delay:
        args += ["--handshake-delay", str(handshake_delay)]
    if events is not None:
        args += ["--events", str(events)]
    return args


@dataclass(frozen=True, slots=True)
class HttpServerProcess:
    """A bench server serving streamable HTTP on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    events: Path
    log: Path

    @property
    def url(self) -> str:
        """The MCP endpoint."""
        return f"http://127.0.0.1:{self.port}/mcp"


def start_http_servers(
    stack: ExitStack, directory: Path, count: int, *, handshake_delay: float = 0.0, label: str = "http"
) -> list[HttpServerProcess]:
    """Start ``count`` HTTP bench servers at once, registered on ``stack``, and wait for their ports."""
    started: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
    for i in range(count):
        events, log = directory / f"{label}-{i}-events.jsonl", directory / f"{label}-{i}.log"
        with log.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, *server_args(http=True, handshake_delay=handshake_delay, events=events)],
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        stack.callback(stop_process, process)
        started.append((process, events, log))
    return [
        HttpServerProcess(process, port, events, log)
        for (process, events, log), port in zip(started, _read_ports(started), strict=True)
    ]


def _read_ports(started: Sequence[tuple[subprocess.Popen[bytes], Path, Path]]) -> list[int]:
    ports: dict[int, int] = {}
    deadline = time.monotonic() + START_TIMEOUT
    with selectors.DefaultSelector() as selector:
        for i, (process, _, _) in enumerate(started):
            assert process.stdout is not None
            selector.register(process.stdout, selectors.EVENT_READ, i)
        while len(ports) < len(started):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"bench HTTP servers not listening after {START_TIMEOUT:g}s")
            for key, _ in selector.select(timeout=min(left, 1.0)):
                i: int = key.data
                stream: IO[bytes] = key.fileobj  # pyright: ignore[reportAssignmentType]
                line = stream.readline().decode().strip()
                if not line.startswith("PORT "):
                    process, _, log = started[i]
                    process.wait(STOP_TIMEOUT)
                    raise RuntimeError(f"bench HTTP server exited with {process.returncode}:\n{tail(log)}")
                ports[i] = int(line.split()[1])
                selector.unregister(stream)
    return [ports[i] for i in range(len(started))]


def count_events(paths: Sequence[Path], *, since: dict[Path, int] | None = None) -> dict[str, int]:
    """Starts and handshakes recorded in ``paths`` (after the byte offsets ``since``)."""
    counts = {"start": 0, "handshake": 0}
    for path in paths:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        for line in data[(since or {}).get(path, 0) :].decode().splitlines():
            if line.strip():
                event = json.loads(line)["event"]
                counts[event] = counts.get(event, 0) + 1
    return counts


def offsets(paths: Sequence[Path]) -> dict[Path, int]:
    """The current size of each events file, to count only what comes after."""
    return {path: path.stat().st_size if path.exists() else 0 for path in paths}
