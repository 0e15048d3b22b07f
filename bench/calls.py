"""Tool calls over stdio and streamable HTTP: the raw ``mcp`` client, the bridge and two adapters.

Every peer calls ``echo(text="hi")`` on the bench server. The raw floor is
``mcp.Client.call_tool`` on one open session; the bridge and the adapters are
called through the same LangGraph ``ToolNode`` (`bench._toolnode`), and so is
``langchain.mcp`` (LangChain's own adapter, ``MCPAdapter`` kept open). Peers run
interleaved on the same machine state; stdio peers each start the same server
command, HTTP peers share one server process. The ``traced`` rows make the same
calls with a callback handler attached (``callbacks=[RecordingHandler()]``, the
same class in every peer's process), as any tracing does: the bridge's fast path
is off there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal

import anyio
import httpx2
import mcp_types as types
from langchain_core.callbacks import AsyncCallbackManager
from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.tools import BaseTool, tool
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from pydantic import Field

from bench import _langchain_mcp
from bench._adapters import http_connection, stdio_connection
from bench._env import ARGS, Env, http_server, stdio_server
from bench._hosting import side_by_side
from bench._processes import ROOT
from bench._stats import Block, Summary, interleave, round_ratios, timed
from bench._toolnode import THREAD_ID, RecordingHandler, ToolNodeCaller, text_of
from bench.results import Check, Metric, Ratio, ratio_of, skipped
from mcpbridge import Bridge, ServerConfig

Transport = Literal["stdio", "http"]
CONCURRENCY = 16
FLOOR = "mcp Client (floor)"
BRIDGE = "mcpbridge"
ADAPTERS = "langchain-mcp-adapters"
LANGCHAIN_MCP = "langchain.mcp"


@tool
async def noop(text: str) -> str:
    """Answer ``text`` (a local tool: what LangGraph's ToolNode costs by itself)."""
    return text


class ThinTool(BaseTool):
    """The thinnest MCP tool: the raw client's ``echo`` call, answered without LangChain's callbacks.

    A `ToolNode` call of it is the floor of any MCP tool called through LangGraph's
    node: the node runs each call in tasks of its own, which costs event-loop round
    trips once the call waits on the server. With callbacks in its config, it tells
    them of the call's start and end, as the least any tool that honours tracing does.
    """

    name: str = "echo"
    description: str = "Answer ``text``."
    client: Any = Field(exclude=True)

    def _run(self, *args: Any, **kwargs: Any) -> str:
        raise NotImplementedError

    async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> ToolMessage:
        """Call ``echo`` on the raw client."""
        callbacks = config.get("callbacks") if config else None
        if not callbacks:
            return await self._call(input)
        manager = AsyncCallbackManager.configure(callbacks)
        run = await manager.on_tool_start({"name": self.name}, str(input["args"]), inputs=input["args"])
        message = await self._call(input)
        await run.on_tool_end(message)
        return message

    async def _call(self, input: Any) -> ToolMessage:
        result = await self.client.call_tool("echo", input["args"])
        block = result.content[0] if result.content else None
        text = block.text if isinstance(block, types.TextContent) else ""
        return ToolMessage(text, tool_call_id=input["id"], name=self.name)


@asynccontextmanager
async def raw_client(env: Env, transport: Transport) -> AsyncGenerator[Client, None]:
    """The raw floor: an ``mcp`` v2 client on one session, opened as mcpbridge opens it."""
    config = stdio_server()
    if transport == "stdio":
        params = StdioServerParameters(command=config.command, args=list(config.args), cwd=ROOT)
        async with Client(stdio_client(params)) as client:
            yield client
    else:
        async with (
            httpx2.AsyncClient() as http,
            Client(streamable_http_client(env.http.url, http_client=http)) as client,
        ):
            yield client


def bridge_config(env: Env, transport: Transport) -> ServerConfig:
    """The bench server as the bridge reaches it."""
    return stdio_server() if transport == "stdio" else http_server(env.http)


def _metric(
    id: str, title: str, peer: str, transport: str | None, values: list[float], **extra: Any
) -> Metric:
    s = Summary.of(values)
    return Metric(
        id=id,
        title=title,
        peer=peer,
        unit="ms",
        transport=transport,
        median=s.median,
        p95=s.p95,
        n=s.n,
        **extra,
    )


def _throughput(id: str, title: str, peer: str, transport: str, values: list[float]) -> Metric:
    s = Summary.of(values)  # milliseconds per batch of CONCURRENCY calls
    return Metric(
        id=id,
        title=title,
        peer=peer,
        unit="calls/s",
        transport=transport,
        median=CONCURRENCY * 1000 / s.median,
        p95=CONCURRENCY * 1000 / s.p95,
        n=s.n,
        notes=f"{CONCURRENCY} concurrent calls per batch; median batch {s.median:.2f} ms, "
        f"p95 batch {s.p95:.2f} ms (the p95 column is the throughput of that slow batch)",
    )


def _check_identity(message_text: str) -> None:
    meta: dict[str, Any] = json.loads(message_text)
    seen = meta.get("dev.mcpbridge/thread_id")
    if seen != THREAD_ID:
        raise RuntimeError(f"the ToolRuntime's thread did not reach the server (saw {seen!r}): {meta}")


async def _check_raw(client: Client) -> None:
    result = await client.call_tool("echo", ARGS)
    block = result.content[0] if result.content else None
    if result.is_error or not isinstance(block, types.TextContent) or block.text != ARGS["text"]:
        raise RuntimeError(f"raw echo call failed: {result}")


def _gather(call: Callable[[], Coroutine[Any, Any, object]], count: int) -> Callable[[], Awaitable[None]]:
    async def batch() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(count):
                group.start_soon(call)

    return batch


async def tool_calls(env: Env) -> list[Metric]:
    """Single and concurrent tool calls of every peer, over stdio and over streamable HTTP."""
    metrics: list[Metric] = []
    for transport in ("stdio", "http"):
        metrics += await _calls_over(env, transport)
    return metrics


async def _calls_over(env: Env, transport: Transport) -> list[Metric]:
    sizes, driver = env.sizes, env.adapters
    t = transport
    async with AsyncExitStack() as stack:
        raw, bridge = await stack.enter_async_context(
            side_by_side(raw_client(env, transport), Bridge([bridge_config(env, transport)]))
        )
        caller = ToolNodeCaller(bridge.tools)
        await _check_raw(raw)
        _check_identity(text_of(await caller.call("meta", {})))
        echo: BaseTool = next(x for x in bridge.tools if x.name == "echo")
        direct_call = ToolCall(name="echo", args=ARGS, id="call_direct", type="tool_call")
        local = ToolNodeCaller([noop])
        thin = ToolNodeCaller([ThinTool(client=raw)])
        traced = ToolNodeCaller(bridge.tools, RecordingHandler())
        traced_thin = ToolNodeCaller([ThinTool(client=raw)], RecordingHandler())

        async def raw_call() -> None:
            await raw.call_tool("echo", ARGS)

        async def bridge_call() -> None:
            await caller.call("echo", ARGS)

        blocks: dict[str, Block] = {
            "raw": timed(raw_call),
            "bridge": timed(bridge_call),
            "bridge_tool": timed(lambda: echo.ainvoke(direct_call)),
            "noop": timed(lambda: local.call("noop", ARGS)),
            "thin": timed(lambda: thin.call("echo", ARGS)),
            "traced.bridge": timed(lambda: traced.call("echo", ARGS)),
            "traced.raw": timed(lambda: traced_thin.call("echo", ARGS)),
        }
        if driver is not None:
            connection = stdio_connection() if t == "stdio" else http_connection(env.http.url)
            await driver.open(f"persistent-{t}", "persistent", connection)
            await driver.open(f"default-{t}", "default", connection)
            blocks["adapters_persistent"] = driver.block(f"persistent-{t}")
            blocks["traced.adapters"] = driver.block(f"persistent-{t}.traced")
        if env.langchain_mcp is not None:
            lc_connection = (
                _langchain_mcp.stdio_connection()
                if t == "stdio"
                else _langchain_mcp.http_connection(env.http.url)
            )
            await env.langchain_mcp.open(f"persistent-{t}", "persistent", lc_connection)
            blocks["langchain_mcp"] = env.langchain_mcp.block(f"persistent-{t}")
            blocks["traced.langchain_mcp"] = env.langchain_mcp.block(f"persistent-{t}.traced")
        samples = await interleave(blocks, n=sizes.calls, rounds=sizes.call_rounds, warmup=sizes.warmup)

        floor = _metric(f"call.{t}.raw", f"Tool call, {t}", FLOOR, t, samples["raw"])
        bridged = _metric(f"call.{t}.bridge", f"Tool call, {t}", BRIDGE, t, samples["bridge"])
        bridged.ratio = ratio_of(bridged, floor)
        bridged.checks.append(_ratio_check("bridge / raw floor", bridged.ratio, "<=", 1.15))
        local_toolnode = _metric(
            f"call.{t}.local_toolnode",
            f"ToolNode call of a local no-op tool (LangGraph's own cost), beside the {t} calls",
            "langgraph",
            None,
            samples["noop"],
        )
        node_floor = _metric(
            f"call.{t}.toolnode_floor",
            f"Tool call, {t}, the thinnest MCP tool through ToolNode (the raw call, nothing else)",
            "langgraph + mcp Client",
            t,
            samples["thin"],
        )
        node_floor.ratio = ratio_of(node_floor, floor)
        node_floor.checks.append(_ratio_check("thinnest in ToolNode / raw floor", node_floor.ratio))
        node_floor.notes = (
            "the floor of any MCP tool called through LangGraph's ToolNode, "
            "with no validation, identity, progress or result handling"
        )
        own = None
        if bridged.median is not None and node_floor.median is not None:
            own = bridged.median - node_floor.median
        thin_spread = round_ratios(samples["bridge"], samples["thin"], sizes.call_rounds)
        bridged.checks += [
            _ratio_check("bridge / thinnest in ToolNode", ratio_of(bridged, node_floor), "<=", 1.05),
            *spread_checks("bridge / thinnest in ToolNode", thin_spread),
            Check("bridge - thinnest in ToolNode", own, "ms"),
        ]
        bridged.notes = (
            "ToolNode call with ToolRuntime (the run's thread checked to reach the server); "
            "the checks on the thinnest MCP tool are what the bridge adds beyond the MCP call in "
            "LangGraph's ToolNode; bridge / thinnest in ToolNode: " + spread_note(thin_spread)
        )
        direct = _metric(
            f"call.{t}.bridge_tool",
            f"Tool call, {t}, MCPTool.ainvoke without ToolNode",
            BRIDGE,
            t,
            samples["bridge_tool"],
        )
        direct.ratio = ratio_of(direct, floor)
        direct.checks.append(_ratio_check("MCPTool alone / raw floor", direct.ratio))
        metrics = [floor, bridged, direct, node_floor, local_toolnode]

        if driver is not None:
            persistent = _metric(
                f"call.{t}.adapters_persistent",
                f"Tool call, {t}, persistent session",
                ADAPTERS,
                t,
                samples["adapters_persistent"],
            )
            persistent.ratio = ratio_of(bridged, persistent)
            check = _ratio_check("bridge / adapters persistent", persistent.ratio, "<=", 1.0)
            persistent.checks.append(check)
            default_n = sizes.adapters_default_stdio if t == "stdio" else sizes.adapters_default_http
            default_samples = await interleave(
                {"default": driver.block(f"default-{t}")}, n=default_n, rounds=1, warmup=min(2, default_n)
            )
            default = _metric(
                f"call.{t}.adapters_default",
                f"Tool call, {t}, default (a new session per call)",
                ADAPTERS,
                t,
                default_samples["default"],
            )
            default.ratio = ratio_of(default, bridged)
            default.checks.append(_ratio_check("adapters default / bridge", default.ratio))
            default.notes = "MultiServerMCPClient(...).get_tools(): every call opens a session" + (
                " and starts a server process" if t == "stdio" else ""
            )
            metrics += [persistent, default]
        else:
            reason = env.adapters_skipped or "adapters peer not run"
            metrics += [
                skipped(
                    f"call.{t}.adapters_persistent",
                    f"Tool call, {t}, persistent session",
                    ADAPTERS,
                    "ms",
                    reason,
                ),
                skipped(f"call.{t}.adapters_default", f"Tool call, {t}, default", ADAPTERS, "ms", reason),
            ]

        if env.langchain_mcp is not None:
            lc = _metric(
                f"call.{t}.langchain_mcp",
                f"Tool call, {t}, MCPAdapter kept open",
                LANGCHAIN_MCP,
                t,
                samples["langchain_mcp"],
            )
            lc.ratio = ratio_of(bridged, lc)
            spread = round_ratios(samples["bridge"], samples["langchain_mcp"], sizes.call_rounds)
            lc.checks += [
                _ratio_check("bridge / langchain.mcp", lc.ratio, "<=", 0.8),
                *spread_checks("bridge / langchain.mcp", spread),
            ]
            lc.notes = "ToolNode call of langchain.mcp's tools; " + spread_note(spread)
            metrics.append(lc)
        else:
            reason = env.langchain_mcp_skipped or "langchain.mcp peer not run"
            title = f"Tool call, {t}, MCPAdapter kept open"
            metrics.append(skipped(f"call.{t}.langchain_mcp", title, LANGCHAIN_MCP, "ms", reason))

        metrics += _traced(env, t, samples, bridged)
        metrics += await _concurrent(env, transport, raw, caller)
        return metrics


def _traced(env: Env, t: Transport, samples: dict[str, list[float]], untraced: Metric) -> list[Metric]:
    """The rows with a callback handler attached, from the same interleaved rounds as the others."""
    title = f"Tool call, {t}, with a callback handler attached (tracing on)"
    rounds = env.sizes.call_rounds
    floor = _metric(
        f"call.{t}.traced.raw",
        title + ", the thinnest MCP tool",
        "langgraph + mcp Client",
        t,
        samples["traced.raw"],
    )
    floor.notes = "the thinnest MCP tool in ToolNode, telling the handler of each call's start and end"
    bridged = _metric(f"call.{t}.traced.bridge", title, BRIDGE, t, samples["traced.bridge"])
    bridged.ratio = ratio_of(bridged, floor)
    bridged.checks += [
        _ratio_check("traced bridge / traced thinnest", bridged.ratio),
        _ratio_check("traced bridge / untraced bridge", ratio_of(bridged, untraced)),
    ]
    bridged.notes = "the bridge's fast path is off when callbacks are attached"
    metrics = [floor, bridged]
    peers = (
        ("adapters", ADAPTERS, env.adapters, env.adapters_skipped, None),
        ("langchain_mcp", LANGCHAIN_MCP, env.langchain_mcp, env.langchain_mcp_skipped, 1.0),
    )
    for key, peer, driver, skip, limit in peers:
        id = f"call.{t}.traced.{key}"
        if driver is None:
            metrics.append(skipped(id, title, peer, "ms", skip or f"{peer} peer not run"))
            continue
        row = _metric(id, title, peer, t, samples[f"traced.{key}"])
        row.ratio = ratio_of(bridged, row)
        spread = round_ratios(samples["traced.bridge"], samples[f"traced.{key}"], rounds)
        name = f"traced bridge / traced {peer}"
        row.checks += [
            _ratio_check(name, row.ratio, "<=" if limit is not None else None, limit),
            *spread_checks(name, spread),
        ]
        row.notes = "ToolNode call with callbacks=[handler]; " + spread_note(spread)
        metrics.append(row)
    return metrics


def spread_checks(name: str, ratios: list[float]) -> list[Check]:
    """Report-only checks: the lowest and highest per-round ratio."""
    if not ratios:
        return []
    return [
        Check(f"{name}, lowest round", min(ratios), "x"),
        Check(f"{name}, highest round", max(ratios), "x"),
    ]


def spread_note(ratios: list[float]) -> str:
    """The spread of a ratio over its interleaved rounds, as text."""
    if not ratios:
        return "no rounds"
    return f"ratio per round {min(ratios):.2f}-{max(ratios):.2f} over {len(ratios)} interleaved rounds"


async def _concurrent(env: Env, transport: Transport, raw: Client, caller: ToolNodeCaller) -> list[Metric]:
    t, driver = transport, env.adapters

    async def one_raw() -> None:
        await raw.call_tool("echo", ARGS)

    async def bridge_batch() -> None:
        await caller.call_many("echo", [ARGS] * CONCURRENCY)

    local = ToolNodeCaller([noop])
    thin = ToolNodeCaller([ThinTool(client=raw)])

    async def local_batch() -> None:
        await local.call_many("noop", [ARGS] * CONCURRENCY)

    async def thin_batch() -> None:
        await thin.call_many("echo", [ARGS] * CONCURRENCY)

    blocks: dict[str, Block] = {
        "raw": timed(_gather(one_raw, CONCURRENCY)),
        "bridge": timed(bridge_batch),
        "thin": timed(thin_batch),
        "local": timed(local_batch),
    }
    if driver is not None:
        blocks["adapters"] = driver.batch_block(f"persistent-{t}", CONCURRENCY)
    if env.langchain_mcp is not None:
        blocks["langchain_mcp"] = env.langchain_mcp.batch_block(f"persistent-{t}", CONCURRENCY)
    samples = await interleave(blocks, n=env.sizes.batches, rounds=env.sizes.call_rounds, warmup=3)
    title = f"{CONCURRENCY} concurrent calls on one session, {t}"
    floor = _throughput(f"concurrent.{t}.raw", title, FLOOR, t, samples["raw"])
    bridged = _throughput(f"concurrent.{t}.bridge", title, BRIDGE, t, samples["bridge"])
    bridged.ratio = ratio_of(bridged, floor)
    bridged.checks.append(_ratio_check("throughput bridge / raw floor", bridged.ratio, ">=", 0.9))
    bridged.notes += "; one ToolNode call with 16 tool calls"
    node_floor = _throughput(
        f"concurrent.{t}.toolnode_floor",
        f"{CONCURRENCY} parallel calls of the thinnest MCP tool in one ToolNode (the raw calls alone)",
        "langgraph + mcp Client",
        t,
        samples["thin"],
    )
    node_floor.ratio = ratio_of(node_floor, floor)
    node_floor.checks.append(_ratio_check("throughput thinnest / raw floor", node_floor.ratio))
    bridged.checks.append(_ratio_check("throughput bridge / thinnest", ratio_of(bridged, node_floor)))
    local_toolnode = _throughput(
        f"concurrent.{t}.local_toolnode",
        f"{CONCURRENCY} parallel calls of a local no-op tool in one ToolNode (LangGraph alone), beside {t}",
        "langgraph",
        t,
        samples["local"],
    )
    metrics = [floor, bridged, node_floor, local_toolnode]
    if driver is not None:
        adapters = _throughput(f"concurrent.{t}.adapters_persistent", title, ADAPTERS, t, samples["adapters"])
        adapters.ratio = ratio_of(adapters, floor)
        adapters.checks.append(_ratio_check("throughput adapters / raw floor", adapters.ratio))
        metrics.append(adapters)
    if env.langchain_mcp is not None:
        lc = _throughput(f"concurrent.{t}.langchain_mcp", title, LANGCHAIN_MCP, t, samples["langchain_mcp"])
        lc.ratio = ratio_of(bridged, lc)
        # batch durations: langchain.mcp / bridge per round is throughput bridge / langchain.mcp
        spread = round_ratios(samples["langchain_mcp"], samples["bridge"], env.sizes.call_rounds)
        lc.checks += [
            _ratio_check("throughput bridge / langchain.mcp", lc.ratio),
            *spread_checks("throughput bridge / langchain.mcp", spread),
        ]
        lc.notes += "; " + spread_note(spread)
        metrics.append(lc)
    return metrics


def _ratio_check(
    name: str, ratio: Ratio | None, op: Literal["<=", ">="] | None = None, limit: float | None = None
) -> Check:
    return Check(name=name, value=None if ratio is None else ratio.value, unit="x", op=op, limit=limit)
