"""A server's input requests through the real Agent Server, resumed with ``langgraph-sdk``.

One ``langgraph dev --no-reload`` for the module serves the ``inquiring`` graph of
`tests.e2e.input_graphs` (behind the example's bearer-token auth), whose runs reach the
inquiring example server over streamable HTTP in both protocol eras. A 2026-07-28
elicitation pauses the run with the documented interrupt; the test resumes it as a user
would. What the MCP server got is read from its own records: one line per finished call
with the answers it received (``MCPBRIDGE_RECORD``), and one line per ``tools/call``
round with the ``requestState`` it continues (``MCPBRIDGE_RECORD_EVENTS``), so a round
sent twice would show. Both files outlive the server's restarts.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from mcpbridge.interrupts import INPUT_REQUEST, INPUT_SECRET_ENV
from tests.e2e import input_graphs
from tests.e2e.agent_server import CLIENT_TIMEOUT, CONFIG, TOKENS, message_text
from tests.integration.support import HttpServerProcess, RecordFile, start_http_server
from tests.support.processes import (
    HOST,
    SERVER_ENV,
    agent_server_command,
    free_port,
    http_ok,
    portable_config,
    stop,
    tail,
    wait_until,
)
from tests.support.servers.common import EVENTS_ENV
from tests.support.servers.inquiring import SCHEMA, SECRET_URL, STATE_KEY_ENV

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(240)]

GRAPH = "inquiring"
HOLDING = "holding"
RUN_TIMEOUT = 60.0
START_TIMEOUT = 90.0
MODERN, LEGACY = "2026-07-28", "2025-11-25"


@dataclass
class Inquiry:
    """The Agent Server serving the ``inquiring`` graph, the MCP server it reaches, and their records."""

    workdir: Path
    config: Path
    port: int
    env: dict[str, str]
    mcp: HttpServerProcess
    events: RecordFile
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def calls(self) -> RecordFile:
        return self.mcp.records

    def client(self) -> LangGraphClient:
        headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
        return get_client(url=self.url, api_key=None, headers=headers, timeout=CLIENT_TIMEOUT)

    def failure_sections(self) -> list[tuple[str, str]]:
        """The servers' logs, for the report of a failed test."""
        return [
            ("Agent Server log (tail)", tail(self.log, 120)),
            ("inquiring MCP server log (tail)", self.mcp.log_tail()),
        ]

    def start(self) -> None:
        """Start ``langgraph dev`` in the work directory, where it keeps its threads; wait until it serves."""
        assert self.process is None or self.process.poll() is not None, "the Agent Server is running"
        command = agent_server_command(self.port, self.config)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, cwd=self.workdir, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        wait_until(
            lambda: http_ok(f"{self.url}/ok"), self.process, self.log, "the Agent Server", START_TIMEOUT
        )

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, timeout=30)

    def restart_both(self) -> None:
        """Stop the Agent Server (it writes its threads to disk) and the MCP server; start both again."""
        self.stop()
        self.mcp.stop()
        self.mcp.restart()
        self.start()


@pytest.fixture(scope="module")
def inquiry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inquiry]:
    workdir = tmp_path_factory.mktemp("input-requests")
    config = portable_config(CONFIG, workdir)
    data: dict[str, Any] = json.loads(config.read_text(encoding="utf-8"))
    graphs = Path(input_graphs.__file__).resolve()
    data["graphs"] = {GRAPH: f"{graphs}:{GRAPH}", HOLDING: f"{graphs}:{HOLDING}"}
    data.pop("http", None)  # the OAuth routes are not needed here
    config.write_text(json.dumps(data, indent=2), encoding="utf-8")
    events = RecordFile(workdir / "events.jsonl")
    with ExitStack() as stack:
        # The server keeps its requestState key across its restart, as a deployed one must.
        keys = {
            EVENTS_ENV: str(events.path),
            STATE_KEY_ENV: "inquiring-e2e-request-state-key-32-bytes-or-more",
        }
        mcp = start_http_server("inquiring", workdir, env=keys)
        stack.callback(mcp.stop)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCPBRIDGE_")}
        env = {
            **SERVER_ENV,
            **env,
            input_graphs.URL_ENV: mcp.url,
            INPUT_SECRET_ENV: "input-requests-e2e-sealing-secret",  # the same key after a restart
            "PYTHONUNBUFFERED": "1",
        }
        server = Inquiry(workdir, config, free_port(), env, mcp, events, workdir / "agent-server.log")
        stack.callback(server.stop)
        server.start()
        yield server


@pytest.fixture
async def alice(inquiry: Inquiry) -> Any:
    async with inquiry.client() as client:
        yield client


def _ask(content: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}]}


async def _wait(client: LangGraphClient, thread_id: str, graph: str = GRAPH, **kwargs: Any) -> dict[str, Any]:
    with anyio.fail_after(RUN_TIMEOUT):
        state: Any = await client.runs.wait(thread_id, graph, **kwargs)
    assert isinstance(state, dict), state
    return state


