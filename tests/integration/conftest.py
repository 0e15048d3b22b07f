"""Fixtures of the integration tests: real example servers, their call records, and child processes.

HTTP servers are shared by the tests of a module (or owned by one test when it
kills its server); stdio servers are started by each test's `Bridge`. Each
fixture stops what it started through its own process handle.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    ChildProcesses,
    ExampleServer,
    HttpServerProcess,
    Protocol,
    RecordFile,
    Transport,
    start_http_server,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def record_file(tmp_path: Path) -> RecordFile:
    """A fresh record file for servers this test starts (give its path as ``MCPBRIDGE_RECORD``)."""
    return RecordFile(tmp_path / "calls.jsonl")


@pytest.fixture
def children() -> Iterator[ChildProcesses]:
    """Counts child processes; the test fails if any it started outlives it."""
    watch = ChildProcesses()
    yield watch
    watch.assert_none_left()


@pytest.fixture(scope="module")
def echo_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServerProcess]:
    """The echo example server over streamable HTTP, shared by the tests of one module."""
    server = start_http_server("echo", tmp_path_factory.mktemp("echo-http"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def inquiring_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServerProcess]:
    """The inquiring example server over streamable HTTP, shared by the tests of one module."""
    server = start_http_server("inquiring", tmp_path_factory.mktemp("inquiring-http"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hostile_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServerProcess]:
    """The hostile example server over streamable HTTP, shared by the tests of one module."""
    server = start_http_server("hostile", tmp_path_factory.mktemp("hostile-http"))
    yield server
    server.stop()


@pytest.fixture
def own_echo_http(tmp_path: Path) -> Iterator[HttpServerProcess]:
    """An echo server over streamable HTTP for this test alone (for tests that kill it)."""
    server = start_http_server("echo", tmp_path)
    yield server
    server.stop()


# --- example servers as bridge configurations --------------------------------------------------


@pytest.fixture(params=["stdio", "http"])
def transport(request: pytest.FixtureRequest) -> Transport:
    return request.param


@pytest.fixture(params=["auto", "legacy"])
def protocol(request: pytest.FixtureRequest) -> Protocol:
    return request.param


def _example(
    request: pytest.FixtureRequest, module: str, transport: Transport, protocol: Protocol, tmp_path: Path
) -> ExampleServer:
    if transport == "http":
        http: HttpServerProcess = request.getfixturevalue(f"{module}_http")
        return ExampleServer(module, transport, protocol, http.records.view(), http)
    return ExampleServer(module, transport, protocol, RecordFile(tmp_path / f"{module}-calls.jsonl"))


@pytest.fixture
def echo(
    request: pytest.FixtureRequest, transport: Transport, protocol: Protocol, tmp_path: Path
) -> ExampleServer:
    """The echo example server over each transport, in each protocol era."""
    return _example(request, "echo", transport, protocol, tmp_path)


@pytest.fixture
def hostile(
    request: pytest.FixtureRequest, transport: Transport, protocol: Protocol, tmp_path: Path
) -> ExampleServer:
    """The hostile example server over each transport, in each protocol era."""
    return _example(request, "hostile", transport, protocol, tmp_path)
