"""The hostile-tenant deployment: the servers an attacker goes after, on the real Agent Server.

Served by ``tests/security/conftest.py`` with ``examples/auth.py`` (alice holds
``mcp:admin``, bob does not). Every run gets:

- ``files`` (stdio): ``bash -c 'exec python -m tests.security.servers'``, with the
  deployment's per-user root ``FILES_ROOT=<base>/{user.identity}`` and one name users
  may set themselves, ``FILES_TOKEN`` (``user_env``), from their store item.
- ``notes`` (HTTP): sends ``X-User: {user.identity}``; users may store their own
  ``Authorization`` (the default ``user_headers``).
- ``payroll`` (HTTP), for ``mcp:admin`` only: verifies signed identities addressed to
  ``payroll-api`` (the signer's audience for it).
- The servers users register (``mcp_servers``), on the test's allow-listed ports.

``tenant_unchecked`` is the same deployment with the protection of user values
switched off (the user's store item is taken as the deployment's own): the
positive control that shows an attack's payload works when nothing stops it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from mcpbridge import (
    Credentials,
    HttpServer,
    IdentityMeta,
    IdentitySigner,
    RegisteredServers,
    Scoped,
    ServerConfig,
    StdioServer,
    StoreCredentials,
    UrlPolicy,
    UserContext,
    UserServers,
    agent_factory,
)
from mcpbridge.models import OfflineChatModel

ROOT = Path(__file__).resolve().parents[3]
FILES_BASE = os.environ["TENANT_FILES_BASE"]
PAYROLL_AUDIENCE = "payroll-api"


class UncheckedStoreCredentials(StoreCredentials):
    """The protection off: a user's stored item is applied as if the deployment had written it."""

    async def __call__(self, user: UserContext, server: ServerConfig) -> Credentials | None:
        found = await super().__call__(user, server)
        return None if found is None else dataclasses.replace(found, source="deployment")


def servers(credentials: StoreCredentials) -> UserServers:
    files = StdioServer(
        name="files",
        command="/bin/bash",
        args=("-c", f'exec "{sys.executable}" -m tests.security.servers'),
        cwd=ROOT,
        env={
            "FILES_ROOT": f"{FILES_BASE}/{{user.identity}}",
            "MCPBRIDGE_RECORD": os.environ["TENANT_RECORD"],
        },
        user_env=("FILES_TOKEN",),
        prefix="files",
    )
    notes = HttpServer(
        name="notes",
        url=os.environ["TENANT_NOTES_URL"],
        headers={"X-User": "{user.identity}"},
        prefix="notes",
    )
    payroll = HttpServer(name="payroll", url=os.environ["TENANT_PAYROLL_URL"], prefix="payroll")
    allowed = [entry for entry in os.environ.get("TENANT_ALLOWED", "").split(",") if entry]
    return UserServers(
        [
            Scoped(files, credentials=credentials),
            Scoped(notes, credentials=credentials),
            Scoped(payroll, permissions=["mcp:admin"]),
        ],
        registered=RegisteredServers(policy=UrlPolicy(allow=allowed), connect_timeout=10),
    )


def identity() -> IdentityMeta:
    secret = os.environ["MCPBRIDGE_IDENTITY_SECRET"]
    return IdentityMeta(signer=IdentitySigner(secret, audiences={"payroll": PAYROLL_AUDIENCE}))


make_graph = agent_factory(
    servers(StoreCredentials(servers=["files", "notes"], required=False)),
    OfflineChatModel(),
    identity=identity(),
)
make_unchecked_graph = agent_factory(
    servers(UncheckedStoreCredentials(servers=["files", "notes"], required=False)),
    OfflineChatModel(),
    identity=identity(),
)
