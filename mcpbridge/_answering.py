"""Answering a server's requests during a call by the deployment's `InputPolicy`, without a human.

A 2025-11-25 server sends ``elicitation/create``, ``sampling/createMessage`` and
``roots/list`` while its ``tools/call`` is open; the SDK hands them to the session's
callbacks, which an `Answerer` provides, one per session. The session is one user's
(a pool lends it to that user's runs only), so the user, the store and the policy are
the lending run's (`Answerer.bind`). The wire does not say which call a request serves:
when the policy needs to know (a handler, sampling's per-call limit), the session keeps
its open calls (`Answerer.open`), and a request serves the calls open when it came.
Calls cost nothing more when the policy needs nothing: a counter read before and after.

A request declined is noted in the result of the calls open when it came. URL-mode
elicitations are never logged with their URL.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import anyio
import mcp_types as types
from langchain.chat_models import init_chat_model
from langchain_core.language_models import BaseChatModel
from langgraph.store.base import BaseStore
from mcp.client.session import ClientRequestContext

from mcpbridge._schema import ArgumentsValidator
from mcpbridge.config import ServerConfig
from mcpbridge.interrupts import ElicitationAnswer, ElicitationRequest, InputPolicy
from mcpbridge.sampling import Sampling, SamplingDeclined, sample

__all__ = ["DECLINED_REASON_META", "Answerer", "chat_model"]

logger = logging.getLogger("mcpbridge")

DECLINED_REASON_META: Final = "dev.mcpbridge/reason"
"""The ``_meta`` key of a 2026-era declined answer that says why it was declined."""
_NOTES: Final = 32
_NO_POLICY: Final = InputPolicy()


@functools.cache
def _named_model(spec: str) -> BaseChatModel:
    return init_chat_model(spec)


def chat_model(model: str | BaseChatModel | None) -> BaseChatModel | None:
    """The chat model a `Sampling` names (a ``provider:model`` string is resolved once)."""
    if isinstance(model, str):
        return _named_model(model)
    return model


class _OpenCall:
    __slots__ = ("samples", "tool")

    def __init__(self, tool: str) -> None:
        self.tool = tool
        self.samples = 0


@dataclass(frozen=True, slots=True)
class _Binding:
    policy: InputPolicy
    user: str | None
    store: BaseStore | None


class Answerer:
    """One session's answers to its server's requests during calls (the SDK's client callbacks)."""

    def __init__(self, config: ServerConfig, policy: InputPolicy | None) -> None:
        self._server = config.name
        self._roots = config.roots
        self._binding = _Binding(policy or _NO_POLICY, None, None)
        self.tracking = _tracks(self._binding.policy)
        self.hold = self._binding.policy.hold_calls  # seconds a call may be held for its user's answer
        self.holder: Callable[[], Any] | None = None  # the one held call open on the session, if any
        self.answered = 0  # requests answered so far: a call compares it before and after
        self._notes: deque[tuple[int, str]] = deque(maxlen=_NOTES)
        self._calls: dict[int, _OpenCall] = {}
        self._keys = itertools.count()
        self.samples = (
            policy is not None and policy.sampling is not None and policy.sampling.allows(config.name)
        )

    def bind(self, policy: InputPolicy | None, *, user: str | None, store: BaseStore | None) -> None:
        """The run the session is lent to: its policy, user and store answer the next requests."""
        binding = _Binding(policy or _NO_POLICY, user, store)
        self._binding = binding
        self.tracking = _tracks(binding.policy)
        self.hold = binding.policy.hold_calls

    def callbacks(self) -> dict[str, Any]:
        """The SDK ``Client``'s callbacks: elicitation always, sampling and roots when offered."""
        out: dict[str, Any] = {"elicitation_callback": self.on_elicitation}
        if self.samples:
            out["sampling_callback"] = self.on_sampling
        if self._roots is not None:
            out["list_roots_callback"] = self.on_roots
        return out

    # Open calls, kept only while the policy needs them (`tracking`).

    def open(self, tool: str) -> int:
        """A call of ``tool`` starts; give the key to `close` when it ends."""
        key = next(self._keys)
        self._calls[key] = _OpenCall(tool)
        return key

    def close(self, key: int) -> None:
        """The call of ``key`` ended."""
        self._calls.pop(key, None)

    def noted(self, result: types.CallToolResult, since: int) -> types.CallToolResult:
        """``result`` with a note for each request declined since the counter read ``since``."""
        notes = [text for seq, text in self._notes if seq > since]
        if not notes:
            return result
        added = [types.TextContent(type="text", text=text) for text in notes]
        return result.model_copy(update={"content": [*result.content, *added]})

    def _note(self, text: str) -> None:
        self._notes.append((self.answered, f"[mcpbridge: {text}]"))

    def _tool(self) -> str | None:
        tools = {call.tool for call in self._calls.values()}
        return tools.pop() if len(tools) == 1 else None

    # The SDK callbacks (2025-11-25 servers).

    async def on_elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        """Answer an elicitation by the policy's handler, or decline it; a held call's user answers it."""
        held = self.holder() if self.holder is not None else None
        if held is not None:  # the one call open is held: its user answers, through an interrupt
            return await held.ask(params)
        self.answered += 1
        answer = await self.elicit(params, tool=self._tool())
        if answer.action != "accept":
            mode = "URL" if isinstance(params, types.ElicitRequestURLParams) else "form"
            done = "declined" if answer.action == "decline" else "cancelled"
            self._note(f"the server asked for input ({mode}) during the call; it was {done}")
        return answer

    async def elicit(self, params: types.ElicitRequestParams, *, tool: str | None) -> types.ElicitResult:
        """The policy's answer to one elicitation; content not matching its schema is declined."""
        binding = self._binding
        handler = binding.policy.elicitation
        if handler is None:
            return types.ElicitResult(action="decline")
        url = isinstance(params, types.ElicitRequestURLParams)
        schema: Mapping[str, Any] | None = None
        if isinstance(params, types.ElicitRequestFormParams):
            requested: Any = params.requested_schema
            dump: Any = getattr(requested, "model_dump", None)
            schema = cast("Mapping[str, Any]", dump(by_alias=True, exclude_none=True) if dump else requested)
        request = ElicitationRequest(
            server=self._server,
            tool=tool,
            user=binding.user,
            mode="url" if url else "form",
            message=params.message,
            schema=schema,
            url=params.url if isinstance(params, types.ElicitRequestURLParams) else None,
        )
        try:
            with anyio.fail_after(binding.policy.timeout):
                answer: ElicitationAnswer = await handler(request)
        except TimeoutError:
            logger.warning("MCP server %r: the elicitation handler took too long; cancelled", self._server)
            return types.ElicitResult(action="cancel")
        except Exception as exc:  # a handler's failure declines, and is logged without the request
            logger.warning(
                "MCP server %r: the elicitation handler failed: %s", self._server, type(exc).__name__
            )
            return types.ElicitResult(action="decline")
        if answer.action != "accept":
            return types.ElicitResult(action=answer.action)
        content = dict(answer.content or {})
        if schema is not None and ArgumentsValidator(schema).errors(content):
            logger.warning(
                "MCP server %r: the elicitation handler's answer does not match the schema; declined",
                self._server,
            )
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="accept", content=content if not url else None)  # pyright: ignore[reportArgumentType]

    async def on_sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.ErrorData:
        """Answer a sampling request within the policy's limits, or refuse it with the reason."""
        self.answered += 1
        open_calls = list(self._calls.values())
        so_far = max((call.samples for call in open_calls), default=0)
        for call in open_calls:
            call.samples += 1
        try:
            return await self.sample(params, calls_so_far=so_far)
        except SamplingDeclined as exc:
            self._note(f"the server asked to sample a model during the call; {exc}")
            return types.ErrorData(code=types.INVALID_REQUEST, message=str(exc))

    async def sample(
        self, params: types.CreateMessageRequestParams, *, calls_so_far: int
    ) -> types.CreateMessageResult:
        """The policy's sampling answer, or `SamplingDeclined`."""
        binding = self._binding
        settings: Sampling | None = binding.policy.sampling
        if settings is None:
            raise SamplingDeclined("sampling declined: the deployment allows no sampling")
        try:
            model = chat_model(settings.model)
        except Exception as exc:
            logger.warning("sampling model %r cannot be resolved: %s", settings.model, exc)
            raise SamplingDeclined("sampling declined: the deployment's model is unavailable") from None
        return await sample(
            settings,
            params,
            server=self._server,
            user=binding.user,
            store=binding.store,
            model=model,
            calls_so_far=calls_so_far,
        )

    async def on_roots(self, context: ClientRequestContext) -> types.ListRootsResult:
        """The server's roots, as configured (templates filled for the user)."""
        self.answered += 1
        return self.roots()

    def roots(self) -> types.ListRootsResult:
        """The configured roots (none when the server has none)."""
        return types.ListRootsResult(
            roots=[types.Root(uri=cast(Any, root)) for root in self._roots or () if "{user." not in root]
        )


def _tracks(policy: InputPolicy) -> bool:
    return policy.elicitation is not None or policy.sampling is not None
