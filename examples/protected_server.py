"""The demo's MCP server protected by OAuth: the MCP SDK's resource-server support.

It serves its protected resource metadata (RFC 9728), answers a request without a
valid token with a 401 naming it, and verifies each bearer token as a JWT signed
by the authorization server's keys (its JWKS), issued by it for this server's URL
(the audience). Its ``whoami`` tool answers the token's subject and scopes, and with
``--record PATH`` also writes them to that file as one JSON line per call (its own record
of who called).

Run: ``python -m examples.protected_server --port N --issuer http://127.0.0.1:M [--record PATH]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import anyio.to_thread
import jwt
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

SCOPE = "mcp:tools"


class JwtVerifier:
    """Accepts JWT access tokens the issuer signed for ``audience``."""

    def __init__(self, issuer: str, audience: str) -> None:
        self.issuer = issuer
        self.audience = audience
        self._keys = jwt.PyJWKClient(f"{issuer}/jwks")

    def _verify(self, token: str) -> AccessToken | None:
        try:
            key = self._keys.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=["RS256"], audience=self.audience, issuer=self.issuer
            )
        except jwt.PyJWTError:
            return None
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id", "")),
            scopes=str(claims.get("scope", "")).split(),
            expires_at=int(claims["exp"]),
            resource=self.audience,
            subject=str(claims["sub"]),
            claims={"iss": claims["iss"]},
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's access, or None unless the issuer signed it for this server."""
        return await anyio.to_thread.run_sync(self._verify, token)


def build(issuer: str, url: str, record: Path | None = None) -> MCPServer:
    server = MCPServer(
        "protected",
        token_verifier=JwtVerifier(issuer, url),
        auth=AuthSettings(
            issuer_url=issuer,  # pyright: ignore[reportArgumentType]
            resource_server_url=url,  # pyright: ignore[reportArgumentType]
            required_scopes=[SCOPE],
            validate_token_resource=True,
        ),
    )

    @server.tool()
    def whoami() -> str:
        """The subject and scopes of the caller's token."""
        token = get_access_token()
        assert token is not None
        seen = json.dumps({"subject": token.subject, "scopes": token.scopes, "client_id": token.client_id})
        if record is not None:
            with record.open("a", encoding="utf-8") as file:
                file.write(seen + "\n")
        return seen

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--record", type=Path, default=None, help="where to record each call's subject")
    args = parser.parse_args()
    url = f"http://{args.host}:{args.port}/mcp"
    build(args.issuer, url, args.record).run("streamable-http", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
