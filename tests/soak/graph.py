"""The soak run's Agent Server graph: the example echo server over stdio and HTTP, with short timeouts.

Named in ``tests/soak/langgraph.json`` as ``soak``. Every run connects to:

- ``local``: the example echo server over stdio, started for the run (tools ``local_*``,
  ``call_timeout`` 5 s). Its ``crash`` tool kills it mid-call; the next call reconnects
  once (the default ``reconnect=1``).
- ``remote``: the example echo server over streamable HTTP at ``MCPBRIDGE_DEMO_HTTP_URL``
  (tools ``remote_*``, ``call_timeout`` 5 s).
- ``patient``: the same HTTP server, ``slow`` only and ``call_timeout`` 60 s: a call that is
  still running when the client cancels the run.
- ``flaky``: another HTTP echo server at ``MCPBRIDGE_SOAK_FLAKY_URL``, which the soak driver
  kills and restarts (tools ``flaky_*``; optional, so a run that finds it down goes on
  without it).

and has one tool of its own, ``wait_gate``, which waits until the driver creates the file
``<MCPBRIDGE_SOAK_GATES>/<key>`` (so a run's next call waits for a restarted server).

The model is `StepwiseChatModel`: the offline model, which calls the tools a message
names, made to call them one at a time when the message says ``one by one``.
``MCPBRIDGE_RECORD`` and ``MCPBRIDGE_IDENTITY_SECRET`` reach the stdio server; calls carry
a signed identity when the secret is set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import anyio
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool

from examples.agent import local_server
from mcpbridge import HttpServer, IdentityMeta, IdentitySigner, StdioServer, agent_factory
from mcpbridge.testing import OfflineChatModel

HTTP_URL_ENV = "MCPBRIDGE_DEMO_HTTP_URL"
FLAKY_URL_ENV = "MCPBRIDGE_SOAK_FLAKY_URL"
GATES_ENV = "MCPBRIDGE_SOAK_GATES"
SECRET_ENV = "MCPBRIDGE_IDENTITY_SECRET"
CALL_TIMEOUT = 5.0
"""Seconds a ``local`` or ``remote`` call may take before it is cancelled and reported as a timeout.

Short, so timeouts are quick to provoke (``slow`` asks for 10 s), yet long enough that a good
call on a loaded machine (a run starting its stdio server takes seconds of CPU) never hits it.
"""
CONNECT_TIMEOUT = 30.0
"""Seconds a connect may take: generous, as stdio servers start slowly on a loaded machine."""
GATE_TIMEOUT = 30.0
"""Seconds ``wait_gate`` waits for its file before it fails."""
STEPWISE = "one by one"
"""Words in a user message that make `StepwiseChatModel` call its tools one at a time."""


class StepwiseChatModel(OfflineChatModel):
    """`OfflineChatModel`, calling the named tools one at a time when the message says ``one by one``.

    The calls and their arguments are those `OfflineChatModel` plans for the last user
    message; each is made after the previous one's result is in. Once all are done,
    the answer has one line per result (``<tool> returned|failed: <text>``). Without
    ``one by one`` it behaves exactly as `OfflineChatModel` (parallel calls).
    """

    def _step(self, messages: list[BaseMessage], planned: BaseMessage) -> AIMessage | None:
        """The next step of a stepwise plan, or ``None`` when the plan is not stepwise."""
        start = _last_human(messages)
        if start is None or STEPWISE not in messages[start].text:
            return None
        if not isinstance(planned, AIMessage) or not planned.tool_calls:
            return None
        done = sum(len(m.tool_calls) for m in messages[start + 1 :] if isinstance(m, AIMessage))
        if done < len(planned.tool_calls):
            return AIMessage(content="", tool_calls=[planned.tool_calls[done]])
        results = [m for m in messages[start + 1 :] if isinstance(m, ToolMessage)]
        return AIMessage(content="\n".join(_result_line(m) for m in results))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        start = _last_human(messages)
        upto = messages if start is None else messages[: start + 1]
        planned = super()._generate(upto, stop, None, **kwargs).generations[0].message
        step = self._step(messages, planned)
        if step is None:
            return super()._generate(messages, stop, run_manager, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=step)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        start = _last_human(messages)
        upto = messages if start is None else messages[: start + 1]
        planned = (await super()._agenerate(upto, stop, None, **kwargs)).generations[0].message
        step = self._step(messages, planned)
        if step is None:
            return await super()._agenerate(messages, stop, run_manager, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=step)])


def _last_human(messages: Sequence[BaseMessage]) -> int | None:
    return next((i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], HumanMessage)), None)


def _result_line(message: ToolMessage) -> str:
    verb = "failed" if message.status == "error" else "returned"
    return f"{message.name or 'the tool'} {verb}: {' '.join(message.text.split())}"


@tool
async def wait_gate(key: str) -> str:
    """Wait until the gate ``key`` is opened (its file appears in the gates directory), for 30 s at most."""
    gate = anyio.Path(os.environ[GATES_ENV]) / key
    with anyio.move_on_after(GATE_TIMEOUT):
        while not await gate.exists():  # noqa: ASYNC110 - another process creates the file: poll it
            await anyio.sleep(0.02)
        return f"gate {key} open"
    return f"gate {key} was not opened within {GATE_TIMEOUT:g}s"


def servers() -> list[StdioServer | HttpServer]:
    """The servers of every run (see the module docstring)."""
    http_url = os.environ[HTTP_URL_ENV]
    timeouts = {"connect_timeout": CONNECT_TIMEOUT, "call_timeout": CALL_TIMEOUT}
    return [
        local_server().model_copy(update=timeouts),
        HttpServer(
            name="remote",
            url=http_url,
            prefix="remote",
            connect_timeout=CONNECT_TIMEOUT,
            call_timeout=CALL_TIMEOUT,
        ),
        HttpServer(
            name="patient",
            url=http_url,
            prefix="patient",
            include_tools=("slow",),
            connect_timeout=CONNECT_TIMEOUT,
            call_timeout=60,
        ),
        HttpServer(
            name="flaky",
            url=os.environ[FLAKY_URL_ENV],
            prefix="flaky",
            required=False,
            connect_timeout=CONNECT_TIMEOUT,
            call_timeout=30,
        ),
    ]


def identity() -> IdentityMeta:
    """The run's identity on every call, signed when a secret is set (``patient`` signs for ``remote``)."""
    secret = os.environ.get(SECRET_ENV)
    signer = IdentitySigner(secret, audiences={"patient": "remote"}) if secret else None
    return IdentityMeta(signer=signer)


make_graph = agent_factory(
    servers(),
    StepwiseChatModel(),
    tools=[wait_gate],
    identity=identity(),
    system_prompt="Call the tools the user names.",
    pool=False,  # the soak counts each run's processes and descriptors, none left after the run
)
"""The factory for ``tests/soak/langgraph.json``."""
