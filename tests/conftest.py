"""Fixtures shared by the test directories: the session's one Agent Server and its users.

They live in `tests.e2e.agent_server` and are registered here, at the root of the
tests, so that ``tests/e2e`` and ``tests/security`` share one Agent Server per
session (a session fixture registered by two conftests would run twice). Every async
test runs under a bound shorter than its timeout (`tests.bounds`).
"""

from __future__ import annotations

from tests.bounds import pytest_pyfunc_call, pytest_runtest_setup
from tests.e2e.agent_server import (
    agent_server,
    alice,
    anyio_backend,
    bob,
    clean_store,
    own_server,
    pytest_runtest_makereport,
    stdio_blocking_failure,
)

__all__ = [
    "agent_server",
    "alice",
    "anyio_backend",
    "bob",
    "clean_store",
    "own_server",
    "pytest_pyfunc_call",
    "pytest_runtest_makereport",
    "pytest_runtest_setup",
    "stdio_blocking_failure",
]
