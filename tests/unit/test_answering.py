"""A session's answers to its server's requests during a call: the policy, the notes, the fast path."""

from __future__ import annotations

import cProfile
import pstats
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.message import ServerMessageMetadata

from mcpbridge import Bridge, MemoryServer, SessionPool
from mcpbridge._answering import Answerer
from mcpbridge._connection import ServerConnection
from mcpbridge.interrupts import ElicitationAnswer, ElicitationRequest, InputPolicy
from mcpbridge.sampling import Sampling
from mcpbridge.testing import OfflineChatModel

pytestmark = pytest.mark.anyio

_CLIENT = types.Implementation(name="test", version="0")
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def form(message: str = "Who?") -> types.ElicitRequestFormParams:
    return types.ElicitRequestFormParams(message=message, requested_schema=SCHEMA)  # pyright: ignore[reportArgumentType]


def answerer(policy: InputPolicy | None = None, **options: Any) -> Answerer:
    return Answerer(MemoryServer(name="s", server=MCPServer("s"), **options), policy)


def policy_of(answer: ElicitationAnswer | BaseException) -> InputPolicy:
    async def handler(request: ElicitationRequest) -> ElicitationAnswer:
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return InputPolicy(elicitation=handler)


async def test_without_a_handler_elicitation_is_declined() -> None:
    assert await answerer().elicit(form(), tool="t") == types.ElicitResult(action="decline")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            ElicitationAnswer("accept", {"name": "Ada"}),
            types.ElicitResult(action="accept", content={"name": "Ada"}),
        ),
        (ElicitationAnswer("accept", {"name": 3}), types.ElicitResult(action="decline")),  # off the schema
        (ElicitationAnswer("accept"), types.ElicitResult(action="decline")),  # a required field missing
        (ElicitationAnswer("cancel", {"name": "x"}), types.ElicitResult(action="cancel")),
        (RuntimeError("boom"), types.ElicitResult(action="decline")),
    ],
)
async def test_the_handlers_answer_is_checked(
    answer: ElicitationAnswer | BaseException, expected: Any
) -> None:
    assert await answerer(policy_of(answer)).elicit(form(), tool="t") == expected


async def test_a_slow_handler_is_cancelled_at_the_policys_timeout() -> None:
    never = anyio.Event()

    async def handler(request: ElicitationRequest) -> ElicitationAnswer:
        await never.wait()
        raise AssertionError("not reached")

    policy = InputPolicy(elicitation=handler, timeout=0.01)
    with anyio.fail_after(10):
        assert await answerer(policy).elicit(form(), tool="t") == types.ElicitResult(action="cancel")


async def test_a_url_answer_sends_no_content() -> None:
    params = types.ElicitRequestURLParams(message="go", url="https://x.example/a?t=1", elicitation_id="e")
    result = await answerer(policy_of(ElicitationAnswer("accept", {"name": "x"}))).elicit(params, tool=None)
    assert result == types.ElicitResult(action="accept")


async def test_the_handler_sees_the_open_calls_tool_and_the_bound_user() -> None:
    seen: list[ElicitationRequest] = []

    async def handler(request: ElicitationRequest) -> ElicitationAnswer:
        seen.append(request)
        return ElicitationAnswer("decline")

    one = answerer()
    policy = InputPolicy(elicitation=handler)
    one.bind(policy, user="alice", store=None)
    assert one.tracking
    first = one.open("book")
    await one.on_elicitation(None, form())  # pyright: ignore[reportArgumentType]
    second = one.open("book")
    await one.on_elicitation(None, form())  # pyright: ignore[reportArgumentType]
    other = one.open("cancel")
    await one.on_elicitation(None, form())  # pyright: ignore[reportArgumentType]
    for key in (first, second, other):
        one.close(key)
    assert [(r.server, r.tool, r.user) for r in seen] == [("s", "book", "alice")] * 2 + [("s", None, "alice")]


