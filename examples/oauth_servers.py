"""The demo's OAuth servers: an authorization server (``oidc-provider``, npm) and an MCP server it protects.

`install` puts the pinned ``oidc-provider`` into a cache the caller owns
(``.cache/oidc-provider-<version>`` in the repository, ignored by git; another
directory with ``MCPBRIDGE_TEST_CACHE``), once per version. `authorization_server`
starts it on 127.0.0.1 on a free port with ``examples/oidc_provider.mjs``
(users alice and bob, dynamic client registration, PKCE required, resource
indicators issuing JWT access tokens, rotated refresh tokens, a short
access-token lifetime) and stops it by its handle. The provider writes each of
its events as a JSON line that `AuthorizationServer.events` reads.
`protected_server` starts the MCP server it protects (``examples/protected_server.py``)
and stops it by its handle. ``python -m examples.serve_demo`` starts both; the tests
start them too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from examples.processes import HOST, child, free_port, http_ok, port_open, wait_until

__all__ = [
    "OIDC_PROVIDER_VERSION",
    "SCOPES",
    "AuthorizationServer",
    "authorization_server",
    "install",
    "protected_server",
    "require_node",
]

ROOT = Path(__file__).resolve().parent.parent

OIDC_PROVIDER_VERSION = "9.13.3"
"""The pinned ``oidc-provider``; it runs on Node.js 20 (it warns that it prefers 22)."""

SCOPES = ("mcp:tools",)
"""The scopes of the MCP resource the provider issues tokens for."""

SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
CACHE_ENV = "MCPBRIDGE_TEST_CACHE"


def require_node() -> None:
    """Fail, saying what to install, unless ``node`` and ``npm`` are on the PATH."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        msg = (
            f"the authorization server (oidc-provider) needs {' and '.join(missing)}: "
            "install Node.js 20 or later with npm (e.g. `apt-get install -y nodejs npm`)"
        )
        raise RuntimeError(msg)


def _cache() -> Path:
    return Path(os.environ.get(CACHE_ENV) or ROOT / ".cache")


def install(version: str = OIDC_PROVIDER_VERSION) -> Path:
    """The directory holding ``node_modules/oidc-provider`` at ``version``, installed on first use.

    ``npm install --prefix`` runs into a temporary directory beside the cache entry,
    renamed into place once complete, so an interrupted install is never reused.
    """
    require_node()
    target = _cache() / f"oidc-provider-{version}"
    if (target / "node_modules" / "oidc-provider" / "package.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".oidc-provider-{version}-", dir=target.parent))
    try:
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(staging),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"oidc-provider@{version}",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # another process installed it first: keep theirs
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@dataclass(frozen=True)
class AuthorizationServer:
    """A running ``oidc-provider``.

    Attributes:
        issuer: Its issuer identifier, ``http://127.0.0.1:<port>``.
        events_path: Its event log, one JSON object per line (``event`` names the event).
        process: Its process (stopped by `authorization_server`).
        clients: The pre-registered clients it was started with.
    """

    issuer: str
    events_path: Path
    process: subprocess.Popen[Any]
    clients: Sequence[Mapping[str, Any]] = field(default=())

    @property
    def port(self) -> int:
        """Its port on 127.0.0.1."""
        return int(self.issuer.rsplit(":", 1)[1])

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The events logged so far (only those called ``name``, when given)."""
        try:
            lines = self.events_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        found = [json.loads(line) for line in lines if line.strip()]
        return [e for e in found if name is None or e["event"] == name]


@contextmanager
def authorization_server(
    directory: Path,
    *,
    access_token_ttl: int = 30,
    clients: Sequence[Mapping[str, Any]] = (),
    users: Sequence[str] = ("alice", "bob"),
    client_id_metadata_documents: bool = False,
    trusted_ca: Path | None = None,
    scopes: Sequence[str] = SCOPES,
    opaque_resources: Sequence[str] = (),
    jwks: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
) -> Generator[AuthorizationServer, None, None]:
    """Start ``oidc-provider`` on a free port of 127.0.0.1, yield it, stop it by its handle.

    Args:
        directory: Where its log (``oidc-provider.log``) and event log (``oidc-events.jsonl``) go.
        access_token_ttl: Seconds an access token lives.
        clients: Pre-registered clients (``client_id``, ``client_secret``, ``redirect_uris``, ...).
        users: The accounts that can sign in.
        client_id_metadata_documents: Accept https URLs as client ids (Client ID Metadata Documents).
        trusted_ca: A CA certificate (PEM) to trust when fetching them, besides the system's.
        scopes: The scopes of the MCP resources it issues tokens for.
        opaque_resources: Resources whose access tokens are opaque (checked by introspection), not JWTs.
        jwks: Its signing keys (a private JWK set), instead of its development key.
        timeout: Seconds to wait for it to answer its discovery document.
    """
    prefix = install()
    port = free_port()
    events = directory / "oidc-events.jsonl"
    log = directory / "oidc-provider.log"
    options = {
        "port": port,
        "users": list(users),
        "scopes": list(scopes),
        "opaque_resources": list(opaque_resources),
        "jwks": dict(jwks) if jwks is not None else None,
        "access_token_ttl": access_token_ttl,
        "events": str(events),
        "clients": [dict(c) for c in clients],
        "client_id_metadata_document": client_id_metadata_documents,
    }
    env = {**os.environ, "NODE_PATH": str(prefix / "node_modules")}
    if trusted_ca is not None:
        env["NODE_EXTRA_CA_CERTS"] = str(trusted_ca)
    # ESM ignores NODE_PATH: run the script from the prefix, where `oidc-provider` resolves.
    script = prefix / SCRIPT.name
    shutil.copyfile(SCRIPT, script)
    issuer = f"http://{HOST}:{port}"
    with child(["node", str(script), json.dumps(options)], cwd=prefix, env=env, log=log) as process:
        wait_until(
            lambda: http_ok(f"{issuer}/.well-known/openid-configuration"),
            process,
            log,
            "oidc-provider",
            timeout,
        )
        yield AuthorizationServer(issuer=issuer, events_path=events, process=process, clients=clients)


@contextmanager
def protected_server(
    issuer: str, directory: Path, *, record: Path | None = None
) -> Generator[str, None, None]:
    """The URL of an MCP server protected by ``issuer`` (``examples.protected_server``).

    It runs as a process of its own, stopped by its handle when the block ends; its log
    is ``directory / "protected.log"``. With ``record``, it writes each call's subject there.
    """
    port, log = free_port(), directory / "protected.log"
    command = [
        sys.executable,
        "-m",
        "examples.protected_server",
        "--port",
        str(port),
        "--issuer",
        issuer,
    ]
    if record is not None:
        command += ["--record", str(record)]
    with child(command, cwd=ROOT, env=dict(os.environ), log=log) as process:
        wait_until(lambda: port_open(port), process, log, "the protected MCP server", 30)
        yield f"http://{HOST}:{port}/mcp"