def _resume(answers: dict[str, Any]) -> dict[str, Any]:
    return {"resume": answers}


def _rounds(events: RecordFile, tool: str) -> list[tuple[str | None, list[str]]]:
    """The ``tools/call`` rounds of ``tool``: the state each continued, and the keys it answered."""
    return [(e["state"], e["answers"]) for e in events.entries(tool=tool)]


async def _interrupted(client: LangGraphClient, thread_id: str, content: str) -> dict[str, Any]:
    """Run ``content`` on the thread; return the one interrupt's value (and check the thread waits)."""
    paused = await _wait(client, thread_id, input=_ask(content))
    [interrupt] = paused["__interrupt__"]
    value: dict[str, Any] = interrupt["value"]
    [ai] = [m for m in paused["messages"] if m["type"] == "ai"]
    [tool_call] = ai["tool_calls"]
    assert value["type"] == INPUT_REQUEST
    assert (value["server"], value["tool"], value["tool_call_id"]) == (
        "modern",
        tool_call["name"],
        tool_call["id"],
    )
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    return value


# --- 2026-07-28: interrupts ---------------------------------------------------------------------


async def test_a_form_interrupts_the_run_and_the_accepted_answer_reaches_the_server_once(
    inquiry: Inquiry, alice: Any
) -> None:
    calls, events = inquiry.calls.view(), inquiry.events.view()
    thread_id = (await alice.threads.create())["thread_id"]
    value = await _interrupted(alice, thread_id, 'call modern_ask {"question": "Who books the blue room?"}')
    assert value["requests"] == {
        "form": {
            "kind": "elicitation",
            "mode": "form",
            "message": "Who books the blue room?",
            "schema": SCHEMA,
            "url": None,
        }
    }
    assert isinstance(value["mcpbridge_state"], str)
    assert calls.entries() == []  # the call waits: the server has not finished it

    answer = {"action": "accept", "content": {"name": "Ada", "seats": 2}}
    done = await _wait(alice, thread_id, command=_resume({"form": answer}))

    assert message_text(done["messages"]) == f"modern_ask returned: ask: {json.dumps(answer, sort_keys=True)}"
    [entry] = calls.entries(tool="ask")
    assert entry["outcome"] == answer
    assert entry["protocol"] == MODERN
    assert entry["meta"]["dev.mcpbridge/user_id"] == "alice"
    assert entry["meta"]["dev.mcpbridge/thread_id"] == thread_id
    assert _rounds(events, "ask") == [(None, []), ("asked", ["form"])]  # each round once
    assert (await alice.threads.get(thread_id))["status"] == "idle"


@pytest.mark.parametrize(("tool", "action"), [("visit", "accept"), ("visit", "decline"), ("ask", "cancel")])
async def test_a_url_or_form_answered_accept_decline_or_cancel_reaches_the_server(
    inquiry: Inquiry, alice: Any, tool: str, action: str
) -> None:
    calls, events = inquiry.calls.view(), inquiry.events.view()
    thread_id = (await alice.threads.create())["thread_id"]
    arguments = "{}" if tool == "visit" else '{"question": "Who?"}'
    value = await _interrupted(alice, thread_id, f"call modern_{tool} {arguments}")
    [(key, request)] = value["requests"].items()
    if tool == "visit":
        assert (key, request["mode"], request["url"]) == ("url", "url", SECRET_URL)
        assert request["message"] == "Sign in to continue"
    else:
        assert (key, request["mode"], request["url"]) == ("form", "form", None)

    # An accepted URL sends no content, even if some is given.
    answer = {"action": action, **({"content": {"name": "Ada"}} if action == "accept" else {})}
    done = await _wait(alice, thread_id, command=_resume({key: answer}))

    [entry] = calls.entries(tool=tool)
    assert entry["outcome"] == {"action": action}
    assert message_text(done["messages"]) == f'modern_{tool} returned: {tool}: {{"action": "{action}"}}'
    assert _rounds(events, tool) == [(None, []), ("asked", [key])]


# --- 2025-11-25: the deployment's policy answers ------------------------------------------------


async def _tool_results(client: LangGraphClient, content: str) -> dict[str, str]:
    """Run ``content`` on a new thread to its end (no interrupt); the text of each tool's result."""
    thread_id = (await client.threads.create())["thread_id"]
    done = await _wait(client, thread_id, input=_ask(content))
    assert "__interrupt__" not in done
    assert (await client.threads.get(thread_id))["status"] == "idle"
    return {m["name"]: message_text([m]) for m in done["messages"] if m["type"] == "tool"}


