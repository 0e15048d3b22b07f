"""Registered servers cannot reach refused addresses or exhaust the deployment, on the real Agent Server.

Bob registers servers through the store API. A name whose simulated DNS answers
the admitted 127.0.0.2 when the URL is checked and the refused 127.0.0.3 when the
Agent Server connects (DNS rebinding) never reaches the tripwire on 127.0.0.3; the
user is told one fixed text, and the deployment's log has the detail. A name that
answers both addresses reaches the admitted one only. Control: the same name on
``tenant_unchecked`` (the URL checked when read, not at each connection) does reach
the tripwire. A registered server offering 100,000 tools is skipped with the cap's
reason while Alice's run, at the same time, finishes.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from langgraph_sdk.client import LangGraphClient

from mcpbridge.events import SKIPPED_EVENT
from tests.security.conftest import ADMITTED, REFUSED, RUN_TIMEOUT, Tenants, error_message, run

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def streamed(client: LangGraphClient, graph: str, content: str) -> tuple[str, list[dict[str, Any]]]:
    """One run on a new thread: its status, and the servers its ``mcp_servers_skipped`` event lists."""
    thread_id = (await client.threads.create())["thread_id"]
    skipped: list[dict[str, Any]] = []
    created: list[Any] = []
    with anyio.fail_after(RUN_TIMEOUT):
        async for part in client.runs.stream(
            thread_id,
            graph,
            input={"messages": [{"role": "user", "content": content}]},
            stream_mode=["custom"],
            on_run_created=created.append,
        ):
            if part.event == "custom" and part.data.get("type") == SKIPPED_EVENT:
                skipped.extend(part.data["servers"])
    [created_run] = created
    return (await client.runs.get(thread_id, created_run["run_id"]))["status"], skipped


async def test_a_rebinding_name_never_reaches_the_refused_address(
    deployment: Tenants, tenant_bob: LangGraphClient
) -> None:
    await tenant_bob.store.put_item(
        ["mcp_servers"], "rebind", {"url": deployment.rebinding_url("attack.rebind.test")}
    )
    status, skipped = await streamed(tenant_bob, "tenant", 'call add {"a": 1, "b": 2}')
    assert status == "success"
    [failure] = skipped
    assert failure["server"] == "rebind"
    assert "could not be connected" in failure["reason"]
    assert REFUSED not in failure["reason"] and str(deployment.tripwire.port) not in failure["reason"]
    assert await deployment.tripwire_hits() == []  # no connection reached the refused address
    assert deployment.echo.records.entries() == []
    log = deployment.log.read_text(encoding="utf-8", errors="replace")
    assert f"refused a connection to {REFUSED}" in log  # the detail is the deployment's


async def test_a_name_answering_both_addresses_reaches_only_the_admitted_one(
    deployment: Tenants, tenant_bob: LangGraphClient
) -> None:
    await tenant_bob.store.put_item(
        ["mcp_servers"], "steady", {"url": deployment.rebinding_url("steady.rebind.test")}
    )
    outcome = await run(tenant_bob, "tenant", 'call add {"a": 1, "b": 2}')
    assert outcome["status"] == "success", error_message(outcome)
    [call] = deployment.echo.records.entries(tool="add")
    assert call["arguments"] == {"a": 1, "b": 2}
    assert await deployment.tripwire_hits() == []
    assert deployment.echo.port == deployment.tripwire.port and ADMITTED != REFUSED


async def test_control_without_connection_checks_the_name_reaches_the_refused_address(
    deployment: Tenants, tenant_bob: LangGraphClient
) -> None:
    await tenant_bob.store.put_item(
        ["mcp_servers"], "rebind", {"url": deployment.rebinding_url("control.rebind.test")}
    )
    status, skipped = await streamed(tenant_bob, "tenant_unchecked", 'call add {"a": 1, "b": 2}')
    assert status == "success" and [f["server"] for f in skipped] == ["rebind"]
    assert await deployment.tripwire_hits() != []  # the unchecked connection reached 127.0.0.3


async def test_a_registered_server_offering_too_many_tools_is_skipped_while_others_run(
    deployment: Tenants, tenant_bob: LangGraphClient, tenant_alice: LangGraphClient
) -> None:
    await tenant_bob.store.put_item(["mcp_servers"], "flood", {"url": deployment.hostile.url})
    outcomes: dict[str, Any] = {}

    async def bob() -> None:
        outcomes["bob"] = await streamed(tenant_bob, "tenant", "call files_root {}")

    async def alice() -> None:
        outcomes["alice"] = await run(tenant_alice, "tenant", "call files_root {}")

    async with anyio.create_task_group() as group:
        group.start_soon(bob)
        group.start_soon(alice)
    status, skipped = outcomes["bob"]
    assert status == "success"
    [failure] = skipped
    assert failure["server"] == "flood" and "max_tools=64" in failure["reason"], failure
    assert outcomes["alice"]["status"] == "success", error_message(outcomes["alice"])
    roots = {entry["root"] for entry in deployment.files.entries(tool="root")}
    assert roots == {str(deployment.files_base / "alice"), str(deployment.files_base / "bob")}
