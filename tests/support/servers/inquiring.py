"""A server whose tools elicit (form and URL), sample a model and list roots, in both protocol eras.

On a 2025-11-25 session each tool sends its request while the call is open
(``elicitation/create``, ``sampling/createMessage``, ``roots/list``); on a 2026-07-28
session it answers ``input_required`` and reads the answer from the next round. Every
outcome is recorded (``outcome``: the answer, or the error the client sent), so a test
reads what the server got. Run it with ``python -m tests.support.servers.inquiring``
(``--http --port N`` for streamable HTTP). With ``INQUIRING_STATE_KEY`` set (32 bytes or more),
the ``requestState`` it hands out is sealed with that key rather than one made for the process,
so a round continues across a restart of the server.
"""

from __future__ import annotations

import json
import os
from typing import Any

import mcp_types as types
from mcp import MCPError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.request_state import RequestStateSecurity
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from tests.support.servers.common import record, serve

STATE_KEY_ENV = "INQUIRING_STATE_KEY"
"""The key that seals the server's ``requestState`` (unset: a key of the process, lost on restart)."""

_state_key = os.environ.get(STATE_KEY_ENV)
server = MCPServer(
    "inquiring",
    instructions="Asks its client for input, a completion and roots.",
    request_state_security=RequestStateSecurity(keys=[_state_key]) if _state_key else None,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "seats": {"type": "integer"}},
    "required": ["name"],
}
SECRET_URL = "https://login.example.com/flow?token=very-secret-one-time-token"


def _modern(ctx: Context) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json", by_alias=True, exclude_none=True)


def _related(ctx: Context) -> ServerMessageMetadata:
    return ServerMessageMetadata(related_request_id=ctx.request_id)


def _form_request(question: str) -> types.ElicitRequest:
    return types.ElicitRequest(
        params=types.ElicitRequestFormParams(message=question, requested_schema=SCHEMA)  # pyright: ignore[reportArgumentType]
    )


def _url_request() -> types.ElicitRequest:
    return types.ElicitRequest(
        params=types.ElicitRequestURLParams(
            message="Sign in to continue", url=SECRET_URL, elicitation_id="e1"
        )
    )


def _sampling_request(text: str, max_tokens: int) -> types.CreateMessageRequest:
    message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=text))
    return types.CreateMessageRequest(
        params=types.CreateMessageRequestParams(messages=[message], max_tokens=max_tokens)
    )


async def _ask_once(ctx: Context, request: types.ServerRequest, result: type[Any], key: str) -> Any:
    """One request: sent during the call (2025), or the answer of the round before (2026)."""
    if _modern(ctx):
        answer = (ctx.input_responses or {}).get(key)
        return None if answer is None else _plain(answer)
    try:
        return _plain(await ctx.session.send_request(request, result, metadata=_related(ctx)))
    except MCPError as exc:
        return {"error": exc.error.message}


def _pending(ctx: Context, requests: dict[str, Any]) -> types.InputRequiredResult | None:
    """On a 2026 session's first round: ask for ``requests``."""
    if _modern(ctx) and ctx.request_state is None:
        return types.InputRequiredResult(input_requests=requests, request_state="asked")
    return None


@server.tool()
async def ask(question: str, ctx: Context) -> str | types.InputRequiredResult:
    """Ask the user ``question`` with a form (name, seats)."""
    pending = _pending(ctx, {"form": _form_request(question)})
    if pending is not None:
        return pending
    outcome = await _ask_once(ctx, _form_request(question), types.ElicitResult, "form")
    record("inquiring", "ask", ctx, outcome=outcome)
    return f"ask: {json.dumps(outcome, sort_keys=True)}"


@server.tool()
async def visit(ctx: Context) -> str | types.InputRequiredResult:
    """Send the user to a sign-in URL (URL-mode elicitation)."""
    pending = _pending(ctx, {"url": _url_request()})
    if pending is not None:
        return pending
    outcome = await _ask_once(ctx, _url_request(), types.ElicitResult, "url")
    record("inquiring", "visit", ctx, outcome=outcome)
    return f"visit: {json.dumps(outcome, sort_keys=True)}"


@server.tool()
async def summarize(
    text: str, ctx: Context, times: int = 1, max_tokens: int = 50
) -> str | types.InputRequiredResult:
    """Ask the client's model to summarize ``text``, ``times`` times."""
    requests = {f"sample{n}": _sampling_request(text, max_tokens) for n in range(times)}
    pending = _pending(ctx, dict(requests))
    if pending is not None:
        return pending
    outcomes = [
        await _ask_once(ctx, request, types.CreateMessageResult, key) for key, request in requests.items()
    ]
    record("inquiring", "summarize", ctx, outcome=outcomes)
    return f"summarize: {json.dumps(outcomes, sort_keys=True)}"


@server.tool()
async def consult(question: str, text: str, ctx: Context) -> str | types.InputRequiredResult:
    """Ask the user ``question`` and the client's model about ``text``, in one round (2026)."""
    requests = {"form": _form_request(question), "sample": _sampling_request(text, 50)}
    pending = _pending(ctx, dict(requests))
    if pending is not None:
        return pending
    form = await _ask_once(ctx, requests["form"], types.ElicitResult, "form")
    sampled = await _ask_once(ctx, requests["sample"], types.CreateMessageResult, "sample")
    record("inquiring", "consult", ctx, outcome={"form": form, "sample": sampled})
    return f"consult: {json.dumps(form, sort_keys=True)}"


@server.tool()
async def survey(first: str, second: str, ctx: Context) -> str | types.InputRequiredResult:
    """Ask the user ``first``, then ``second`` (two questions, one after the other)."""
    if _modern(ctx):
        pending = _pending(ctx, {"first": _form_request(first), "second": _form_request(second)})
        if pending is not None:
            return pending
    answers = [
        await _ask_once(ctx, _form_request(first), types.ElicitResult, "first"),
        await _ask_once(ctx, _form_request(second), types.ElicitResult, "second"),
    ]
    record("inquiring", "survey", ctx, outcome=answers)
    return f"survey: {json.dumps(answers, sort_keys=True)}"


@server.tool()
async def where(ctx: Context) -> str | types.InputRequiredResult:
    """List the client's roots."""
    pending = _pending(ctx, {"roots": types.ListRootsRequest()})
    if pending is not None:
        return pending
    outcome = await _ask_once(ctx, types.ListRootsRequest(), types.ListRootsResult, "roots")
    record("inquiring", "where", ctx, outcome=outcome)
    return f"where: {json.dumps(outcome, sort_keys=True)}"


if __name__ == "__main__":
    serve(server, __doc__ or "")
