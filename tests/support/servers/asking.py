"""A 2026-07-28 server whose tool asks for input over several rounds, recording each round.

``book`` asks for a name (a form), takes one state-only round, asks for a confirmation,
then answers. Every round is recorded (``round``, the ``requestState`` it got, the answers).
Run it with ``python -m tests.support.servers.asking --http --port 8765``.
"""

from __future__ import annotations

import json

import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer

from tests.support.servers.common import record, serve

server = MCPServer("asking", instructions="Asks for input over several rounds.")


def _form(message: str, field: str) -> types.ElicitRequest:
    schema = {"type": "object", "properties": {field: {"type": "string"}}, "required": [field]}
    return types.ElicitRequest(
        params=types.ElicitRequestFormParams(message=message, requested_schema=schema)  # pyright: ignore[reportArgumentType]
    )


@server.tool()
async def book(room: str, ctx: Context) -> str | types.InputRequiredResult:
    """Book ``room``: asks who books it and for a confirmation."""
    state = json.loads(ctx.request_state) if ctx.request_state else {"round": 0}
    answers = {
        k: v.model_dump(mode="json", exclude_none=True) for k, v in (ctx.input_responses or {}).items()
    }
    step = state["round"] + 1
    record("asking", "book", ctx, round=step, state=ctx.request_state, answers=answers)
    if step == 1:
        return types.InputRequiredResult(
            input_requests={"who": _form(f"Who books {room}?", "name")},
            request_state=json.dumps({"round": 1}),
        )
    if step == 2:
        who = answers.get("who", {})
        if who.get("action") != "accept":
            return f"not booked: {who.get('action', 'no answer')}"
        return types.InputRequiredResult(
            request_state=json.dumps({"round": 2, "name": who["content"]["name"]})
        )
    if step == 3:
        return types.InputRequiredResult(
            input_requests={"ok": _form(f"Book {room} for {state['name']}?", "confirm")},
            request_state=json.dumps({"round": 3, "name": state["name"]}),
        )
    ok = answers.get("ok", {})
    if ok.get("action") != "accept":
        return f"not booked: {ok.get('action', 'no answer')}"
    return f"booked {room} for {state['name']} ({ok['content']['confirm']})"


if __name__ == "__main__":
    serve(server, __doc__ or "")
