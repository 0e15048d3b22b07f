"""A bound on every async test: a hang fails the test that hung, saying so.

The ``pytest_pyfunc_call`` hook below (registered by ``tests/conftest.py``) runs each
async test under `anyio.fail_after`, for a little less than what remains of its pytest
timeout. An await nobody bounded then fails as a ``TimeoutError`` whose context shows
where the test hung, with its fixtures torn down, instead of as pytest-timeout's stack
dump. A step that can hang, such as a run as another user, still gets its own much
shorter ``anyio.fail_after(seconds, reason=...)``.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import anyio
import pytest

__all__ = ["pytest_pyfunc_call", "pytest_runtest_setup"]

MARGIN = 3.0
"""Seconds left to pytest-timeout after a test's own bound, to tear the test down."""

_started = pytest.StashKey[float]()


def _timeout(item: pytest.Function) -> float:
    """The item's pytest-timeout (marker, then ``--timeout``, then the ini file); 0 when none."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    option: object = item.config.getoption("timeout", None)
    if option is not None:
        return float(str(option))
    value: object = item.config.getini("timeout")
    return float(str(value)) if value else 0.0


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Note when the test's setup starts: pytest-timeout counts from there."""
    item.stash[_started] = time.monotonic()


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Run an async test under `anyio.fail_after`, for what is left of its timeout less `MARGIN`."""
    test: Callable[..., Awaitable[Any]] = pyfuncitem.obj
    timeout = _timeout(pyfuncitem)
    if not inspect.iscoroutinefunction(test) or timeout <= 0:
        return (yield)
    elapsed = time.monotonic() - pyfuncitem.stash.get(_started, time.monotonic())
    seconds = max(timeout - elapsed - MARGIN, 1.0)
    reason = f"{pyfuncitem.name} did not finish in {seconds:.0f} s: an await in it did not return"

    @functools.wraps(test)
    async def bounded_test(**kwargs: Any) -> None:
        with anyio.fail_after(seconds, reason=reason):
            await test(**kwargs)

    pyfuncitem.obj = bounded_test
    try:
        return (yield)
    finally:
        pyfuncitem.obj = test
