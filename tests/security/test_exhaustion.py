"""A server cannot exhaust the shared process: each hostile input meets a cap with a clear reason.

One hostile HTTP server (``examples.servers.hostile``, a real process on 127.0.0.1)
offers 100,000 tools to clients that ask for it, answers 20 MB of base64 images,
floods a call with progress notifications, and floods the log with forged lines at
the level ``critical``. For each, the test asserts the cap's reason or the bounded
outcome, and, where the abuse could starve others, that another user's run going on
at the same time finishes. Beside each cap, a positive control: with the cap raised
the same abuse goes through, so a miswired test cannot pass.

Figures (time, event-loop stall, memory) belong to ``python -m tests.security.exhaustion``;
nothing here measures time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.messages import ToolMessage
from langgraph.store.memory import InMemoryStore

from examples.servers._common import EVENTS_ENV
from examples.servers.hostile import FLOOD_TOOLS_HEADER, FORGED_LOG_LINE
from mcpbridge import Bridge, ConnectError, HttpServer, ServerFailure, UrlPolicy
from mcpbridge.scoping import RegisteredServers, UserContext, UserServers
from tests.integration.graphs import call, run_config, run_tool_calls, text_of, tool_calls, tool_graph
from tests.integration.support import HttpServerProcess, RecordFile, start_http_server

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FLOOD = 100_000
"""Tools the hostile server offers a client that asks for a flood."""
BOUND = 60.0
"""Seconds any one test may take before it fails (an abuse that stalls would reach it)."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServerProcess]:
    """The hostile server over streamable HTTP, recording every request it receives."""
    directory = tmp_path_factory.mktemp("hostile")
    server = start_http_server("hostile", directory, env={EVENTS_ENV: str(directory / "requests.jsonl")})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServerProcess]:
    """A well-behaved server, for the other user's run."""
    server = start_http_server("echo", tmp_path_factory.mktemp("echo"))
    yield server
    server.stop()


def requests_of(hostile: HttpServerProcess) -> RecordFile:
    """The hostile server's request record, from now on."""
    return RecordFile(Path(hostile.env[EVENTS_ENV])).view()


def flood(hostile: HttpServerProcess, name: str = "flood", tools: int = FLOOD, **options: Any) -> HttpServer:
    """The hostile server, offering ``tools`` generated tools to this connection."""
    return HttpServer(name=name, url=hostile.url, headers={FLOOD_TOOLS_HEADER: str(tools)}, **options)


async def other_users_run(echo: HttpServerProcess) -> str:
    """Another user's whole run: connect a well-behaved server, call a tool, close."""
    async with Bridge([HttpServer(name="echo", url=echo.url)], user="bob") as bridge:
        [add] = [tool for tool in bridge.tools if tool.name == "add"]
        message = await add.ainvoke(call("add", "bob-1", a=2, b=3), run_config(user="bob"))
    assert isinstance(message, ToolMessage) and message.status == "success", message
    return text_of(message)


async def concurrently(attack: Callable[[], Coroutine[Any, Any, None]], echo: HttpServerProcess) -> str:
    """Run ``attack`` and another user's run side by side; the other run's answer."""
    answers: list[str] = []

    async def other() -> None:
        answers.append(await other_users_run(echo))

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as group:
            group.start_soon(attack)
            group.start_soon(other)
    return answers[0]


# --- tool count -----------------------------------------------------------------------------------


async def test_a_server_offering_100000_tools_is_refused_while_another_run_finishes(
    hostile: HttpServerProcess, echo: HttpServerProcess
) -> None:
    requests = requests_of(hostile)
    reasons: list[str] = []

    async def attack() -> None:
        with pytest.raises(ConnectError) as raised:
            async with Bridge([flood(hostile)]):
                pytest.fail("a server offering 100,000 tools was connected")
        reasons.append(str(raised.value))

    assert await concurrently(attack, echo) == "5.0"
    [reason] = reasons
    assert "- flood: offers more than max_tools=1000 tools" in reason, reason
    # Listing stopped at the page that passed the cap: two pages of 1,000, not a hundred.
    listed = [e for e in requests.entries() if e.get("method") == "tools/list"]
    assert len(listed) == 2, listed

    # An optional server is skipped, with the same reason, and the run goes on.
    async with Bridge([flood(hostile, required=False)]) as bridge:
        assert bridge.tools == []
        assert "offers more than max_tools=1000 tools" in bridge.failures["flood"].reason


