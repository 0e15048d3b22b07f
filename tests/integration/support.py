"""What the integration tests share: example servers as subprocesses, their call records, child processes.

Every server here is a real subprocess: stdio servers are started by the `Bridge`
under test, streamable HTTP servers by `start_http_server` (through the fixtures
in ``conftest.py``). Whatever starts a process stops it through its own handle.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio

from mcpbridge import HttpServer, ServerConfig, StdioServer
from mcpbridge.server import DEFAULT_META_PREFIX

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: the example servers run as ``python -m examples.servers.<name>`` from here."""

RECORD_ENV = "MCPBRIDGE_RECORD"
PROTOCOL_VERSIONS = {"auto": "2026-07-28", "legacy": "2025-11-25"}
"""The protocol version each `protocol` mode must end up speaking with the example servers."""

THREAD_KEY = f"{DEFAULT_META_PREFIX}thread_id"
RUN_KEY = f"{DEFAULT_META_PREFIX}run_id"
USER_KEY = f"{DEFAULT_META_PREFIX}user_id"

SERVER_START_TIMEOUT = 20.0
SERVER_STOP_TIMEOUT = 5.0

T = TypeVar("T")
Transport = Literal["stdio", "http"]
Protocol = Literal["auto", "legacy"]


# --- ports -------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def poll_until(check: Callable[[], T], *, within: float, interval: float = 0.02) -> T:
    """Call ``check`` until it returns something truthy and return that; `TimeoutError` after ``within``s."""
    with anyio.fail_after(within):
        while True:
            result = check()
            if result:
                return result
            await anyio.sleep(interval)


class SilentListener:
    """A TCP listener on 127.0.0.1 that accepts connections and reads requests, but never answers.

    It serves from a thread of its own until `close` (or the end of its ``with`` block).
    """

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._received = bytearray()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"silent-listener-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def received(self) -> bytes:
        """Everything clients sent so far."""
        with self._lock:
            return bytes(self._received)

    def _serve(self) -> None:
        clients: list[socket.socket] = []
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.05):  # wakes to check `_stopping`
                    sock: socket.socket = key.fileobj  # pyright: ignore[reportAssignmentType]
                    if sock is self._server:
                        client, _ = sock.accept()
                        clients.append(client)
                        selector.register(client, selectors.EVENT_READ)
                        continue
                    data = sock.recv(65536)
                    if not data:
                        selector.unregister(sock)
                        continue
                    with self._lock:
                        self._received.extend(data)
        for client in clients:
            client.close()

    def close(self) -> None:
        """Stop serving and close every connection."""
        self._stopping.set()
        self._thread.join(timeout=SERVER_STOP_TIMEOUT)
        self._server.close()
        assert not self._thread.is_alive(), "the silent listener did not stop"

    def __enter__(self) -> SilentListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- call records ------------------------------------------------------------------------------


