from __future__ import annotations

import pytest

from ._helpers import Protocol


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["auto", "legacy"])
def protocol(request: pytest.FixtureRequest) -> Protocol:
    """Both protocol eras: ``auto`` negotiates 2026-07-28 in-process, ``legacy`` the 2025-11-25 handshake."""
    return request.param
