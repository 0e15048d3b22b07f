"""A 2025-11-25 server's call kept open across an interrupt, while its user answers (best effort).

A 2025 server asks (``elicitation/create``) while its ``tools/call`` is open. With
``InputPolicy(hold_calls=...)`` and a pooled session, the call runs in a task of the
session (`HeldCalls.start`), not of the tool, registered under the run's thread and
tool call. An elicitation that comes while that call is the only one open on the
session is kept as the call's next question; the tool raises an `INPUT_REQUEST`
interrupt for it and the run ends, the call still open. The resumed run's tool finds
the call again, replays the interrupts of the questions asked so far (LangGraph gives
back their resume values by index), delivers the new answer, and waits for the next
question or the result. An answer not given within the hold cancels the request, and
the call is forgotten: a resume then fails with a message, never a new call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

import anyio
import mcp_types as types
from langgraph.types import interrupt

from mcpbridge._compat import pending_interrupt_values, resuming
from mcpbridge._input import describe, ended_before_answer, responses
from mcpbridge.errors import ToolCallError
from mcpbridge.interrupts import INPUT_REQUEST

__all__ = ["HeldCall", "HeldCalls"]

logger = logging.getLogger("mcpbridge")

KEY: Final = "elicitation"
"""The request key of a held call's question in the interrupt (one question per interrupt)."""

Progress = Callable[[float, float | None, str | None], Awaitable[None]]
Start = Callable[[Progress], Awaitable[types.CallToolResult]]


class _Question:
    __slots__ = ("answer", "answered", "described")

    def __init__(self, described: dict[str, Any]) -> None:
        self.described = described
        self.answered = anyio.Event()
        self.answer: types.ElicitResult | None = None


class HeldCall:
    """One call kept open on its session: the questions its server asked, and its outcome."""

    def __init__(self, key: tuple[str, str], who: dict[str, Any], hold: float) -> None:
        self.key = key
        self.who = who  # server, tool, tool_call_id: the interrupt's header
        self.hold = hold
        self.questions: list[_Question] = []
        self.delivered = 0  # questions answered by the user so far
        self.notes: list[str] = []
        self.expired = False
        self.done = False
        self.result: types.CallToolResult | None = None
        self.error: Exception | None = None
        self.attached = False  # a run's tool waits on the call
        self.progress: Progress | None = None  # the attached run's progress writer
        self.scope = anyio.CancelScope()
        self._news = anyio.Event()

    def payload(self, index: int) -> dict[str, Any]:
        """The interrupt of question ``index``."""
        return {"type": INPUT_REQUEST, **self.who, "requests": {KEY: self.questions[index].described}}

    def signal(self) -> None:
        news, self._news = self._news, anyio.Event()
        news.set()

    async def next(self, seen: int) -> bool:
        """Wait for a question after the first ``seen``; False when the call ended instead."""
        while len(self.questions) <= seen and not self.done:
            await self._news.wait()
        return len(self.questions) > seen and not self.done

    async def ask(self, params: types.ElicitRequestParams) -> types.ElicitResult:
        """The server asks: keep the question for the user, and wait for the answer within the hold."""
        if self.expired:
            return types.ElicitResult(action="cancel")
        question = _Question(describe(types.ElicitRequest(params=params)))
        self.questions.append(question)
        self.signal()
        with anyio.move_on_after(self.hold):
            await question.answered.wait()
        if question.answer is not None:
            return question.answer
        self.expired = True  # no answer within the hold: a resume finds no call
        self.signal()
        logger.info(
            "MCP server %r: no answer within hold_calls; the request was cancelled", self.who["server"]
        )
        return types.ElicitResult(action="cancel")

    def deliver(self, value: object) -> None:
        """The user's answer to the next unanswered question (checked against its schema)."""
        question = self.questions[self.delivered]
        answered, refused = responses({KEY: question.described}, value)
        if refused:
            logger.warning(
                "MCP server %r: the answer to the held call's question does not match its schema; declined",
                self.who["server"],
            )
            self.notes.append(
                "[mcpbridge: the answer to the server's form did not match its schema; it was declined]"
            )
        answer = answered[KEY]
        assert isinstance(answer, types.ElicitResult)
        question.answer = answer
        question.answered.set()
        self.delivered += 1


