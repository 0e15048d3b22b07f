"""A throw-away Postgres server for the tests, from the system's packages.

`postgres_server` makes a cluster in a fresh directory (``initdb``), runs the
``postgres`` binary on a free port of 127.0.0.1 as its own process (as the
``postgres`` user, or ``nobody``, when the tests run as root: Postgres refuses
root), and stops it through that process's handle. A machine without Postgres
gets it from apt (CI runs as root on fresh machines); nothing is skipped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import HOST, free_port, tail

START_TIMEOUT = 60.0
INSTALL_TIMEOUT = 600.0
_READY = "database system is ready to accept connections"


@dataclass
class PostgresServer:
    """A running Postgres server: ``url`` is its ``postgres`` database, as the ``mcpbridge`` superuser."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"postgres://mcpbridge@{HOST}:{self.port}/postgres"


def postgres_binaries() -> Path:
    """The directory of ``initdb`` and ``postgres``; installs the ``postgresql`` package when missing."""
    found = _find_binaries()
    if found is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise RuntimeError(
                "these tests need PostgreSQL (initdb and postgres); install it (apt-get install postgresql)"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"],
        ):
            subprocess.run(command, check=True, env=env, timeout=INSTALL_TIMEOUT, stdout=subprocess.DEVNULL)
        found = _find_binaries()
        if found is None:
            raise RuntimeError("apt-get installed postgresql, but no initdb was found")
    return found


def _find_binaries() -> Path | None:
    """Debian keeps the server programs in /usr/lib/postgresql/<version>/bin, outside PATH."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def _server_user() -> str | None:
    """Whom to run the server as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root, with neither a postgres nor a nobody user to run Postgres as")


@contextmanager
def postgres_server() -> Generator[PostgresServer, None, None]:
    """A fresh Postgres cluster served on a free port of 127.0.0.1 until the block ends."""
    binaries = postgres_binaries()
    user = _server_user()
    # Not under pytest's tmp dir: that one is private to root, and the server may run as another user.
    directory = Path(tempfile.mkdtemp(prefix="mcpbridge-pg-"))
    try:
        if user is not None:
            os.chown(directory, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
        data, log = directory / "data", directory / "postgres.log"
        subprocess.run(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "mcpbridge",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            user=user,
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=START_TIMEOUT,
        )
        port = free_port()
        settings = {
            "listen_addresses": HOST,
            "port": str(port),
            "unix_socket_directories": str(directory),
            "max_connections": "100",
            # A throw-away cluster: durability costs time and buys nothing.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        command = [str(binaries / "postgres"), "-D", str(data)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command,
                user=user,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = PostgresServer(process, port, log)
        try:
            _wait_ready(server)
            yield server
        finally:
            _stop(process)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _wait_ready(server: PostgresServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while _READY not in server.log.read_text(errors="replace"):
        if server.process.poll() is not None:
            raise RuntimeError(f"postgres exited with {server.process.returncode}:\n{tail(server.log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"postgres was not ready within {START_TIMEOUT}s:\n{tail(server.log)}")
        time.sleep(0.05)  # polling interval, bounded by the deadline


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT: clients are disconnected), then kill if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait(timeout=10)
