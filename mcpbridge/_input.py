"""A server's input requests (2026-07-28 ``input_required``) as LangGraph interrupts.

Each round with questions pauses the run with an `INPUT_REQUEST` interrupt. Its value
carries the exchange's bookkeeping (server, tool, call, round, the server's
``requestState``) sealed with an HMAC, so the interrupt kept in the checkpoint is where
a resumed run, in a new process with new connections, continues from: the earlier
rounds are never sent again. A sealed entry that does not verify is refused. Rounds
that carry only state continue at once, without a human; so do sampling and roots
requests, which the session's `Answerer` answers by the deployment's policy (their
answers are sealed with the round, so a resume sends them again rather than sample again).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, cast

import mcp_types as types
from langchain_core.runnables import RunnableConfig
from langgraph.types import interrupt

from mcpbridge._answering import DECLINED_REASON_META, Answerer
from mcpbridge._compat import pending_interrupt_values, resuming
from mcpbridge._schema import ArgumentsValidator
from mcpbridge.errors import ToolCallError, UsageError
from mcpbridge.interrupts import INPUT_REQUEST, INPUT_SECRET_ENV
from mcpbridge.sampling import SamplingDeclined

__all__ = ["InputExchange", "TamperedStateError", "describe", "ended_before_answer", "responses", "seal_key"]

logger = logging.getLogger("mcpbridge")

MAX_ROUNDS: Final = 10
"""The most rounds of one call's exchange (the SDK's default)."""
_SEALED: Final = "mcpbridge_state"
_PROCESS_KEY: Final = secrets.token_bytes(32)

_FIRST_ROUND: Final[tuple[None, None]] = (None, None)
"""The ``input_round`` of a call's first round: no answers, no state."""

Round = Callable[[types.InputResponses | None, str | None], Awaitable[Any]]


class TamperedStateError(UsageError):
    """The sealed state of an input exchange in the checkpoint does not verify."""


def seal_key(signer_key: Any | None) -> bytes:
    """The sealing key: from `INPUT_SECRET_ENV`, else the identity signer's key, else per process."""
    secret = os.environ.get(INPUT_SECRET_ENV)
    if secret:
        material = secret.encode()
    elif isinstance(signer_key, (str, bytes)):
        material = signer_key.encode() if isinstance(signer_key, str) else signer_key
    else:
        return _PROCESS_KEY
    return hmac.new(material, b"mcpbridge input state", hashlib.sha256).digest()


def _seal(key: bytes, entry: Mapping[str, Any]) -> str:
    body = base64.urlsafe_b64encode(
        json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    ).decode()
    mac = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _open(key: bytes, sealed: object) -> dict[str, Any]:
    if not isinstance(sealed, str) or "." not in sealed:
        raise TamperedStateError("the input request's state in the checkpoint is malformed; refused")
    body, mac = sealed.rsplit(".", 1)
    if not hmac.compare_digest(mac, hmac.new(key, body.encode(), hashlib.sha256).hexdigest()):
        raise TamperedStateError("the input request's state in the checkpoint was altered; refused")
    return json.loads(base64.urlsafe_b64decode(body.encode()))


def ended_before_answer(server: str, tool: str) -> ToolCallError:
    """A resume whose held call (2025-11-25, `InputPolicy.hold_calls`) is gone: its answer is not sent."""
    return ToolCallError(
        f"the call of tool {tool!r} that asked for input ended before the answer came "
        "(its session closed, the hold expired, or the run resumed in another process); "
        "the answer was not sent. Call the tool again.",
        server=server,
        tool=tool,
    )


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(by_alias=True, exclude_none=True) if callable(dump) else value


def describe(request: types.InputRequest) -> dict[str, Any]:
    """One request as the interrupt shows it: ``kind``, ``mode``, ``message``, ``schema``, ``url``."""
    if isinstance(request, types.ElicitRequest):
        params: Any = request.params
        mode = getattr(params, "mode", "form") or "form"
        return {
            "kind": "elicitation",
            "mode": mode,
            "message": params.message,
            "schema": _plain(getattr(params, "requested_schema", None)) if mode == "form" else None,
            "url": getattr(params, "url", None),
        }
    kind = "sampling" if isinstance(request, types.CreateMessageRequest) else "roots"
    return {"kind": kind, "mode": None, "message": None, "schema": None, "url": None}