class HeldCalls:
    """The calls one session holds open, by (thread, tool call)."""

    def __init__(
        self, server: str, spawn: Callable[[Callable[[], Coroutine[Any, Any, None]]], Awaitable[object]]
    ) -> None:
        self.server = server
        self._spawn = spawn  # starts a task that lives as long as the session
        self.calls: dict[tuple[str, str], HeldCall] = {}
        self.running: list[HeldCall] = []  # held calls whose ``tools/call`` is open

    async def _run(self, held: HeldCall, start: Start) -> None:
        async def forward(progress: float, total: float | None, message: str | None) -> None:
            receive = held.progress
            if receive is not None:
                await receive(progress, total, message)

        self.running.append(held)
        try:
            with held.scope:
                held.result = await start(forward)
        except Exception as exc:  # the attached tool reports it
            held.error = exc
        finally:
            self.running.remove(held)
            held.done = True
            if not held.attached and self.calls.get(held.key) is held:
                del self.calls[held.key]  # nobody waits for it: a resume finds no call
            held.signal()

    async def call(
        self,
        *,
        config: Any,
        tool_call_id: str | None,
        tool: str,
        hold: float,
        start: Start,
        progress: Progress | None,
    ) -> types.CallToolResult | None:
        """Call (or, on a resume, continue) the run's held call; a question interrupts the run.

        ``None`` when the call cannot be held (no thread or tool call id): call it as usual.
        When the run resumes an interrupt of this call, the call must still be held here;
        else the tool fails, and the server is not called again.
        """
        conf: Any = config.get("configurable") if config else None
        thread: Any = conf.get("thread_id") if conf else None
        if thread is None or tool_call_id is None:
            return None
        key = (str(thread), tool_call_id)
        who: dict[str, Any] = {"server": self.server, "tool": tool, "tool_call_id": tool_call_id}
        held = self.calls.get(key)
        if held is None or held.expired:
            if resuming(config) and _asked(await pending_interrupt_values(config), who):
                raise ended_before_answer(self.server, tool)
            held = fresh = HeldCall(key, who, hold)
            await self._spawn(lambda: self._run(fresh, start))
            self.calls[key] = held
        held.attached = True
        held.progress = progress
        try:
            # The questions asked so far: their resume values come back by index; a new one is delivered.
            for index in range(len(held.questions)):
                value = interrupt(held.payload(index))
                if index == held.delivered:
                    held.deliver(value)
            while await held.next(len(held.questions)):
                index = len(held.questions) - 1
                value = interrupt(held.payload(index))
                if index == held.delivered:
                    held.deliver(value)
        except anyio.get_cancelled_exc_class():
            held.scope.cancel()  # the run was cancelled, not paused: so is its call
            self._forget(held)
            raise
        except BaseException:  # the interrupt: the run ends, the call stays open
            held.attached = False
            held.progress = None
            if held.done:
                self._forget(held)
            raise
        self._forget(held)
        if held.error is not None:
            raise held.error
        result = held.result
        if result is None:
            raise ToolCallError(
                f"the held call of tool {tool!r} ended without a result (its session closed)",
                server=self.server,
                tool=tool,
            )
        if held.notes:
            notes = [types.TextContent(type="text", text=text) for text in held.notes]
            result = result.model_copy(update={"content": [*result.content, *notes]})
        return result

    def _forget(self, held: HeldCall) -> None:
        if self.calls.get(held.key) is held:
            del self.calls[held.key]


def _asked(values: list[Any], who: dict[str, Any]) -> bool:
    """Whether one of a task's pending interrupt ``values`` is a question of this call."""
    for value in values:
        if not isinstance(value, dict):
            continue
        found: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
        if found.get("type") == INPUT_REQUEST and all(
            found.get(k) == v for k, v in who.items() if k != "tool"
        ):
            return True
    return False
