"""A real authorization server for the tests: ``oidc-provider`` (npm), and a headless user to log in at it.

`install` puts the pinned ``oidc-provider`` into a cache the tests own
(``.cache/oidc-provider-<version>`` in the repository, ignored by git; another
directory with ``MCPBRIDGE_TEST_CACHE``), once per version. `authorization_server`
starts it on 127.0.0.1 on a free port with ``tests/support/oidc_provider.mjs``
(users alice and bob, dynamic client registration, PKCE required, resource
indicators issuing JWT access tokens, rotated refresh tokens, a short
access-token lifetime) and stops it by its handle. The provider writes each of
its events as a JSON line that `AuthorizationServer.events` reads. `login` is
the user's browser: it follows an authorization URL, signs in and consents
through the provider's development interactions, and returns the redirect's
query (``code``, ``state``, ``iss``). `metadata_document` serves a Client ID
Metadata Document over TLS on 127.0.0.1 (a ``trustme`` CA the provider is told to trust).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx2
import trustme

from tests.support.processes import HOST, REPO_ROOT, child, free_port, http_ok, port_open, wait_until

__all__ = [
    "OIDC_PROVIDER_VERSION",
    "SCOPES",
    "AuthorizationServer",
    "LoginFailed",
    "authorization_server",
    "MetadataDocument",
    "install",
    "login",
    "metadata_document",
    "protected_server",
    "require_node",
]

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
            f"the tests' authorization server (oidc-provider) needs {' and '.join(missing)}: "
            "install Node.js 20 or later with npm (e.g. `apt-get install -y nodejs npm`)"
        )
        raise RuntimeError(msg)


def _cache() -> Path:
    return Path(os.environ.get(CACHE_ENV) or REPO_ROOT / ".cache")


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


class LoginFailed(Exception):
    """The headless login did not reach the redirect URI; the message says where it stopped."""


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


async def login(
    authorization_url: str,
    user: str,
    *,
    redirect_uri: str,
    http: httpx2.AsyncClient | None = None,
    max_steps: int = 12,
) -> dict[str, str]:
    """Sign ``user`` in at ``authorization_url`` and consent, as a browser would; return the callback's query.

    Redirects are followed by hand until one points at ``redirect_uri`` (nothing
    listens there: its query is what the authorization server sent the user's
    browser back with). The login and consent forms of ``oidc-provider``'s
    development interactions are posted along the way.

    Raises:
        LoginFailed: The provider answered with an error, or no redirect to ``redirect_uri`` came.
    """
    own = http is None
    client = http or httpx2.AsyncClient(follow_redirects=False, timeout=10.0)
    try:
        url, response = authorization_url, await client.get(authorization_url)
        for _ in range(max_steps):
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                if url.startswith(redirect_uri):
                    return dict(parse_qsl(urlsplit(url).query))
                response = await client.get(url)
                continue
            if response.status_code != 200:
                raise LoginFailed(f"{url} answered {response.status_code}: {response.text[:500]}")
            form = _FORM.search(response.text)
            if form is None:
                raise LoginFailed(f"{url} showed no form: {response.text[:500]}")
            fields = dict(_HIDDEN.findall(form.group(2)))
            if fields.get("prompt") == "login":
                fields.update(login=user, password="any")
            url = urljoin(url, form.group(1))
            response = await client.post(url, data=fields)
        raise LoginFailed(f"no redirect to {redirect_uri} after {max_steps} steps (last: {url})")
    finally:
        if own:
            await client.aclose()


@dataclass
class MetadataDocument:
    """A Client ID Metadata Document served over TLS.

    Attributes:
        url: Its https URL, which is also its ``client_id``.
        ca_path: The PEM of the CA that signed the server's certificate.
        fetches: How many times it was fetched.
    """

    url: str
    ca_path: Path
    fetches: int = 0


@contextmanager
def protected_server(issuer: str, directory: Path) -> Generator[str, None, None]:
    """The URL of an MCP server protected by ``issuer`` (``tests.support.servers.protected``).

    It runs as a process of its own, stopped by its handle when the block ends; its log
    is ``directory / "protected.log"``.
    """
    port, log = free_port(), directory / "protected.log"
    command = [
        sys.executable,
        "-m",
        "tests.support.servers.protected",
        "--port",
        str(port),
        "--issuer",
        issuer,
    ]
    with child(command, cwd=REPO_ROOT, env=dict(os.environ), log=log) as process:
        wait_until(lambda: port_open(port), process, log, "the protected MCP server", 30)
        yield f"http://{HOST}:{port}/mcp"


@contextmanager
def metadata_document(
    directory: Path, document: Mapping[str, Any]
) -> Generator[MetadataDocument, None, None]:
    """Serve ``document`` (with its ``client_id`` set to its URL) at ``https://127.0.0.1:<port>/oauth/client.json``.

    The server runs in a thread of this process and is shut down on exit.
    """
    ca = trustme.CA()
    ca_path = directory / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    served = MetadataDocument(url="", ca_path=ca_path)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/oauth/client.json":
                self.send_error(404)
                return
            served.fetches += 1
            body = json.dumps({**document, "client_id": served.url}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    served.url = f"https://{HOST}:{server.server_address[1]}/oauth/client.json"
    thread = threading.Thread(target=server.serve_forever, name="metadata-document", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
