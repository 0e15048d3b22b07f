"""Shared plumbing of the test servers: command line, transports, call records (their knobs)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer

from mcpbridge.server import IDENTITY_HEADER, IdentityVerifier, VerifiedIdentity, verified_identity

RECORD_ENV = "MCPBRIDGE_RECORD"
"""Path of a JSON-lines file where example servers append one record per tool call."""

EVENTS_ENV = "MCPBRIDGE_RECORD_EVENTS"
"""Path of a JSON-lines file where example servers append one line when their process starts
(``"event": "start"``) and one per inbound MCP request (``"event": "request"``, with its ``method``;
for a ``tools/call`` also its ``tool``, the ``state`` it continues and the keys it ``answers``),
so a test can count processes and connections (``initialize``/``tools/list``) as well as calls."""


JSON_RESPONSE_ENV = "MCPBRIDGE_JSON_RESPONSE"
"""When set (to anything), the streamable HTTP server answers each request with one JSON body."""

SECRET_ENV = "MCPBRIDGE_IDENTITY_SECRET"
"""When set, the server accepts only calls whose signed identity verifies with this HS256 secret."""

AUDIENCE_ENV = "MCPBRIDGE_IDENTITY_AUDIENCE"
"""The audience the server expects in signed identities (the name the bridge gives it)."""


def fingerprint(secret: str) -> str:
    """A short, one-way fingerprint of a credential, for records that must not hold the credential."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def _verified() -> VerifiedIdentity | None:
    try:
        return verified_identity()
    except RuntimeError:  # the server does not check signed identities
        return None


def record(server: str, tool: str, ctx: Context, **extra: Any) -> dict[str, Any]:
    """Append what this call carried to the record file, and return it.

    The record holds the call's ``_meta`` (the signed token left out), the identity
    its signature proved (``verified``, when the server checks signatures) and a
    fingerprint of the ``Authorization`` header it came with and whether the
    ``Mcpbridge-Identity`` header was there (HTTP only).
    """
    meta: Mapping[str, Any] = ctx.request_context.meta or {}
    headers = ctx.headers or {}
    authorization = headers.get("authorization")
    verified = _verified()
    entry: dict[str, Any] = {
        "server": server,
        "tool": tool,
        "pid": os.getpid(),
        "time": time.time(),
        "protocol": ctx.protocol_version,
        "meta": {
            k: v
            for k, v in meta.items()
            if not k.startswith("io.modelcontextprotocol/") and not k.endswith("/identity_token")
        },
        "signed": any(k.endswith("/identity_token") for k in meta),
        "verified": None
        if verified is None
        else {"user_id": verified.user_id, "thread_id": verified.thread_id, "run_id": verified.run_id},
        "authorization": None if authorization is None else fingerprint(authorization),
        "identity_header": IDENTITY_HEADER.lower() in {k.lower() for k in headers},
        **extra,
    }
    path = os.environ.get(RECORD_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry, default=str) + "\n")
    return entry


def record_event(server: str, event: str, **extra: Any) -> None:
    """Append one event line (process start, inbound request) to the ``MCPBRIDGE_RECORD_EVENTS`` file."""
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    entry = {"server": server, "event": event, "pid": os.getpid(), "time": time.time(), **extra}
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(entry, default=str) + "\n")


def _call_round(ctx: ServerRequestContext[Any, Any]) -> dict[str, Any]:
    """For a ``tools/call``: its tool, the ``requestState`` it continues and the keys it answers (2026)."""
    if ctx.method != "tools/call" or not ctx.params:
        return {}
    responses: Mapping[str, Any] = ctx.params.get("inputResponses") or {}
    return {
        "tool": ctx.params.get("name"),
        "state": ctx.params.get("requestState"),
        "answers": sorted(responses),
    }


def _request_recorder(name: str) -> ServerMiddleware[Any]:
    async def recorder(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is not None:  # requests only, not notifications
            record_event(
                name, "request", method=ctx.method, protocol=ctx.protocol_version, **_call_round(ctx)
            )
        return await call_next(ctx)

    return recorder


def serve(server: MCPServer, description: str) -> None:
    """Run ``server`` over stdio (the default) or streamable HTTP (``--http --port N``, ``--json``).

    With ``MCPBRIDGE_IDENTITY_SECRET`` set, every ``tools/call`` must carry a signed
    identity addressed to ``--audience`` (default ``MCPBRIDGE_IDENTITY_AUDIENCE``, else
    the server's name); others are rejected.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--audience", default=os.environ.get(AUDIENCE_ENV), help="expected token audience")
    parser.add_argument("--json", action="store_true", help="answer with JSON, not event streams")
    args = parser.parse_args()
    name = server.name or "server"
    record_event(name, "start", transport="http" if args.http else "stdio")
    secret = os.environ.get(SECRET_ENV)
    if secret:
        verifier = IdentityVerifier(secret, audience=args.audience or name)
        server.middleware.append(verifier.middleware())
    if os.environ.get(EVENTS_ENV):
        server.middleware.append(_request_recorder(name))
    if args.http:
        json_response = args.json or bool(os.environ.get(JSON_RESPONSE_ENV))
        server.run("streamable-http", host=args.host, port=args.port, json_response=json_response)
    else:
        server.run()
