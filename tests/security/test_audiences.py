"""No user can mint a signed identity token for a deployment server, on the real Agent Server.

The deployment's ``payroll`` server is for ``mcp:admin`` (alice); it verifies
identities addressed to ``payroll-api``, the signer's audience for it. Bob lacks
the permission: he registers his own server under the key ``payroll-api``
through the store API, has his run call it, and replays the token it captured to
the real payroll server, which rejects it and records no call. Controls: alice's
run reaches payroll, and a token addressed the way a deployment server's is (the
protection off) is accepted on replay, so the replay path itself works.
"""

from __future__ import annotations

import pytest
from langgraph_sdk.client import LangGraphClient

from mcpbridge import IdentitySigner, RunIdentity
from tests.security.conftest import PAYROLL_AUDIENCE, Tenants, error_message, run
from tests.security.test_identity import replay

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_a_token_captured_by_a_registered_server_is_refused_by_payroll(
    deployment: Tenants, tenant_bob: LangGraphClient
) -> None:
    await tenant_bob.store.put_item(["mcp_servers"], PAYROLL_AUDIENCE, {"url": deployment.own.url})
    outcome = await run(tenant_bob, "tenant", 'call lookup {"text": "salaries"}')
    assert outcome["status"] == "success", error_message(outcome)
    [captured] = deployment.own.records.entries(tool="lookup")
    assert captured["meta"]["dev.mcpbridge/user_id"] == "bob"
    token = str(captured["token"])

    rejected = await replay(deployment.payroll.url, token)
    assert isinstance(rejected, str), rejected
    assert "wrong_audience" in rejected or "addressed to another server" in rejected, rejected
    assert deployment.payroll.records.entries() == []  # payroll's own record: nothing accepted

    # Control, protection off: bob's identity addressed as payroll's audience is accepted on replay.
    unprotected = IdentitySigner(deployment.secret).sign(RunIdentity(user_id="bob"), server=PAYROLL_AUDIENCE)
    assert not isinstance(await replay(deployment.payroll.url, unprotected), str)
    [entry] = deployment.payroll.records.entries()
    assert entry["verified"]["user_id"] == "bob"


async def test_a_user_holding_the_permission_reaches_payroll(
    deployment: Tenants, tenant_alice: LangGraphClient
) -> None:
    outcome = await run(tenant_alice, "tenant", "call payroll_whoami {}")
    assert outcome["status"] == "success", error_message(outcome)
    [entry] = deployment.payroll.records.entries(tool="whoami")
    assert entry["verified"]["user_id"] == "alice"


async def test_registering_a_deployment_servers_name_is_refused(
    deployment: Tenants, tenant_bob: LangGraphClient
) -> None:
    await tenant_bob.store.put_item(["mcp_servers"], "payroll", {"url": deployment.own.url})
    outcome = await run(tenant_bob, "tenant", 'call lookup {"text": "salaries"}')
    assert outcome["status"] == "success", error_message(outcome)
    assert deployment.own.records.entries() == []
    assert deployment.payroll.records.entries() == []
