"""A user cannot move a thread into another user's account, nor change the shared assistants.

The deployment is ``examples/agent.py`` behind ``examples/auth.py`` on the real
Agent Server (the session's one, shared with ``tests/e2e``). Every attack is made
with the attacker's own bearer token through ``langgraph-sdk``: bob attacks alice
and alice attacks bob.

Threads: the attacker plants history on a thread of their own (a pending call of
``local_add`` with a number no other test uses, written by ``threads.update_state``
as if the model had asked for it) and tries to make the thread the victim's: by
``threads.update(metadata={"owner": victim})``, by creating it with that owner, by
copying it, or by a run creating it with that owner in the run's metadata. The
evidence: the victim's ``threads.get`` answers 404, the victim's search by the
thread's tag finds nothing, the victim's run on the thread is refused, and the
MCP servers' own records show no call with the planted number. The positive
control beside each attack: the attacker's own run on the same thread does
execute the planted call (recorded with the attacker's identity), so the planting
and the record reading are wired right.

Assistants: bob (without ``assistants:write``) tries to update, create and delete
assistants; the default assistant stays as it was, version and config. The
control: alice, who holds the permission, creates, updates and deletes one.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import httpx
import pytest
from langgraph_sdk.errors import ConflictError, NotFoundError, PermissionDeniedError

from tests.e2e.agent_server import GRAPH_ID, Activity, AgentServer, identity

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(300)]

RUN_TIMEOUT = 60.0
"""Seconds one run may take: a hung run fails its test."""
ATTACK_TIMEOUT = 30.0
"""Seconds the requests of one attack (none of them runs the agent) may take together."""
DIRECTIONS = [
    pytest.param("bob", "alice", id="bob-attacks-alice"),
    pytest.param("alice", "bob", id="alice-attacks-bob"),
]
"""(attacker, victim)."""


def user_client(agent_server: AgentServer, user: str) -> Any:
    """The user's ``langgraph-sdk`` client, with their own bearer token (untyped, as the tests use it)."""
    return agent_server.client(user)


def planted_number() -> int:
    """A number no other test passes to ``local_add``: the planted call's fingerprint."""
    return 900_000_000 + uuid.uuid4().int % 100_000_000


def planted_calls(activity: Activity, number: int) -> list[dict[str, Any]]:
    """The recorded calls carrying the planted number."""
    return [c for c in activity.calls_to("add") if c.get("arguments", {}).get("a") == number]


async def plant(client: Any, thread_id: str, number: int) -> None:
    """Write a pending ``local_add`` call into the thread, as if the model had asked for it."""
    call = {
        "name": "local_add",
        "args": {"a": number, "b": 1},
        "id": f"planted-{number}",
        "type": "tool_call",
    }
    await client.threads.update_state(
        thread_id,
        {
            "messages": [
                {"role": "user", "content": "hello"},
                {"role": "ai", "content": "", "tool_calls": [call]},
            ]
        },
        as_node="model",
    )


async def continue_run(client: Any, thread_id: str) -> dict[str, Any]:
    """Run the agent on the thread with no new input: it carries out what the thread holds."""
    with anyio.fail_after(RUN_TIMEOUT):
        return await client.runs.wait(thread_id, GRAPH_ID, input=None)


async def assert_planted_thread_never_reaches_the_victim(
    agent_server: AgentServer, attacker: str, victim: str, thread_id: str, tag: str, number: int
) -> None:
    """The victim neither sees nor runs the thread; then the attacker's own run executes the plant."""
    async with user_client(agent_server, attacker) as mine, user_client(agent_server, victim) as theirs:
        with anyio.fail_after(
            ATTACK_TIMEOUT, reason=f"{victim}'s reads of {attacker}'s thread did not answer"
        ):
            with pytest.raises(NotFoundError):
                await theirs.threads.get(thread_id)
            with pytest.raises(NotFoundError):
                await theirs.threads.get_state(thread_id)
            assert await theirs.threads.search(metadata={"tag": tag}) == []
            assert thread_id not in {t["thread_id"] for t in await theirs.threads.search(limit=1000)}
        mark = await agent_server.settle()
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await continue_run(theirs, thread_id)
        assert caught.value.response.status_code == 404
        with pytest.raises(httpx.HTTPStatusError) as caught:
            with anyio.fail_after(
                ATTACK_TIMEOUT, reason=f"{victim}'s run on {attacker}'s thread did not answer"
            ):
                await theirs.runs.create(thread_id, GRAPH_ID, input=None)
        assert caught.value.response.status_code == 404
        assert planted_calls(agent_server.records.since(mark), number) == []

        # The thread is still the attacker's, and is found by its tag for them.
        thread = await mine.threads.get(thread_id)
        assert thread["metadata"]["owner"] == attacker
        assert [t["thread_id"] for t in await mine.threads.search(metadata={"tag": tag})] == [thread_id]

        # Control: the attacker's own run carries out the planted call, with the attacker's identity.
        mark = await agent_server.settle()
        await continue_run(mine, thread_id)
        await agent_server.settle()
        calls = planted_calls(agent_server.records.since(mark), number)
        assert [identity(c)["user_id"] for c in calls] == [attacker]
        assert identity(calls[0])["thread_id"] == thread_id