def _mapping(value: object) -> Mapping[str, Any]:
    return cast("Mapping[str, Any]", value) if isinstance(value, Mapping) else {}


def responses(requests: Mapping[str, Any], resume: object) -> tuple[types.InputResponses, list[str]]:
    """The resume value as the server's ``inputResponses``, and the keys whose content was refused.

    A key not answered, or answered with an unknown action, is cancelled. An accepted form
    whose content does not match the request's schema is declined (as a policy's answer
    is, 2025-11-25); an accepted URL sends no content.
    """
    answers = _mapping(resume)
    out: types.InputResponses = {}
    refused: list[str] = []
    for key, request in requests.items():
        given = _mapping(answers.get(key))
        action = given.get("action")
        if action not in ("accept", "decline", "cancel"):
            action = "cancel"
        described = _mapping(request)
        content: Any = given.get("content") if action == "accept" else None
        kept = dict(cast("Mapping[str, Any]", content)) if isinstance(content, Mapping) else None
        if action == "accept" and described.get("mode") == "url":
            kept = None
        schema = _mapping(described.get("schema"))
        if action == "accept" and schema and ArgumentsValidator(schema).errors(kept or {}):
            action, kept = "decline", None
            refused.append(key)
        out[key] = types.ElicitResult(action=action, content=kept)
    return out, refused


def _restored(answered: Mapping[str, Any]) -> types.InputResponses:
    """The policy's sealed answers of a round, as the server's ``inputResponses``."""
    out: types.InputResponses = {}
    for key, value in answered.items():
        data = _mapping(value)
        if "action" in data:
            out[key] = types.ElicitResult.model_validate(data)
        elif "roots" in data:
            out[key] = types.ListRootsResult.model_validate(data)
        else:
            out[key] = types.CreateMessageResult.model_validate(data)
    return out


class InputExchange:
    """One tool call's exchange of input rounds with a server, kept in the checkpoint."""

    def __init__(
        self,
        *,
        key: bytes,
        server: str,
        tool: str,
        tool_call_id: str | None,
        answerer: Answerer | None = None,
    ) -> None:
        self._key = key
        self._who = {"server": server, "tool": tool, "tool_call_id": tool_call_id}
        self._answerer = answerer
        self._sampled = 0
        self._declined: list[str] = []  # why the policy declined this run's requests, for the result

    async def _answer_by_policy(self, requests: Mapping[str, types.InputRequest]) -> dict[str, Any]:
        """The sampling and roots requests of a round, answered by the policy (as JSON, to seal)."""
        answerer = self._answerer
        out: dict[str, Any] = {}
        if answerer is None:
            return out
        for key, request in requests.items():
            response: types.InputResponse
            if isinstance(request, types.CreateMessageRequest):
                try:
                    response = await answerer.sample(request.params, calls_so_far=self._sampled)
                except SamplingDeclined as exc:
                    self._declined.append(f"[mcpbridge: the server asked to sample a model; {exc}]")
                    response = types.ElicitResult(action="decline", _meta={DECLINED_REASON_META: str(exc)})  # pyright: ignore[reportCallIssue]
                self._sampled += 1
            elif isinstance(request, types.ListRootsRequest):
                response = answerer.roots()
            else:
                continue
            out[key] = response.model_dump(mode="json", by_alias=True, exclude_none=True)
        return out

    def _answered(self, requests: Mapping[str, Any], resume: object) -> types.InputResponses:
        """The user's answers of a round; content off a form's schema is declined, and noted in the result."""
        answered, refused = responses(requests, resume)
        for key in refused:
            logger.warning(
                "MCP server %r: the answer to input request %r does not match its schema; declined",
                self._who["server"],
                key,
            )
            self._declined.append(
                f"[mcpbridge: the answer to the server's form {key!r} did not match its schema; "
                "it was declined]"
            )
        return answered

    async def resumed(self, config: RunnableConfig | None) -> dict[str, Any] | None:
        """The verified entry of this call's pending interrupt, if the run resumes one."""
        for value in await pending_interrupt_values(config):
            found = _mapping(value)
            if found.get("type") != INPUT_REQUEST:
                continue
            if _SEALED not in found:  # a held call's question (2025-11-25): held nowhere this run can reach
                if (
                    found.get("server") == self._who["server"]
                    and found.get("tool_call_id") == self._who["tool_call_id"]
                ):
                    raise ended_before_answer(str(self._who["server"]), str(self._who["tool"]))
                continue
            entry = _open(self._key, found.get(_SEALED))
            if all(entry.get(k) == v for k, v in self._who.items()):
                return entry
        return None

    async def drive(self, first: Any, call: Round, entry: dict[str, Any] | None) -> Any:
        """Answer rounds until the server gives its result; a round with questions interrupts."""
        current = first
        rounds = 0 if entry is None else int(entry["round"])
        asked = 0 if entry is None else int(entry["asked"])
        if entry is not None:
            # The run resumes: the pending round's answers are the latest resume value, not a new call.
            self._sampled = int(entry.get("sampled", 0))
            answers: Any = None
            for _ in range(asked):
                answers = interrupt(None)  # earlier interrupts of this task return their resume values
            by_policy = _restored(_mapping(entry.get("auto")))
            current = await call({**by_policy, **self._answered(entry["requests"], answers)}, entry["state"])
        while isinstance(current, types.InputRequiredResult):
            rounds += 1
            if rounds > MAX_ROUNDS:
                raise TamperedStateError(f"the server asked for input more than {MAX_ROUNDS} rounds")
            if not current.input_requests:
                current = await call(None, current.request_state)
                continue
            auto = await self._answer_by_policy(current.input_requests)
            by_policy = _restored(auto)
            human = {k: r for k, r in current.input_requests.items() if k not in auto}
            if not human:  # the policy answered every request of the round
                current = await call(by_policy, current.request_state)
                continue
            requests = {k: describe(r) for k, r in human.items()}
            asked += 1
            entry = {
                **self._who,
                "round": rounds,
                "asked": asked,
                "state": current.request_state,
                "sampled": self._sampled,
            }
            sealed = _seal(self._key, {**entry, "requests": requests, "auto": auto})
            answers = interrupt({"type": INPUT_REQUEST, **self._who, "requests": requests, _SEALED: sealed})
            current = await call({**by_policy, **self._answered(requests, answers)}, current.request_state)
        if self._declined and isinstance(current, types.CallToolResult):
            notes = [types.TextContent(type="text", text=text) for text in self._declined]
            current = current.model_copy(update={"content": [*current.content, *notes]})
        return current


