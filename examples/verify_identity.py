"""Verify in an MCP server who a tool call serves: the bridge signs each call's identity.

The ``_meta`` identity keys (``dev.mcpbridge/user_id``, ...) can be written by anyone who
reaches a server. With an `IdentitySigner` the bridge adds a short-lived JWT for the
user, thread, run and target server; the server's `IdentityVerifier` checks it before any
tool runs and rejects unsigned, forged, expired or misaddressed calls.

    python examples/verify_identity.py          # a signed call, then an unsigned one
    python examples/verify_identity.py --serve  # the server alone, over stdio

Both sides share a secret here (HS256); a private key on the bridge and the public key
on the server work the same way (``IdentitySigner(key, algorithm="ES256")``).
"""

from __future__ import annotations

import os
import secrets
import sys

import anyio
from langchain_core.runnables import RunnableConfig
from mcp.server.mcpserver import MCPServer

from mcpbridge import Bridge, IdentityMeta, IdentitySigner, StdioServer
from mcpbridge.server import IdentityVerifier, verified_identity

SECRET_ENV = "REPORTS_IDENTITY_SECRET"


def serve() -> None:
    """The MCP server: every call must carry an identity signed for the audience ``reports``."""
    verifier = IdentityVerifier(os.environ[SECRET_ENV], audience="reports")
    server = MCPServer("reports", middleware=[verifier.middleware()])

    @server.tool()
    async def my_reports() -> str:
        """List the reports of the user this call serves."""
        identity = verified_identity()  # proven by the signature, not taken from the arguments
        return f"reports of {identity.user_id} (thread {identity.thread_id})"

    server.run()


async def main() -> None:
    """Start the server over stdio with a fresh secret, and call it signed and unsigned."""
    secret = secrets.token_urlsafe(48)
    server = StdioServer(
        name="reports",  # the audience of its tokens
        command=sys.executable,
        args=[__file__, "--serve"],
        env={SECRET_ENV: secret},
    )
    config: RunnableConfig = {"configurable": {"thread_id": "thread-1", "langgraph_auth_user_id": "alice"}}
    async with Bridge([server], identity=IdentityMeta(signer=IdentitySigner(secret))) as bridge:
        result = await bridge.tools[0].ainvoke({}, config)
        print(f"signed call:   {result}")
    async with Bridge([server]) as bridge:  # no signer: the server refuses the call
        result = await bridge.tools[0].ainvoke({}, config)
        print(f"unsigned call: {result}")


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve()
    else:
        anyio.run(main)
