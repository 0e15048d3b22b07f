"""Sampling within the deployment's limits: servers, prompt size, requests per call, the daily budget."""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
import pytest
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from langgraph.store.memory import InMemoryStore

from mcpbridge.errors import ConfigError
from mcpbridge.interrupts import InputPolicy
from mcpbridge.sampling import BUDGET_NAMESPACE, Sampling, SamplingDeclined, reserved_budget, sample
from mcpbridge.testing import OfflineChatModel

pytestmark = pytest.mark.anyio


def params(text: str = "hello", *, max_tokens: int = 10, **extra: Any) -> types.CreateMessageRequestParams:
    message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=text))
    return types.CreateMessageRequestParams(messages=[message], max_tokens=max_tokens, **extra)


async def run(settings: Sampling, request: types.CreateMessageRequestParams | None = None, **kw: Any) -> Any:
    options: dict[str, Any] = {"server": "s", "user": "alice", "store": None, "model": OfflineChatModel()}
    options.update(kw)
    return await sample(settings, request or params(), calls_so_far=options.pop("calls", 0), **options)


async def test_an_allowed_server_gets_the_models_text() -> None:
    result = await run(Sampling(servers=["s*"], daily_tokens=None))
    assert result.role == "assistant" and result.model == "OfflineChatModel"
    assert isinstance(result.content, types.TextContent) and "offline model" in result.content.text


@pytest.mark.parametrize(
    ("settings", "request_", "options", "reason"),
    [
        (Sampling(servers=["other"]), None, {}, "may not sample"),
        (Sampling(servers=["s"], max_per_call=2), None, {"calls": 2}, "at most 2 requests per tool call"),
        (Sampling(servers=["s"]), None, {"model": None}, "names no model"),
        (Sampling(servers=["s"], max_prompt_chars=10), params("x" * 11), {}, "11 characters"),
        (Sampling(servers=["s"]), None, {}, "no store"),  # a budget, and no store to keep it
        (Sampling(servers=["s"], daily_tokens=None), params(tools=[]), {}, None),  # an empty list is no tools
    ],
)
async def test_requests_beyond_the_limits_are_declined_with_the_reason(
    settings: Sampling, request_: Any, options: dict[str, Any], reason: str | None
) -> None:
    if reason is None:
        await run(settings, request_, **options)
        return
    with pytest.raises(SamplingDeclined, match=reason):
        await run(settings, request_, **options)


async def test_only_text_is_sampled() -> None:
    image = types.ImageContent(type="image", data="AA==", mime_type="image/png")
    request = types.CreateMessageRequestParams(
        messages=[types.SamplingMessage(role="user", content=image)], max_tokens=5
    )
    with pytest.raises(SamplingDeclined, match="only text"):
        await run(Sampling(servers=["s"], daily_tokens=None), request)


async def test_the_daily_budget_is_kept_per_user_in_the_store() -> None:
    store = InMemoryStore()
    settings = Sampling(servers=["s"], daily_tokens=60, max_tokens=20)
    model = GenericFakeChatModel(
        messages=iter(
            [AIMessage("one", usage_metadata={"input_tokens": 20, "output_tokens": 5, "total_tokens": 25})]
        )
    )
    await run(settings, store=store, model=model)
    [item] = await store.asearch((*BUDGET_NAMESPACE, "alice"))
    assert item.value == {"tokens": 25}  # the reservation, set back to what the model reported
    with pytest.raises(SamplingDeclined, match="budget is spent"):
        await run(settings, params("z" * 80, max_tokens=20), store=store)  # 25 + 21 + 20 > 60
    await run(settings, store=store, user="bob")  # another user's budget is their own


async def test_a_failing_or_slow_model_declines_and_is_charged_its_reservation_only() -> None:
    class Broken(GenericFakeChatModel):
        async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> AIMessage:
            raise RuntimeError("provider down: key sk-secret")

    never = anyio.Event()

    class Slow(GenericFakeChatModel):
        async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> AIMessage:
            await never.wait()
            raise AssertionError("not reached")

    store = InMemoryStore()
    settings = Sampling(servers=["s"], timeout=0.01)
    with pytest.raises(SamplingDeclined, match="the model failed") as failed:
        await run(settings, store=store, model=Broken(messages=iter(())))
    assert "sk-secret" not in str(failed.value)
    with anyio.fail_after(10), pytest.raises(SamplingDeclined, match="longer than"):
        await run(settings, store=store, model=Slow(messages=iter(())))
    [item] = await store.asearch((*BUDGET_NAMESPACE, "alice"))
    assert 0 < item.value["tokens"] <= 2 * (2 + 10)


def test_the_budget_namespace_is_reserved() -> None:
    assert reserved_budget(("mcpbridge",))
    assert reserved_budget(("mcpbridge", "sampling", "alice"))
    assert not reserved_budget(("alice", "mcpbridge", "sampling"))
    assert not reserved_budget(("mcpbridge", "other"))


async def test_the_runs_callbacks_never_see_the_servers_prompt() -> None:
    seen: list[str] = []

    class Watch(AsyncCallbackHandler):
        async def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
            seen.append(str(messages))

    async def inside_a_run(_: Any) -> Any:
        return await run(Sampling(servers=["s"], daily_tokens=None), params("server prompt"))

    result = await RunnableLambda(inside_a_run).ainvoke(None, {"callbacks": [Watch()]})
    assert result.role == "assistant"
    assert seen == []


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"servers": "summarizer"}, "list of server names"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"daily_tokens": -1}, "daily_tokens"),
        ({"timeout": 0}, "timeout"),
        ({"max_per_call": -1}, "max_per_call"),
    ],
)
def test_bad_settings_are_refused_with_the_field(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Sampling(**options)
    with pytest.raises(ConfigError, match="timeout"):
        InputPolicy(timeout=0)