@pytest.mark.parametrize(("attacker", "victim"), DIRECTIONS)
async def test_updating_the_owner_never_hands_a_planted_thread_over(
    agent_server: AgentServer, attacker: str, victim: str
) -> None:
    tag, number = uuid.uuid4().hex, planted_number()
    async with user_client(agent_server, attacker) as client:
        thread_id = (await client.threads.create(metadata={"tag": tag}, graph_id=GRAPH_ID))["thread_id"]
        await plant(client, thread_id, number)
        updated = await client.threads.update(thread_id, metadata={"owner": victim, "topic": "kept"})
    # The owner's own update went through (the control), all but the owner.
    assert updated["metadata"]["topic"] == "kept"
    assert updated["metadata"]["owner"] == attacker
    await assert_planted_thread_never_reaches_the_victim(
        agent_server, attacker, victim, thread_id, tag, number
    )


@pytest.mark.parametrize(("attacker", "victim"), DIRECTIONS)
async def test_a_thread_cannot_be_created_for_another_user(
    agent_server: AgentServer, attacker: str, victim: str
) -> None:
    tag, number = uuid.uuid4().hex, planted_number()
    async with user_client(agent_server, attacker) as client:
        created = await client.threads.create(metadata={"owner": victim, "tag": tag}, graph_id=GRAPH_ID)
        thread_id = created["thread_id"]
        await plant(client, thread_id, number)
    assert created["metadata"]["owner"] == attacker
    await assert_planted_thread_never_reaches_the_victim(
        agent_server, attacker, victim, thread_id, tag, number
    )


@pytest.mark.parametrize(("attacker", "victim"), DIRECTIONS)
async def test_a_copy_stays_with_the_user_who_copied(
    agent_server: AgentServer, attacker: str, victim: str
) -> None:
    tag, number = uuid.uuid4().hex, planted_number()
    async with user_client(agent_server, attacker) as client:
        source = (await client.threads.create(metadata={"tag": f"{tag}-source"}, graph_id=GRAPH_ID))[
            "thread_id"
        ]
        await plant(client, source, number)
        copied = await client.threads.copy(source)
        thread_id = copied["thread_id"]
        await client.threads.update(thread_id, metadata={"owner": victim, "tag": tag})
    assert copied["metadata"]["owner"] == attacker
    await assert_planted_thread_never_reaches_the_victim(
        agent_server, attacker, victim, thread_id, tag, number
    )


@pytest.mark.parametrize(("attacker", "victim"), DIRECTIONS)
async def test_a_run_cannot_create_its_thread_for_another_user(
    agent_server: AgentServer, attacker: str, victim: str
) -> None:
    tag, number = uuid.uuid4().hex, planted_number()
    thread_id = str(uuid.uuid4())
    async with user_client(agent_server, attacker) as client:
        with anyio.fail_after(RUN_TIMEOUT):
            run = await client.runs.create(
                thread_id,
                GRAPH_ID,
                input={"messages": [{"role": "user", "content": "hello"}]},
                metadata={"owner": victim, "tag": tag},
                config={"metadata": {"owner": victim}},
                if_not_exists="create",
            )
            await client.runs.join(thread_id, run["run_id"])
            # A later run on the existing thread, claiming the victim again, changes nothing either.
            await client.runs.wait(
                thread_id,
                GRAPH_ID,
                input={"messages": [{"role": "user", "content": "hello again"}]},
                metadata={"owner": victim},
                config={"metadata": {"owner": victim}},
            )
        await plant(client, thread_id, number)
    await agent_server.settle()
    await assert_planted_thread_never_reaches_the_victim(
        agent_server, attacker, victim, thread_id, tag, number
    )