async def call_with_input(
    caller: Any,
    *,
    server: str,
    tool: str,
    mcp_name: str,
    signer: Any,
    arguments: Mapping[str, Any],
    runtime: Any,
    config: RunnableConfig | None,
    meta: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    progress: Any,
) -> types.CallToolResult:
    """Call ``mcp_name`` on ``caller``; the server's input requests interrupt the run, durably.

    Every round carries the same ``_meta`` (the run's identity) and headers.
    """
    run_config: Any = getattr(runtime, "config", None) or config
    hold: float | None = getattr(caller, "holds", None)
    if hold is not None:  # a 2025 server's call kept open while its user answers (a pooled session)
        tool_call_id: str | None = getattr(runtime, "tool_call_id", None)

        async def start(forward: Any) -> types.CallToolResult:
            return await caller.call_tool(
                mcp_name, arguments, meta=meta, headers=headers, progress_callback=forward
            )

        held = await caller.held.call(
            config=run_config, tool_call_id=tool_call_id, tool=tool, hold=hold, start=start, progress=progress
        )
        if held is not None:
            return held
    resumes = resuming(run_config)
    first: Any = None
    if not resumes:
        # Most calls: one round, answered; the exchange (and its key) is made only when asked.
        first = await caller.call_tool(
            mcp_name,
            arguments,
            meta=meta,
            headers=headers,
            progress_callback=progress,
            input_round=_FIRST_ROUND,
        )
        if not isinstance(first, types.InputRequiredResult):
            return first

    async def call(responses: types.InputResponses | None, state: str | None) -> Any:
        return await caller.call_tool(
            mcp_name,
            arguments,
            meta=meta,
            headers=headers,
            progress_callback=progress,
            input_round=(responses, state),
        )

    exchange = InputExchange(
        key=seal_key(getattr(signer, "key", None)),
        server=server,
        tool=tool,
        tool_call_id=getattr(runtime, "tool_call_id", None),
        answerer=getattr(caller, "answerer", None),
    )
    entry = await exchange.resumed(run_config) if resumes else None
    if first is None and entry is None:
        first = await call(None, None)
    return await exchange.drive(first, call, entry)