async def test_a_declined_request_is_noted_in_the_results_of_calls_open_then() -> None:
    one = answerer()
    before = one.answered
    await one.on_elicitation(None, form())  # pyright: ignore[reportArgumentType]
    result = types.CallToolResult(content=[types.TextContent(type="text", text="done")])
    noted = one.noted(result, before)
    assert [b.text for b in noted.content if isinstance(b, types.TextContent)] == [
        "done",
        "[mcpbridge: the server asked for input (form) during the call; it was declined]",
    ]
    assert one.noted(result, one.answered) is result  # a later call: nothing to note


def test_the_session_offers_only_what_the_policy_and_configuration_answer() -> None:
    assert set(answerer().callbacks()) == {"elicitation_callback"}
    sampling = InputPolicy(sampling=Sampling(servers=["s"], model=OfflineChatModel()))
    assert set(answerer(sampling, roots=("file:///srv",)).callbacks()) == {
        "elicitation_callback",
        "sampling_callback",
        "list_roots_callback",
    }
    elsewhere = InputPolicy(sampling=Sampling(servers=["other"]))
    assert "sampling_callback" not in answerer(elsewhere).callbacks()


def _server() -> MCPServer:
    server = MCPServer("fast")

    @server.tool()
    async def thin(ctx: Context) -> str:
        """Answer at once."""
        return "ok"

    return server


async def _answering_calls(policy: InputPolicy | None) -> int:
    """Functions of `mcpbridge._answering` run by one call that gets no request from its server."""
    connection = ServerConnection(
        MemoryServer(name="fast", server=_server()), client_info=_CLIENT, log_level=None, policy=policy
    )
    profile = cProfile.Profile()
    async with anyio.create_task_group() as group:
        await group.start(connection.run)
        await connection.call_tool("thin", {})  # warm: the first call builds what later calls reuse
        profile.enable()
        await connection.call_tool("thin", {})
        profile.disable()
        connection.close()
    stats: Any = pstats.Stats(profile).stats  # pyright: ignore[reportAttributeAccessIssue]
    return sum(
        calls for (path, _, _), (_, calls, *_) in stats.items() if path.endswith("mcpbridge/_answering.py")
    )


async def test_a_call_without_requests_runs_nothing_of_the_answerer() -> None:
    assert await _answering_calls(None) == 0
    assert await _answering_calls(InputPolicy()) == 0
    # A policy that needs the call keeps it open for its requests: `open` (its record) and `close`.
    assert await _answering_calls(policy_of(ElicitationAnswer("decline"))) == 3


def _eliciting_server() -> MCPServer:
    server = MCPServer("asks")

    @server.tool()
    async def ask(ctx: Context) -> str:
        """Ask the client for a name."""
        request = types.ElicitRequest(params=form())
        related = ServerMessageMetadata(related_request_id=ctx.request_id)
        result = await ctx.session.send_request(request, types.ElicitResult, metadata=related)
        return result.action

    return server


async def test_a_pooled_session_answers_by_the_policy_and_user_of_the_run_it_is_lent_to() -> None:
    seen: list[tuple[str | None, str]] = []

    def handler(tag: str) -> InputPolicy:
        async def answer(request: ElicitationRequest) -> ElicitationAnswer:
            seen.append((request.user, tag))
            return ElicitationAnswer("decline")

        return InputPolicy(elicitation=answer)

    server = MemoryServer(name="asks", server=_eliciting_server(), protocol="legacy")
    call = {"type": "tool_call", "id": "c", "name": "ask", "args": {}}
    sessions: set[int] = set()
    message: Any = None
    async with SessionPool() as pool:
        for tag in ("first", "second", None):
            policy = None if tag is None else handler(tag)  # the last run: no handler, declined
            async with Bridge([server], pool=pool, user="alice", input_policy=policy) as bridge:
                [tool] = bridge.tools
                sessions.add(id(tool._wired().caller))  # pyright: ignore[reportPrivateUsage]
                message = await tool.ainvoke(call)
    assert len(sessions) == 1  # one pooled session served the three runs
    assert seen == [("alice", "first"), ("alice", "second")]
    assert "it was declined" in str(message.content)
