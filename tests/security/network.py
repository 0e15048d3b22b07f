"""Network targets of the hostile-tenant tests, each on a 127.0.0.x address of its own.

`Tripwire` records every TCP connection it accepts and never answers; `start_echo_at`
runs the example echo server (which records its calls) on a given loopback address;
`NotMcp` is an open port that answers HTTP, but not MCP. Whatever starts a target
stops it through its own handle.
"""

from __future__ import annotations

import http.server
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.support import (
    RECORD_ENV,
    ROOT,
    SERVER_START_TIMEOUT,
    SERVER_STOP_TIMEOUT,
    HttpServerProcess,
    RecordFile,
    poll_until,
)

__all__ = ["NotMcp", "Tripwire", "start_echo_at"]


class Tripwire:
    """A TCP listener on ``host`` that records the peer of every connection it accepts; it never answers.

    Connections are accepted in arrival order, so once `canary` has been recorded every
    earlier connection has been too: a test asserts "no connection" without waiting on time.
    """

    def __init__(self, host: str, port: int = 0) -> None:
        self.host = host
        self._server = socket.create_server((host, port))
        self.port: int = self._server.getsockname()[1]
        self._peers: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"tripwire-{host}-{self.port}", daemon=True)
        self._thread.start()

    def peers(self) -> list[tuple[str, int]]:
        """The peer address of every connection accepted so far."""
        with self._lock:
            return list(self._peers)

    async def canary(self) -> list[tuple[str, int]]:
        """Connect once from the test, wait until that connection is recorded; return the peers before it."""
        with socket.create_connection((self.host, self.port), timeout=5) as sock:
            mine = sock.getsockname()
            await poll_until(lambda: mine in self.peers(), within=10)
        peers = self.peers()
        return peers[: peers.index(mine)]

    def _serve(self) -> None:
        clients: list[socket.socket] = []
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for _ in selector.select(timeout=0.05):  # wakes to check `_stopping`
                    client, peer = self._server.accept()
                    clients.append(client)  # held open, silent: the client waits for an answer
                    with self._lock:
                        self._peers.append((str(peer[0]), int(peer[1])))
        for client in clients:
            client.close()

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self._stopping.set()
        self._thread.join(timeout=SERVER_STOP_TIMEOUT)
        self._server.close()
        assert not self._thread.is_alive(), "the tripwire did not stop"

    def __enter__(self) -> Tripwire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _NotFound(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b"<html>not here</html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: the test's output is the bridge's


class NotMcp:
    """An open port on ``host`` serving HTTP that answers every request with 404 (a web server, not MCP)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._server = http.server.ThreadingHTTPServer((host, 0), _NotFound)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"not-mcp-{self.port}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=SERVER_STOP_TIMEOUT)
        assert not self._thread.is_alive(), "the HTTP server did not stop"

    def __enter__(self) -> NotMcp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def start_echo_at(host: str, port: int, directory: Path) -> Generator[HttpServerProcess]:
    """The example echo server over streamable HTTP on ``host:port``, recording its calls; stopped on exit.

    Raises:
        RuntimeError: It did not start listening (the port may be taken): its log says why.
    """
    records = RecordFile(directory / f"echo-{host}-{port}.jsonl")
    log = directory / f"echo-{host}-{port}.log"
    env = {**os.environ, RECORD_ENV: str(records.path), "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "tests.support.servers.echo",
        "--http",
        "--host",
        host,
        "--port",
        str(port),
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    server = HttpServerProcess("echo", port, process, records, log, command, env)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not _accepts(host, port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the echo server did not listen on {host}:{port}:\n{server.log_tail()}")
            time.sleep(0.05)  # polling interval, bounded by the deadline
        yield server
    finally:
        server.stop()
