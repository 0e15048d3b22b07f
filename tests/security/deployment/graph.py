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

The names of the test's simulated DNS (``MCPBRIDGE_TEST_DNS``) are answered in this
process, the one that connects, as `tests.security.dns` describes.

``tenant_unchecked`` is the same deployment with protections switched off (the
user's store item is taken as the deployment's own; a registered URL is checked
when it is read, not at each connection): the positive control that shows an
attack's payload works when nothing stops it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from mcpbridge import (
    Credentials,
    HttpServer,
    IdentityMeta,
    IdentitySigner,
    ServerConfig,
    StdioServer,
    StoreCredentials,
    UrlPolicy,
    agent_factory,
)
from mcpbridge.scoping import RegisteredServers, Scoped, UserContext, UserServers
from mcpbridge.testing import OfflineChatModel
from tests.security.dns import install_from_env

install_from_env()

ROOT = Path(__file__).resolve().parents[3]
FILES_BASE = os.environ["TENANT_FILES_BASE"]
PAYROLL_AUDIENCE = "payroll-api"


class UncheckedStoreCredentials(StoreCredentials):
    """The protection off: a user's stored item is applied as if the deployment had written it."""

    async def __call__(self, user: UserContext, server: ServerConfig) -> Credentials | None:
        found = await super().__call__(user, server)
        return None if found is None else dataclasses.replace(found, source="deployment")


class UncheckedRegisteredServers(RegisteredServers):
    """The protection off: a registered URL is checked once, when it is read, as before connection checks."""

    def _validate(self, name: str, value: Any, *, taken: set[str]) -> ServerConfig:
        server = super()._validate(name, value, taken=taken)
        return server.model_copy(update={"url_policy": None})


def servers(
    credentials: StoreCredentials, registered: type[RegisteredServers] = RegisteredServers
) -> UserServers:
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
        registered=registered(policy=UrlPolicy(allow=allowed), connect_timeout=10),
    )


def identity() -> IdentityMeta:
    secret = os.environ["MCPBRIDGE_IDENTITY_SECRET"]
    return IdentityMeta(signer=IdentitySigner(secret, audiences={"payroll": PAYROLL_AUDIENCE}))


make_graph = agent_factory(
    servers(StoreCredentials(servers=["files", "notes"], required=False)),
    OfflineChatModel(),
    identity=identity(),
    pool=False,  # each run connects (and is checked) anew: the tests count a run's connections
)
make_unchecked_graph = agent_factory(
    servers(
        UncheckedStoreCredentials(servers=["files", "notes"], required=False), UncheckedRegisteredServers
    ),
    OfflineChatModel(),
    identity=identity(),
    pool=False,  # each run connects (and is checked) anew: the tests count a run's connections
)