async def test_a_2025_server_is_answered_by_the_policy_and_both_eras_sample_without_interrupting(
    inquiry: Inquiry, alice: Any
) -> None:
    calls = inquiry.calls.view()
    text = '{"text": "MCP is a protocol."}'
    answered = await _tool_results(
        alice, f'call legacy_ask {{"question": "Who?"}} legacy_summarize {text} modern_summarize {text}'
    )
    # Alone in its run: a request declined is noted in the result of every call open on the session.
    declined = await _tool_results(alice, "call legacy_visit {}")

    outcomes = {(e["tool"], e["protocol"]): e["outcome"] for e in calls.entries()}
    assert set(outcomes) == {("ask", LEGACY), ("summarize", LEGACY), ("summarize", MODERN), ("visit", LEGACY)}
    # The handler filled the form with the run's user, and declined the URL; the result says so.
    assert outcomes["ask", LEGACY] == {"action": "accept", "content": {"name": "alice"}}
    assert outcomes["visit", LEGACY] == {"action": "decline"}
    note = "[mcpbridge: the server asked for input (URL) during the call; it was declined]"
    assert note in declined["legacy_visit"]
    assert SECRET_URL not in declined["legacy_visit"]
    # Sampling: the offline model answered in both eras, within the policy's limits.
    for era in (LEGACY, MODERN):
        [sampled] = outcomes["summarize", era]
        assert (sampled["role"], sampled["model"]) == ("assistant", "OfflineChatModel"), era
    assert [name for name, result in answered.items() if "mcpbridge:" in result] == []  # nothing declined
    assert set(answered) == {"legacy_ask", "legacy_summarize", "modern_summarize"}


# --- 2026-07-28: a resume after both servers restarted ------------------------------------------


async def test_a_resume_after_restarting_the_agent_server_and_the_mcp_server_repeats_no_round(
    inquiry: Inquiry, alice: Any
) -> None:
    calls, events = inquiry.calls.view(), inquiry.events.view()
    thread_id = (await alice.threads.create())["thread_id"]
    value = await _interrupted(
        alice, thread_id, 'call modern_consult {"question": "Who reads it?", "text": "MCP is a protocol."}'
    )
    assert list(value["requests"]) == ["form"]  # the policy answered the sampling request of the round
    [first_round] = events.entries(tool="consult")
    old_agent, old_mcp = inquiry.process, inquiry.mcp.process.pid

    await anyio.to_thread.run_sync(inquiry.restart_both)

    assert inquiry.process is not old_agent and inquiry.mcp.process.pid != old_mcp
    async with inquiry.client() as client:
        with anyio.fail_after(RUN_TIMEOUT):
            thread = await client.threads.get(thread_id)
            state = await client.threads.get_state(thread_id)
        assert thread["status"] == "interrupted"  # the Agent Server kept the thread
        [task] = state["tasks"]
        [kept] = task["interrupts"]
        assert kept["value"] == value

        answer = {"action": "accept", "content": {"name": "Ada"}}
        done = await _wait(client, thread_id, command=_resume({"form": answer}))

    [entry] = calls.entries(tool="consult")
    assert entry["outcome"]["form"] == answer
    assert (
        entry["outcome"]["sample"]["role"] == "assistant"
    )  # the sealed answer of the first round, sent again
    assert (
        message_text(done["messages"])
        == f"modern_consult returned: consult: {json.dumps(answer, sort_keys=True)}"
    )
    rounds = events.entries(tool="consult")
    assert [(e["state"], e["answers"]) for e in rounds] == [(None, []), ("asked", ["form", "sample"])]
    assert rounds[0] == first_round
    assert rounds[1]["pid"] == inquiry.mcp.process.pid != first_round["pid"]  # the restarted server's


# --- 2025-11-25 with hold_calls: the open call waits for the user --------------------------------


async def test_a_held_2025_call_gets_the_users_answer_across_runs_and_is_called_once(
    inquiry: Inquiry, alice: Any
) -> None:
    calls = inquiry.calls.view()
    thread_id = (await alice.threads.create())["thread_id"]
    paused = await _wait(alice, thread_id, HOLDING, input=_ask('call held_ask {"question": "Who books?"}'))
    [interrupt] = paused["__interrupt__"]
    [ai] = [m for m in paused["messages"] if m["type"] == "ai"]
    [tool_call] = ai["tool_calls"]
    assert interrupt["value"] == {
        "type": INPUT_REQUEST,
        "server": "held",
        "tool": "held_ask",
        "tool_call_id": tool_call["id"],
        "requests": {
            "elicitation": {
                "kind": "elicitation",
                "mode": "form",
                "message": "Who books?",
                "schema": SCHEMA,
                "url": None,
            }
        },
    }
    assert calls.entries() == []  # the call is open on the server, waiting

    answer = {"action": "accept", "content": {"name": "Ada", "seats": 2}}
    done = await _wait(alice, thread_id, HOLDING, command=_resume({"elicitation": answer}))

    assert message_text(done["messages"]) == f"held_ask returned: ask: {json.dumps(answer, sort_keys=True)}"
    [entry] = calls.entries(tool="ask")  # one call: the held one
    assert entry["outcome"] == answer
    assert entry["protocol"] == LEGACY
