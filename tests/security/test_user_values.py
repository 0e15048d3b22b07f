"""A user's own store items fill only what the deployment declared, on the real Agent Server.

Bob (an ordinary user, his own bearer token) writes credential items through the
store API that try to run code in the deployment's stdio server before it speaks
MCP, to move it out of his per-user root, and to replace the headers the
deployment sends (his identity, the host, the signed identity). Each attack is
refused with the field and the rule, and the target's own evidence shows nothing
reached it: the marker file the payload writes stays absent, the server records no
call with the forged value. Beside each, the same item on ``tenant_unchecked``
(the protection off) does reach the target, and a declared name works.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from langgraph_sdk.client import LangGraphClient

from tests.security.conftest import Tenants, error_message, run

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def payload(kind: str, directory: Path, marker: Path) -> dict[str, str]:
    """Environment variables that make the stdio server's start-up run code that writes ``marker``."""
    directory.mkdir(parents=True, exist_ok=True)
    if kind == "PYTHONPATH":
        (directory / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
        return {"PYTHONPATH": str(directory)}
    assert kind == "BASH_ENV"
    script = directory / "startup.sh"
    script.write_text(f"echo ran > {marker}\n")
    return {"BASH_ENV": str(script)}


@pytest.mark.parametrize("kind", ["PYTHONPATH", "BASH_ENV"])
async def test_stored_interpreter_variables_never_run_code_in_a_stdio_server(
    deployment: Tenants, tenant_bob: LangGraphClient, tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / "pwned"
    env = payload(kind, tmp_path / "payload", marker)
    await tenant_bob.store.put_item(["mcp_credentials"], "files", {"env": env})

    refused = await run(tenant_bob, "tenant", "call files_root {}")
    assert refused["status"] == "error"
    message = error_message(refused)
    first = next(iter(env))
    assert f"env.{first}" in message and "never set from a user's values" in message, message
    assert not marker.exists()
    assert deployment.files.entries() == []  # the server never started, let alone answered

    # Control, protection off: the same item runs the payload before any MCP handshake.
    reached = await run(tenant_bob, "tenant_unchecked", "call files_root {}")
    assert reached["status"] == "success", error_message(reached)
    assert marker.exists()


async def test_a_stored_value_never_replaces_the_deployments_root(
    deployment: Tenants, tenant_bob: LangGraphClient
) -> None:
    alices_root = str(deployment.files_base / "alice")
    await tenant_bob.store.put_item(["mcp_credentials"], "files", {"env": {"FILES_ROOT": alices_root}})

    refused = await run(tenant_bob, "tenant", "call files_root {}")
    assert refused["status"] == "error"
    message = error_message(refused)
    assert "env.FILES_ROOT" in message and "set by the deployment" in message, message
    assert deployment.files.entries() == []

    # Control, protection off: Bob's item would have moved him into Alice's root.
    reached = await run(tenant_bob, "tenant_unchecked", "call files_root {}")
    [entry] = deployment.files.entries(tool="root")
    assert reached["status"] == "success" and entry["root"] == alices_root


async def test_a_declared_variable_is_filled_from_the_users_item(
    deployment: Tenants, tenant_bob: LangGraphClient
) -> None:
    await tenant_bob.store.put_item(
        ["mcp_credentials"], "files", {"env": {"FILES_TOKEN": "bobs-files-token"}}
    )
    outcome = await run(tenant_bob, "tenant", "call files_root {}")
    assert outcome["status"] == "success", error_message(outcome)
    [entry] = deployment.files.entries(tool="root")
    assert entry["root"] == str(deployment.files_base / "bob")
    assert entry["files_token"] == fingerprint("bobs-files-token")


FORGED_HEADERS: list[tuple[dict[str, str], str, str]] = [
    ({"X-User": "alice"}, "x_user", "set by the deployment"),
    ({"Host": "payroll.internal"}, "host", "never set from a user's values"),
    ({"Mcpbridge-Identity": "forged-token"}, "token", "never set from a user's values"),
    ({"X-Forwarded-For": "10.0.0.1"}, "x_user", "never set from a user's values"),
    ({"X-Api-Key": "bobs-key"}, "x_user", "not a name the deployment lets users set"),
]


@pytest.mark.parametrize(("headers", "field", "rule"), FORGED_HEADERS, ids=lambda v: str(v))
async def test_stored_headers_never_replace_what_the_deployment_sends(
    deployment: Tenants, tenant_bob: LangGraphClient, headers: dict[str, str], field: str, rule: str
) -> None:
    await tenant_bob.store.put_item(["mcp_credentials"], "notes", {"headers": headers})

    refused = await run(tenant_bob, "tenant", "call notes_whoami {}")
    assert refused["status"] == "error"
    message = error_message(refused)
    [name] = headers
    assert f"headers.{name}" in message and rule in message, message
    assert deployment.notes.records.entries() == []  # no request reached the server

    # Control, protection off: the forged header reaches the server.
    reached = await run(tenant_bob, "tenant_unchecked", "call notes_whoami {}")
    if name == "Host":
        # The MCP server's own DNS-rebinding check answers the forged Host with an error: it arrived.
        assert reached["status"] == "error" and "notes" in error_message(reached), error_message(reached)
        assert "answered with MCP error" in error_message(reached)
        return
    assert reached["status"] == "success", error_message(reached)
    [entry] = deployment.notes.records.entries(tool="whoami")
    if name == "X-User":
        assert entry["x_user"] == "alice"
    else:  # the run went through: only the protection refused the header
        assert entry["x_user"] == "bob"


async def test_a_stored_authorization_is_sent_with_the_deployments_headers(
    deployment: Tenants, tenant_bob: LangGraphClient
) -> None:
    await tenant_bob.store.put_item(["mcp_credentials"], "notes", {"bearer_token": "bobs-notes-token"})
    outcome = await run(tenant_bob, "tenant", "call notes_whoami {}")
    assert outcome["status"] == "success", error_message(outcome)
    [entry] = deployment.notes.records.entries(tool="whoami")
    assert entry["x_user"] == "bob"
    assert entry["authorization"] == fingerprint("Bearer bobs-notes-token")
