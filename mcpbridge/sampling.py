"""Sampling: the model completions MCP servers ask for during a call, within the deployment's limits.

A server may ask its client for a model completion (``sampling/createMessage``). mcpbridge
answers through a LangChain chat model only for the servers `Sampling` names, within its
limits: tokens per answer, requests per tool call, prompt size, time, and a per-user
budget per day kept in the LangGraph store under `BUDGET_NAMESPACE`. Anything else is
declined with a reason the server receives.
"""

from __future__ import annotations

import datetime
import fnmatch
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import anyio
import mcp_types as types
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.store.base import BaseStore

from mcpbridge.errors import ConfigError, MCPBridgeError

__all__ = ["BUDGET_NAMESPACE", "Sampling", "reserved_budget"]

logger = logging.getLogger("mcpbridge")

BUDGET_NAMESPACE: Final = ("mcpbridge", "sampling")
"""The store namespace of the users' daily sampling budgets (``(*BUDGET_NAMESPACE, user)``, one item a day).

Users must not write it through the store API: the deployment's auth refuses any
namespace `reserved_budget` says reaches it (see ``examples/auth.py``).
"""


def reserved_budget(namespace: tuple[str, ...]) -> bool:
    """Whether a store request on ``namespace`` would reach `BUDGET_NAMESPACE` (or list it, as a prefix)."""
    size = min(len(namespace), len(BUDGET_NAMESPACE))
    return tuple(namespace[:size]) == BUDGET_NAMESPACE[:size]


@dataclass(frozen=True, slots=True)
class Sampling:
    """Which servers may sample a model, with which model, within which limits.

    Args:
        servers: Names (glob patterns) of the servers that may sample; others are declined.
        model: The model that answers: a chat model, or a ``provider:model`` string for
            ``init_chat_model``. ``None``: the agent's own model in `agent_factory` (declined
            elsewhere).
        max_tokens: The most tokens of one answer (a server asking for fewer gets fewer).
        daily_tokens: Tokens one user may spend a day (UTC), prompts and answers, counted in
            the run's store; ``None`` sets no budget. A run without a store is declined.
        max_per_call: Sampling requests one tool call may make.
        max_prompt_chars: The longest prompt (system prompt and messages) that is sent.
        timeout: Seconds the model may take for one answer.

    Example:
        ```python
        policy = InputPolicy(sampling=Sampling(servers=["summarizer"], daily_tokens=50_000))
        make_graph = agent_factory(servers, "anthropic:claude-sonnet-4-5", input_policy=policy)
        ```
    """

    servers: Sequence[str] = ()
    model: str | BaseChatModel | None = None
    max_tokens: int = 1024
    daily_tokens: int | None = 100_000
    max_per_call: int = 3
    max_prompt_chars: int = 20_000
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.servers, str):
            msg = f"Sampling(servers=...) takes a list of server names, not the string {self.servers!r}"
            raise ConfigError(msg, field="servers")
        for name in ("max_tokens", "max_prompt_chars", "timeout", "daily_tokens"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"Sampling({name}=...) must be positive, not {value!r}", field=name)
        if self.max_per_call < 0:
            msg = f"Sampling(max_per_call=...) must be 0 or more, not {self.max_per_call!r}"
            raise ConfigError(msg, field="max_per_call")

    def allows(self, server: str) -> bool:
        """Whether ``server`` may sample at all."""
        return any(fnmatch.fnmatchcase(server, pattern) for pattern in self.servers)


class SamplingDeclined(MCPBridgeError):
    """A sampling request the deployment does not answer; the message is the reason the server gets.

    Never raised to the graph: the server is told, and the tool's result notes it.
    """


def _estimate(chars: int) -> int:
    """Tokens of ``chars`` characters, when the model reports none (about four characters a token)."""
    return chars // 4 + 1


def _text(content: Any) -> str:
    blocks: list[Any] = cast("list[Any]", content) if isinstance(content, list) else [content]
    texts: list[str] = []
    for block in blocks:
        if not isinstance(block, types.TextContent):
            raise SamplingDeclined("sampling declined: only text messages are answered")
        texts.append(block.text)
    return "\n".join(texts)