@dataclass
class RecordFile:
    """The JSON-lines file an example server appends one entry per tool call to (``MCPBRIDGE_RECORD``).

    ``offset`` hides what was written before it, so a test sharing a server with
    earlier tests sees only its own calls.
    """

    path: Path
    offset: int = 0

    def view(self) -> RecordFile:
        """A view of this file that starts after everything written so far."""
        size = self.path.stat().st_size if self.path.exists() else 0
        return RecordFile(self.path, size)

    def entries(
        self, *, tool: str | None = None, phase: str | None = None, thread_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The recorded calls matching every given criterion (``thread_id`` is read from ``_meta``)."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as file:
            file.seek(self.offset)
            data = file.read()
        found: list[dict[str, Any]] = []
        for line in data.decode("utf-8").splitlines():
            if not line.strip():
                continue
            entry: dict[str, Any] = json.loads(line)
            if tool is not None and entry.get("tool") != tool:
                continue
            if phase is not None and entry.get("phase") != phase:
                continue
            if thread_id is not None and entry.get("meta", {}).get(THREAD_KEY) != thread_id:
                continue
            found.append(entry)
        return found

    async def wait_for(
        self,
        *,
        tool: str | None = None,
        phase: str | None = None,
        thread_id: str | None = None,
        within: float = 10.0,
    ) -> dict[str, Any]:
        """Poll until an entry matches, for at most ``within`` seconds; return the first one."""
        found = await poll_until(
            lambda: self.entries(tool=tool, phase=phase, thread_id=thread_id), within=within
        )
        return found[0]


# --- child processes ---------------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        found.update(int(child) for child in text.split())
    return found


def descendants(pid: int | None = None) -> set[int]:
    """Every live or unreaped descendant process of ``pid`` (this process by default), from /proc."""
    root = os.getpid() if pid is None else pid
    seen: set[int] = set()
    pending = [root]
    while pending:
        for child in _children(pending.pop()):
            if child not in seen:
                seen.add(child)
                pending.append(child)
    return seen


def describe_process(pid: int) -> str:
    """``pid``, its state and command line, for assertion messages."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} [{state}] {cmdline.strip()}"


@dataclass
class ChildProcesses:
    """The test process's descendants, against those that existed when the test started."""

    baseline: set[int] = field(default_factory=descendants)

    def new(self) -> set[int]:
        """Descendants started since the baseline that still exist (zombies included)."""
        return descendants() - self.baseline

    def expect(self, pid: int) -> None:
        """Count ``pid`` as existing before the test: a process a fixture stops, as a restarted server."""
        self.baseline.add(pid)

    def assert_none_left(self) -> None:
        left = self.new()
        assert not left, "leftover child processes:\n" + "\n".join(describe_process(p) for p in sorted(left))


# --- HTTP example servers ----------------------------------------------------------------------


@dataclass
class HttpServerProcess:
    """An example server serving streamable HTTP on 127.0.0.1, as a subprocess of the tests."""

    module: str
    port: int
    process: subprocess.Popen[bytes]
    records: RecordFile
    log: Path
    command: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict[str, str])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """Kill the server at once (SIGKILL) and reap it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=SERVER_STOP_TIMEOUT)

    def stop(self) -> None:
        """Terminate the server, wait for it, and kill it if it does not exit in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait(timeout=SERVER_STOP_TIMEOUT)

    def restart(self) -> None:
        """Start the stopped server again on the same port, with the same records; wait until it listens."""
        assert self.process.poll() is not None, "restart a server only once it is stopped"
        self.process = _launch(self.command, self.env, self.log)
        problem = self.wait_listening()
        if problem is not None:
            self.stop()
            raise RuntimeError(
                f"could not restart the {self.module} example server on {self.port}: {problem}"
            )

    def wait_listening(self) -> str | None:
        """Wait until the server accepts connections; else say why not."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"exited with {self.process.returncode}:\n{self.log_tail()}"
            if port_accepts(self.port):
                return None
            time.sleep(0.05)  # polling interval, bounded by the deadline
        return f"not listening after {SERVER_START_TIMEOUT}s"


def _launch(command: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            list(command),
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def start_http_server(
    module: str,
    directory: Path,
    *,
    attempts: int = 3,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> HttpServerProcess:
    """Start ``examples.servers.<module>`` (or a dotted ``module``) over streamable HTTP until it listens.

    The port is picked free just before the start; if another process takes it
    first and the server exits, it is started again on another port. ``args`` and
    ``env`` are extra command-line arguments and environment variables.
    """
    target = module if "." in module else f"examples.servers.{module}"
    module = module.rsplit(".", 1)[-1]
    records = RecordFile(directory / f"{module}-calls.jsonl")
    env = {**os.environ, **(env or {}), RECORD_ENV: str(records.path), "PYTHONUNBUFFERED": "1"}
    problems: list[str] = []
    for attempt in range(attempts):
        port = free_port()
        log = directory / f"{module}-{port}.log"
        command = [sys.executable, "-m", target, *args, "--http", "--port", str(port)]
        server = HttpServerProcess(module, port, _launch(command, env, log), records, log, command, env)
        try:
            problem = server.wait_listening()
        except BaseException:
            server.stop()
            raise
        if problem is None:
            return server
        problems.append(f"attempt {attempt + 1}: {problem}")
        server.stop()
    raise RuntimeError(f"could not start the {module} example server over HTTP:\n" + "\n".join(problems))


# --- example servers as bridge configurations --------------------------------------------------


@dataclass
class ExampleServer:
    """One example server as a test reaches it: how to configure it, and what it recorded."""

    module: str
    transport: Transport
    protocol: Protocol
    records: RecordFile
    http: HttpServerProcess | None = None

    @property
    def expected_version(self) -> str:
        return PROTOCOL_VERSIONS[self.protocol]

    def config(self, name: str | None = None, **options: Any) -> ServerConfig:
        """A bridge configuration for this server (``options`` are any server option)."""
        name = name or self.module
        if self.http is not None:
            return HttpServer(name=name, url=self.http.url, protocol=self.protocol, **options)
        return StdioServer(
            name=name,
            command=sys.executable,
            args=("-m", f"examples.servers.{self.module}"),
            cwd=ROOT,
            env={RECORD_ENV: str(self.records.path)},
            protocol=self.protocol,
            **options,
        )