@pytest.mark.parametrize(("attacker", "victim"), DIRECTIONS)
async def test_another_users_thread_cannot_be_written_by_its_id(
    agent_server: AgentServer, attacker: str, victim: str
) -> None:
    reason = f"{attacker}'s writes to {victim}'s thread did not answer"
    with anyio.fail_after(ATTACK_TIMEOUT, reason=reason):
        async with user_client(agent_server, attacker) as mine, user_client(agent_server, victim) as theirs:
            topic = f"victim's {uuid.uuid4().hex}"
            thread = await theirs.threads.create(metadata={"topic": topic}, graph_id=GRAPH_ID)
            thread_id = thread["thread_id"]
            with pytest.raises(NotFoundError):
                await mine.threads.update(thread_id, metadata={"owner": attacker, "topic": "attacker's"})
            with pytest.raises(ConflictError):  # the copy finds no thread of the caller's to copy
                await mine.threads.copy(thread_id)
            with pytest.raises(ConflictError):
                await mine.threads.create(
                    thread_id=thread_id, metadata={"topic": "attacker's"}, if_exists="do_nothing"
                )
            with pytest.raises(NotFoundError):
                await mine.threads.update_state(
                    thread_id, {"messages": [{"role": "user", "content": "planted"}]}
                )
            thread = await theirs.threads.get(thread_id)
            assert thread["metadata"]["owner"] == victim
            assert thread["metadata"]["topic"] == topic
            assert (await theirs.threads.get_state(thread_id))["values"] in ({}, None, [])
            assert await mine.threads.search(metadata={"topic": topic}) == []  # no copy was made
            # Control: the owner's own update of the same thread goes through.
            updated = await theirs.threads.update(thread_id, metadata={"topic": "changed"})
            assert (updated["metadata"]["topic"], updated["metadata"]["owner"]) == ("changed", victim)


# --- assistants ----------------------------------------------------------------------------------


async def default_assistant(client: Any) -> dict[str, Any]:
    """The graph's default assistant, which belongs to no one and serves every user's runs."""
    found = await client.assistants.search(graph_id=GRAPH_ID, limit=100)
    [assistant] = [a for a in found if a["metadata"].get("created_by") == "system"]
    return assistant


async def test_a_user_without_the_permission_cannot_change_the_assistants(
    agent_server: AgentServer, alice: Any, bob: Any
) -> None:
    before = await default_assistant(alice)
    assistant_id = before["assistant_id"]
    versions = await alice.assistants.get_versions(assistant_id)
    listed = {a["assistant_id"] for a in await alice.assistants.search(limit=1000)}

    with pytest.raises(PermissionDeniedError) as caught:
        await bob.assistants.update(assistant_id, config={"recursion_limit": 1}, context={"planted": True})
    assert "assistants:write" in str(caught.value.response.text)
    with pytest.raises(PermissionDeniedError):
        await bob.assistants.create(GRAPH_ID, config={"recursion_limit": 1}, name="planted")
    with pytest.raises(PermissionDeniedError):
        await bob.assistants.delete(assistant_id)

    assert await alice.assistants.get(assistant_id) == before
    assert await alice.assistants.get_versions(assistant_id) == versions
    assert {a["assistant_id"] for a in await alice.assistants.search(limit=1000)} == listed
    # Reading and searching stay open to bob.
    assert (await bob.assistants.get(assistant_id))["config"] == before["config"]
    assert (await default_assistant(bob))["assistant_id"] == assistant_id


async def test_a_user_holding_the_permission_manages_assistants(
    agent_server: AgentServer, alice: Any, bob: Any
) -> None:
    created = await alice.assistants.create(GRAPH_ID, config={"recursion_limit": 40}, name=uuid.uuid4().hex)
    assistant_id = created["assistant_id"]
    try:
        updated = await alice.assistants.update(assistant_id, config={"recursion_limit": 41})
        assert updated["config"]["recursion_limit"] == 41
        assert updated["version"] == created["version"] + 1
        # The assistant alice made is no more bob's to change than the default one.
        with pytest.raises(PermissionDeniedError):
            await bob.assistants.update(assistant_id, config={"recursion_limit": 1})
        with pytest.raises(PermissionDeniedError):
            await bob.assistants.delete(assistant_id)
        assert (await bob.assistants.get(assistant_id))["config"]["recursion_limit"] == 41
    finally:
        await alice.assistants.delete(assistant_id)
    with pytest.raises(NotFoundError):
        await alice.assistants.get(assistant_id)