async def test_with_room_for_them_the_tools_are_bound(hostile: HttpServerProcess) -> None:
    """Positive control: the cap, not the listing, refused the flood."""
    with anyio.fail_after(BOUND):
        async with Bridge([flood(hostile, tools=1500, max_tools=1500)]) as bridge:
            assert len(bridge.tools) == 1500
        with pytest.raises(ConnectError, match="offers more than max_tools=1499 tools"):
            async with Bridge([flood(hostile, tools=1500, max_tools=1499)]):
                pytest.fail("1,500 tools were connected under max_tools=1499")


def policy(*servers: HttpServerProcess) -> UrlPolicy:
    return UrlPolicy(allow=["127.0.0.1", *(f"127.0.0.1:{s.port}" for s in servers)], require_https=False)


@dataclass
class Run:
    """What one user's run saw: its tools, and the servers it went without."""

    tools: list[str]
    failures: Mapping[str, ServerFailure]


async def registered_run(servers: UserServers, user: UserContext) -> Run:
    """Enter and leave one run of ``user``'s registered servers."""
    selection = await servers.select(user)
    bridge = Bridge(
        selection.servers, guests=selection.registered, refused=selection.refused, user=user.identity
    )
    async with bridge:
        return Run([tool.name for tool in bridge.tools], bridge.failures)


async def test_a_registered_server_gets_the_stricter_tool_cap_and_only_its_user_loses_it(
    hostile: HttpServerProcess, echo: HttpServerProcess
) -> None:
    store = InMemoryStore()
    # Mallory's server offers 100 tools: fine for a deployment's server, too many for a registered one.
    entry = {"url": hostile.url, "headers": {FLOOD_TOOLS_HEADER: "100"}}
    await store.aput(("mallory", "mcp_servers"), "flood", entry)
    await store.aput(("alice", "mcp_servers"), "notes", {"url": echo.url})
    mallory = UserContext(identity="mallory", store=store)
    alice = UserContext(identity="alice", store=store)
    # The deployment lets users set the header that asks this test server for its catalogue size.
    declared = ["Authorization", FLOOD_TOOLS_HEADER]
    servers = UserServers(
        [], registered=RegisteredServers(policy=policy(hostile, echo), user_headers=declared)
    )

    runs: dict[str, Run] = {}

    async def run(user: UserContext) -> None:
        runs[user.identity or ""] = await registered_run(servers, user)

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as group:
            group.start_soon(run, mallory)
            group.start_soon(run, alice)
    assert "offers more than max_tools=64 tools" in runs["mallory"].failures["flood"].reason
    assert runs["mallory"].tools == []
    assert runs["alice"].failures == {}
    assert "add" in runs["alice"].tools

    # Positive control: a deployment that allows registered servers more tools gets all 100.
    roomy = UserServers(
        [], registered=RegisteredServers(policy=policy(hostile), max_tools=128, user_headers=declared)
    )
    with anyio.fail_after(BOUND):
        roomy_run = await registered_run(roomy, mallory)
    assert roomy_run.failures == {}
    assert len(roomy_run.tools) == 100


# --- media ------------------------------------------------------------------------------------------


async def test_20_mb_of_images_never_reach_the_model_or_the_checkpoint(hostile: HttpServerProcess) -> None:
    config = run_config()
    servers = [
        HttpServer(name="capped", url=hostile.url, max_result_chars=50_000),
        HttpServer(name="open", url=hostile.url, max_result_chars=10**9),  # the positive control
    ]
    with anyio.fail_after(BOUND):
        async with Bridge(servers) as bridge:
            graph = tool_graph(bridge.tools)
            calls = [call("capped_images", "capped", megabytes=20), call("open_images", "open", megabytes=1)]
            answers = await run_tool_calls(graph, calls, config)
            state = await graph.aget_state(config)

    capped = answers["capped"]
    assert capped.status == "success"
    blocks: list[dict[str, Any]] = [b for b in capped.content if isinstance(b, dict)]
    assert [b["type"] for b in blocks] == ["text"] * 6
    assert sum(len(b["text"]) for b in blocks) < 50_000
    note = "[An image (image/png) (5,242,892 characters of base64) was left out.]"
    assert [b["text"] for b in blocks[1:5]] == [note] * 4
    assert "20,971,568 characters of media were left out" in blocks[5]["text"]
    assert "max_result_chars=50,000" in blocks[5]["text"]
    # What the checkpoint keeps for every later model call: the notes, not the images.
    [kept] = [m for m in state.values["messages"] if getattr(m, "tool_call_id", None) == "capped"]
    assert len(json.dumps(kept.content)) < 50_000

    # Cap raised: the same tool's images go through whole.
    opened = [b for b in answers["open"].content if isinstance(b, dict)]
    assert [b["type"] for b in opened] == ["text", "image", "image", "image", "image"]
    assert all(len(b["base64"]) == 262_156 for b in opened[1:])