def _messages(params: types.CreateMessageRequestParams) -> list[BaseMessage]:
    if params.tools:
        raise SamplingDeclined("sampling declined: tools in sampling requests are not answered")
    messages: list[BaseMessage] = []
    if params.system_prompt:
        messages.append(SystemMessage(params.system_prompt))
    for message in params.messages:
        text = _text(message.content)
        messages.append(HumanMessage(text) if message.role == "user" else AIMessage(text))
    return messages


def _budget_key(user: str | None) -> tuple[tuple[str, ...], str]:
    day = datetime.datetime.now(datetime.UTC).date().isoformat()
    return (*BUDGET_NAMESPACE, user or "-"), day


async def _spent(store: BaseStore, user: str | None) -> int:
    namespace, key = _budget_key(user)
    item = await store.aget(namespace, key)
    value: Any = None if item is None else item.value.get("tokens")
    return value if isinstance(value, int) else 0


async def _charge(store: BaseStore, user: str | None, tokens: int) -> None:
    namespace, key = _budget_key(user)
    spent = await _spent(store, user)
    await store.aput(namespace, key, {"tokens": max(0, spent + tokens)}, index=False)


async def sample(
    settings: Sampling,
    params: types.CreateMessageRequestParams,
    *,
    server: str,
    user: str | None,
    store: BaseStore | None,
    model: BaseChatModel | None,
    calls_so_far: int,
) -> types.CreateMessageResult:
    """Answer one sampling request of ``server`` for ``user``, or raise `SamplingDeclined` with why.

    The budget is charged before the model runs (the prompt and the most tokens the answer
    may take) and set to what the model used after, so concurrent requests cannot overspend
    it by more than one answer each.
    """
    if not settings.allows(server):
        raise SamplingDeclined(f"sampling declined: server {server!r} may not sample")
    if calls_so_far >= settings.max_per_call:
        raise SamplingDeclined(f"sampling declined: at most {settings.max_per_call} requests per tool call")
    if model is None:
        raise SamplingDeclined("sampling declined: the deployment names no model")
    messages = _messages(params)
    prompt_chars = sum(len(str(m.content)) for m in messages)
    if prompt_chars > settings.max_prompt_chars:
        raise SamplingDeclined(
            f"sampling declined: the prompt has {prompt_chars:,} characters, over the "
            f"{settings.max_prompt_chars:,} allowed"
        )
    max_tokens = max(1, min(params.max_tokens, settings.max_tokens))
    reserved = _estimate(prompt_chars) + max_tokens
    budget = settings.daily_tokens
    if budget is not None:
        if store is None:
            raise SamplingDeclined("sampling declined: no store to keep the user's daily budget in")
        if await _spent(store, user) + reserved > budget:
            raise SamplingDeclined("sampling declined: the user's daily sampling budget is spent")
        await _charge(store, user, reserved)
    used = reserved
    try:
        bound: Any = model.bind(max_tokens=max_tokens) if _takes_max_tokens(model) else model
        if params.stop_sequences:
            bound = bound.bind(stop=list(params.stop_sequences))
        with anyio.fail_after(settings.timeout):
            # No callbacks of the run: the server's prompt and the answer stay out of its streams.
            answer: Any = await bound.ainvoke(
                messages, config={"callbacks": [], "tags": ["mcpbridge:sampling"]}
            )
        text = answer.text if isinstance(answer, BaseMessage) else str(answer)
        usage: Any = getattr(answer, "usage_metadata", None)
        used = int(usage["total_tokens"]) if usage else _estimate(prompt_chars + len(text))
    except TimeoutError:
        raise SamplingDeclined(
            f"sampling declined: the model took longer than {settings.timeout:g} s"
        ) from None
    except Exception as exc:
        logger.warning("sampling for MCP server %r failed: %s", server, type(exc).__name__)
        raise SamplingDeclined("sampling declined: the model failed") from None
    finally:
        if budget is not None and store is not None:
            with anyio.CancelScope(shield=True):
                await _charge(store, user, used - reserved)
    name = getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=text),
        model=str(name),
        stop_reason="endTurn",
    )


def _takes_max_tokens(model: BaseChatModel) -> bool:
    return "max_tokens" in type(model).model_fields
