"""Thread claims of one process; the Postgres ones are in ``tests/serve/test_serve_replicas.py``."""

from __future__ import annotations

import anyio
import pytest

from mcpbridge.serving.threadlocks import ThreadLocks, open_thread_locks, postgres_lock_key

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_claimed_thread_is_busy_until_its_call_ends() -> None:
    async with open_thread_locks(None) as locks:
        async with locks.claim(("ada", "t1")) as first:
            async with locks.claim(("ada", "t1")) as second:
                assert (first, second) == (True, False)
            async with locks.claim(("bob", "t1")) as other_user, locks.claim(("ada", "t2")) as other_thread:
                assert other_user and other_thread
        async with locks.claim(("ada", "t1")) as again:
            assert again


async def test_a_cancelled_call_frees_its_thread() -> None:
    locks = ThreadLocks()
    entered = anyio.Event()

    async def hold() -> None:
        async with locks.claim((None, "t")):
            entered.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as group:
        group.start_soon(hold)
        await entered.wait()
        async with locks.claim((None, "t")) as busy:
            assert not busy
        group.cancel_scope.cancel()
    async with locks.claim((None, "t")) as free:
        assert free


def test_lock_keys_are_stable_signed_64_bit_integers() -> None:
    key = postgres_lock_key("thread", "ada", "t1")
    assert key == postgres_lock_key("thread", "ada", "t1")
    assert -(2**63) <= key < 2**63
    assert len({key, postgres_lock_key("thread", "", "t1"), postgres_lock_key("thread", "ada", "t2")}) == 3