# --- progress ---------------------------------------------------------------------------------------


async def test_a_progress_flood_is_coalesced_and_its_last_step_kept(
    hostile: HttpServerProcess, echo: HttpServerProcess
) -> None:
    steps = 10_000
    servers = [
        HttpServer(name="flood", url=hostile.url, call_timeout=BOUND),  # the default: 10 a second
        HttpServer(name="still", url=hostile.url, call_timeout=BOUND, max_progress_per_second=0.001),
        HttpServer(name="open", url=hostile.url, call_timeout=BOUND, max_progress_per_second=1e9),
    ]
    events: list[dict[str, Any]] = []

    async def attack() -> None:
        async with Bridge(servers) as bridge:
            graph = tool_graph(bridge.tools)
            calls = tool_calls(
                call("flood_progress_flood", "flood", steps=steps),
                call("still_progress_flood", "still", steps=1_000),
                call("open_progress_flood", "open", steps=1_000),
            )
            async for chunk in graph.astream(calls, run_config(), stream_mode="custom"):
                events.append(chunk)

    assert await concurrently(attack, echo) == "5.0"
    names = [server.name for server in servers]
    by_server = {name: [e["progress"] for e in events if e["server"] == name] for name in names}
    flooded = by_server["flood"]
    # Each event stands for the 10 a second the call ran; far fewer than the steps, and the last one kept.
    assert 1 < len(flooded) < steps // 10, len(flooded)
    assert flooded[0] == 1 and flooded[-1] == steps and flooded == sorted(flooded)
    # One event per 1000 s: the first step, and the last one held back until the call ended.
    assert by_server["still"] == [1, 1_000]
    # Cap off: every notification reaches the stream.
    assert by_server["open"] == [float(step) for step in range(1, 1_001)]


# --- server logs ------------------------------------------------------------------------------------


async def test_a_log_flood_cannot_forge_lines_raise_alarms_or_flood_the_log(
    hostile: HttpServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    messages = 2_000
    servers = [
        HttpServer(name="loud", url=hostile.url),  # max_log_level "warning" by default
        HttpServer(name="trusted", url=hostile.url, max_log_level="emergency"),  # the positive control
    ]
    with caplog.at_level(logging.DEBUG, logger="mcpbridge.server"), anyio.fail_after(BOUND):
        async with Bridge(servers) as bridge:
            graph = tool_graph(bridge.tools)
            calls = [
                call("loud_log_flood", "loud", messages=messages),
                call("trusted_log_flood", "trusted", messages=3),
            ]
            answers = await run_tool_calls(graph, calls, run_config())
    assert all(answer.status == "success" for answer in answers.values()), answers

    loud = [r for r in caplog.records if r.name == "mcpbridge.server.loud"]
    forged = [r for r in loud if "credentials of every user exported" in r.getMessage()]
    assert forged, "the server's log messages did not arrive"
    # One record per message, on one line: the newline shows escaped, no line starts with a forged prefix.
    escaped = FORGED_LOG_LINE.replace("\n", "\\n")
    assert all("\n" not in r.getMessage() for r in loud)
    assert all(r.getMessage().startswith(f"[auth\\nmcpbridge] {escaped} #") for r in forged)
    # "critical" from the server is logged at the deployment's cap.
    assert {r.levelno for r in loud} == {logging.WARNING}
    # The burst, then the steady rate; the rest is counted in a summary line.
    assert len(forged) < messages // 2, len(forged)
    dropped = [r.getMessage() for r in loud if r.getMessage().startswith("dropped ")]
    assert dropped, [r.getMessage() for r in loud][-3:]
    total_dropped = sum(int(line.split()[1]) for line in dropped)
    assert len(forged) + total_dropped <= messages

    # The level cap off: the trusted server's "critical" stays critical (and its text still escaped).
    trusted = [r for r in caplog.records if r.name == "mcpbridge.server.trusted"]
    assert len(trusted) == 3
    assert {r.levelno for r in trusted} == {logging.CRITICAL}
    assert all("\n" not in r.getMessage() for r in trusted)
