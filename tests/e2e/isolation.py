"""Isolation under load: many interleaved runs of two users on one Agent Server, checked call by call.

`run_isolation` drives ``runs`` runs of the example agent (``examples/agent.py``)
for alice and bob, interleaved and ``concurrency`` at a time, through
``langgraph-sdk`` (``runs.wait`` and ``runs.stream``, on fresh threads and on
threads reused run after run). Both users register their own MCP server ``mine``
(the same HTTP echo server, each with their own token) and alice stores her
credential for ``remote``. Every run asks for ``local_whoami``, ``remote_whoami``
and ``whoami`` (bob is not offered ``remote_*``); some runs ask for the tool list
instead. Then every call the MCP servers recorded, every tool result and every
tool list the runs saw is checked against the run it belongs to:

- the forwarded identity (``_meta`` user, thread and run) and the signed identity the
  server verified are the run's;
- every ``Authorization`` the servers saw (as its fingerprint) is the run's user's own
  credential for that server, and no run reaches a server its user may not use;
- every run calls and is offered exactly its user's tools, and no run's state or
  stream holds any credential, nor another user's credential fingerprint.

Run it on demand with its own servers::

    python -m tests.e2e.isolation --runs 200

It prints the report and exits with status 1 on any mismatch or failed run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Generator, Mapping, Sequence
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from examples.auth import USERS
from mcpbridge.signing import registered_audience
from tests.support.processes import (
    CONFIG,
    HOST,
    REPO_ROOT,
    child,
    demo_servers,
    free_port,
    per_run_config,
    port_open,
    wait_until,
)
from tests.support.servers.common import fingerprint

GRAPH_ID = "agent"
META = "dev.mcpbridge/"
TOKENS: Mapping[str, str] = {str(user["identity"]): token for token, user in USERS.items()}
"""User -> the bearer token the example auth (``examples/auth.py``) knows them by."""
PERMISSIONS: Mapping[str, frozenset[str]] = {
    str(user["identity"]): frozenset(user.get("permissions", ())) for user in USERS.values()
}
ECHO_TOOLS = ("whoami", "add", "count", "slow", "fail", "crash")
"""The tools of the example echo server (``tests/support/servers/echo.py``), in its order."""
OWN_SERVER = "mine"
"""The name each user registers their own server under (its audience: ``registered/mine``)."""
OWN_TOKENS: Mapping[str, str] = {"alice": "alice-own-token", "bob": "bob-own-token"}
"""Each user's token for their own server."""
REMOTE_SECRET = "alice-remote-secret"
"""Alice's stored credential for the deployment's ``remote`` server."""

Server = Literal["local", "remote", "own"]


def allowed_tools(user: str, *, own: bool = True) -> frozenset[str]:
    """The tools ``user``'s runs are offered by ``examples/agent.py``.

    ``local_*`` for everyone, without ``local_crash`` unless ``mcp:admin``;
    ``remote_*`` with ``mcp:remote``; with ``own``, the tools of the server the user
    registered, under their own names (a registered server has no prefix, and the
    ``*_crash`` filter of non-admins does not match the plain ``crash``).
    """
    permissions = PERMISSIONS[user]
    admin = "mcp:admin" in permissions
    tools = {f"local_{t}" for t in ECHO_TOOLS if admin or t != "crash"}
    if "mcp:remote" in permissions:
        tools |= {f"remote_{t}" for t in ECHO_TOOLS if admin or t != "crash"}
    if own:
        tools |= set(ECHO_TOOLS)
    return frozenset(tools)


def expected_servers(user: str) -> tuple[Server, ...]:
    """The servers a ``whoami`` run of ``user`` calls: local, remote (with ``mcp:remote``), own."""
    return ("local", "remote", "own") if "mcp:remote" in PERMISSIONS[user] else ("local", "own")


TOOL_OF: Mapping[Server, str] = {"local": "local_whoami", "remote": "remote_whoami", "own": "whoami"}
SERVER_OF: Mapping[str, Server] = {tool: server for server, tool in TOOL_OF.items()}


def credentials_seen(user: str) -> Mapping[Server, str | None]:
    """The ``Authorization`` fingerprint each server should see for ``user`` (``None``: no header)."""
    remote = fingerprint(f"Bearer {REMOTE_SECRET}") if user == "alice" else None
    return {"local": None, "remote": remote, "own": fingerprint(f"Bearer {OWN_TOKENS[user]}")}


SECRETS: Mapping[str, str] = {
    REMOTE_SECRET: "alice",
    **{token: user for user, token in OWN_TOKENS.items()},
}
"""Every credential the isolation run stores, and whose it is."""
FINGERPRINTS: Mapping[str, str] = {fingerprint(f"Bearer {secret}"): user for secret, user in SECRETS.items()}
"""The fingerprint of every ``Authorization`` header the servers may see, and whose it is."""

_HELP_LINE = re.compile(r"^- ([A-Za-z0-9_-]+)\(", re.MULTILINE)


def help_tools(text: str) -> frozenset[str]:
    """The tools an offline model's help text lists (``- name(params): ...`` lines)."""
    return frozenset(_HELP_LINE.findall(text))


def read_jsonl(path: Path, start: int = 0) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` from line ``start`` on (none if it does not exist)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()[start:]
    return [json.loads(line) for line in lines if line.strip()]


def line_count(path: Path) -> int:
    """How many lines ``path`` has (0 if it does not exist)."""
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


# --- the users' own server ----------------------------------------------------------------------


@dataclass(frozen=True)
class EchoServer:
    """An example echo server over streamable HTTP, started by `own_echo_server`."""

    url: str
    process: subprocess.Popen[Any]
    records: Path
    events: Path | None

    @property
    def pid(self) -> int:
        return self.process.pid


@contextmanager
def own_echo_server(
    *,
    secret: str,
    records: Path,
    log: Path,
    events: Path | None = None,
    audience: str = registered_audience(OWN_SERVER),
    timeout: float = 60.0,
) -> Generator[EchoServer, None, None]:
    """Serve the example echo server on a free port of 127.0.0.1, as a user's own MCP server.

    It verifies signed identities addressed to ``audience`` with ``secret`` (the
    Agent Server's ``MCPBRIDGE_IDENTITY_SECRET``), records its calls in ``records``
    (and, with ``events``, its requests), and is stopped by its handle on exit.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPBRIDGE_")}
    env |= {"MCPBRIDGE_IDENTITY_SECRET": secret, "MCPBRIDGE_RECORD": str(records)}
    if events is not None:
        env["MCPBRIDGE_RECORD_EVENTS"] = str(events)
    command = [sys.executable, "-m", "tests.support.servers.echo", "--http", "--host", HOST]
    command += ["--port", str(port), "--audience", audience]
    with child(command, cwd=REPO_ROOT, env=env, log=log) as process:
        wait_until(lambda: port_open(port), process, log, f"the {audience!r} echo server", timeout)
        yield EchoServer(f"http://{HOST}:{port}/mcp", process, records, events)


# --- the isolation run --------------------------------------------------------------------------


@dataclass(frozen=True)
class IsolationTarget:
    """The running servers an isolation run drives and reads.

    Attributes:
        url: The Agent Server serving ``langgraph.json`` with ``examples/auth.py``.
        calls: The ``MCPBRIDGE_RECORD`` file of the Agent Server's MCP servers (local and remote).
        remote_pid: The pid of the ``remote`` HTTP echo server (to tell its records from local ones).
        own_url: The URL both users register as their server ``mine``.
        own_calls: The ``MCPBRIDGE_RECORD`` file of that server.
        agent_pid: The Agent Server's pid, when it runs on this machine: its stdio MCP servers (one
            per executing run) are counted, to report how many runs executed at once.
    """

    url: str
    calls: Path
    remote_pid: int
    own_url: str
    own_calls: Path
    agent_pid: int | None = None


@dataclass(frozen=True)
class RunSpec:
    """One planned run."""

    index: int
    user: str
    fresh_thread: bool
    stream: bool
    ask_tools: bool

    @property
    def content(self) -> str:
        tag = f"(run {self.index} of {self.user})"
        if self.ask_tools:
            return f"Which tools are there? {tag}"
        # Bob is not offered remote_whoami: his run must not call it, whatever he asks.
        return f"call local_whoami {{}} then remote_whoami {{}} then whoami {{}} {tag}"


@dataclass
class RunResult:
    """What one run returned to its client."""

    spec: RunSpec
    thread_id: str | None = None
    run_id: str | None = None
    status: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    """The messages this run added to its thread (after its own user message)."""
    output: str = ""
    """Everything the client received for this run (final state, stream events), as JSON."""
    error: str | None = None


@dataclass(frozen=True)
class IsolationReport:
    """The outcome of an isolation run: what was checked and every mismatch found."""

    runs: int
    concurrency: int
    wall_time: float
    peak_executing: int | None
    """The most runs the Agent Server executed at once (its stdio MCP servers alive at once)."""
    runs_by_user: Mapping[str, int]
    succeeded: int
    tool_list_runs: int
    calls_checked: int
    calls_by_user: Mapping[str, int]
    calls_by_server: Mapping[str, int]
    tool_calls_checked: int
    tool_results_checked: int
    failures: tuple[str, ...]
    mismatches: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """No mismatch, and every run ended in success."""
        return not self.mismatches and not self.failures and self.succeeded == self.runs

    def render(self, limit: int = 20) -> str:
        """The report as text, listing the first ``limit`` mismatches and failures."""

        def counts(values: Mapping[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(values.items()))

        lines = [
            f"isolation run: {self.runs} runs, {self.concurrency} in flight, {self.wall_time:.1f}s wall "
            f"({self.wall_time / max(self.runs, 1):.2f}s per run)",
            f"  peak runs executing:   {'unknown' if self.peak_executing is None else self.peak_executing} "
            "(stdio MCP servers of the Agent Server alive at once)",
            f"  runs by user:          {counts(self.runs_by_user)}",
            f"  runs ended in success: {self.succeeded} of {self.runs}",
            f"  tool-list runs:        {self.tool_list_runs}",
            f"  server calls checked:  {self.calls_checked} (by user: {counts(self.calls_by_user)}; "
            f"by server: {counts(self.calls_by_server)})",
            f"  AI tool calls checked: {self.tool_calls_checked}",
            f"  tool results checked:  {self.tool_results_checked}",
            f"  failed runs:           {len(self.failures)}",
            f"  mismatches:            {len(self.mismatches)}",
        ]
        lines += [f"    failed: {f}" for f in self.failures[:limit]]
        lines += [f"    mismatch: {m}" for m in self.mismatches[:limit]]
        return "\n".join(lines)


def plan(runs: int, *, users: Sequence[str] = ("alice", "bob"), tool_list_every: int = 10) -> list[RunSpec]:
    """``runs`` runs, the users taking turns; half on fresh threads, half streamed, some asking for tools."""
    specs: list[RunSpec] = []
    for index in range(runs):
        turn = index // len(users)  # the how-many-th run of its user
        specs.append(
            RunSpec(
                index=index,
                user=users[index % len(users)],
                fresh_thread=turn % 2 == 0,
                stream=(turn // 2) % 2 == 1,
                ask_tools=turn % tool_list_every == tool_list_every - 1,
            )
        )
    return specs


async def reset_store(clients: Mapping[str, LangGraphClient]) -> None:
    """Delete every item the users stored: their servers, their credentials and anything else.

    The auth handler scopes each user's store requests to their own namespace, so an
    empty prefix reaches all of that user's items, and nobody else's.
    """
    for client in clients.values():
        while items := (await client.store.search_items([], limit=100))["items"]:
            for item in items:
                await client.store.delete_item(item["namespace"], item["key"])


async def prepare_store(clients: Mapping[str, LangGraphClient], own_url: str) -> None:
    """Each user registers ``mine`` with their own token; alice stores her ``remote`` credential."""
    for user, client in clients.items():
        value = {"url": own_url, "headers": {"Authorization": f"Bearer {OWN_TOKENS[user]}"}}
        await client.store.put_item(["mcp_servers"], OWN_SERVER, value)
    await clients["alice"].store.put_item(["mcp_credentials"], "remote", {"bearer_token": REMOTE_SECRET})


def _run_messages(state: Mapping[str, Any], content: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = list(state.get("messages") or [])
    starts = [i for i, m in enumerate(messages) if m.get("type") == "human" and m.get("content") == content]
    return messages[starts[-1] + 1 :] if starts else []


async def _run(client: LangGraphClient, spec: RunSpec, thread_id: str, result: RunResult) -> None:
    payload: dict[str, Any] = {"messages": [{"role": "user", "content": spec.content}]}
    output: list[Any] = []
    state: Any = None
    if spec.stream:
        async for part in client.runs.stream(
            thread_id, GRAPH_ID, input=payload, stream_mode=["values", "updates", "custom"]
        ):
            output.append([part.event, part.data])
            if part.event == "metadata":
                result.run_id = part.data["run_id"]
            elif part.event == "values":
                state = part.data
            elif part.event == "error":
                result.error = f"stream error event: {part.data}"
    else:
        created: list[Any] = []
        state = await client.runs.wait(
            thread_id, GRAPH_ID, input=payload, on_run_created=created.append, raise_error=False
        )
        output.append(state)
        result.run_id = created[0]["run_id"] if created else None
    result.output = json.dumps(output, default=str)
    if isinstance(state, dict):
        result.messages = _run_messages(state, spec.content)
    if result.run_id is not None:
        result.status = (await client.runs.get(thread_id, result.run_id))["status"]


class _Checker:
    """Collects the counts and mismatches of one isolation run."""

    def __init__(self) -> None:
        self.mismatches: list[str] = []
        self.calls_by_user: Counter[str] = Counter()
        self.calls_by_server: Counter[str] = Counter()
        self.tool_calls = 0
        self.tool_results = 0

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.mismatches.append(what)

    def run(self, result: RunResult) -> None:
        spec, user = result.spec, result.spec.user
        where = f"run {spec.index} ({user}, {result.run_id})"
        allowed = allowed_tools(user)
        ai = [m for m in result.messages if m.get("type") == "ai"]
        called = [c["name"] for m in ai for c in m.get("tool_calls") or []]
        self.tool_calls += len(called)
        for name in called:
            self.expect(name in allowed, f"{where} called {name!r}, which is not {user}'s")
        if spec.ask_tools:
            listed = help_tools(ai[0].get("content", "")) if ai else frozenset()
            self.expect(listed == allowed, f"{where} was offered {sorted(listed)}, not {sorted(allowed)}")
            self.expect(not called, f"{where} asked for the tool list but called {called}")
        else:
            wanted = [TOOL_OF[s] for s in expected_servers(user)]
            self.expect(sorted(called) == sorted(wanted), f"{where} called {called}, expected {wanted}")
        expected_auth = credentials_seen(user)
        for message in result.messages:
            if message.get("type") != "tool" or message.get("name") not in SERVER_OF:
                continue
            self.tool_results += 1
            seen = _tool_result(message)
            server = SERVER_OF[message["name"]]
            self._identity(where, result, seen, f"the {message['name']} result")
            self._verified(where, result, seen, f"the {message['name']} result")
            self.expect(
                seen.get("authorization") == expected_auth[server],
                f"{where}: {message['name']} reports Authorization {seen.get('authorization')}, "
                f"expected {expected_auth[server]}",
            )
        for secret in SECRETS:
            self.expect(secret not in result.output, f"{where}: the credential {secret!r} is in its output")
        for print_, owner in FINGERPRINTS.items():
            if owner != user:
                self.expect(
                    print_ not in result.output, f"{where}: {owner}'s credential fingerprint is in it"
                )

    def record(self, server: Server, call: Mapping[str, Any], run: RunResult | None) -> None:
        meta = call.get("meta") or {}
        run_id = meta.get(f"{META}run_id")
        if run is None:
            self.mismatches.append(f"{server} server recorded a call of unknown run {run_id!r}: {call}")
            return
        user, where = run.spec.user, f"run {run.spec.index} ({run.spec.user}, {run.run_id})"
        self.calls_by_user[user] += 1
        self.calls_by_server[server] += 1
        self._identity(where, run, call, f"the {server} server's record")
        self._verified(where, run, call, f"the {server} server's record")
        authorization = call.get("authorization")
        owner = FINGERPRINTS.get(authorization) if authorization is not None else None
        self.expect(
            authorization == credentials_seen(user)[server],
            f"{where}: the {server} server saw Authorization {authorization} (whose: {owner or 'unknown'}), "
            f"expected {credentials_seen(user)[server]}",
        )

    def _identity(self, where: str, run: RunResult, seen: Mapping[str, Any], what: str) -> None:
        meta = seen.get("meta") or {}
        got = {k: meta.get(f"{META}{k}") for k in ("user_id", "thread_id", "run_id")}
        want = {"user_id": run.spec.user, "thread_id": run.thread_id, "run_id": run.run_id}
        self.expect(got == want, f"{where}: {what} carried identity {got}, expected {want}")

    def _verified(self, where: str, run: RunResult, seen: Mapping[str, Any], what: str) -> None:
        want = {"user_id": run.spec.user, "thread_id": run.thread_id, "run_id": run.run_id}
        got = seen.get("verified")
        self.expect(got == want, f"{where}: {what} shows the signed identity {got}, expected {want}")


def children(pid: int) -> int:
    """How many living processes have ``pid`` as parent (read from /proc)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # gone meanwhile
            continue
        count += fields[0] != "Z" and int(fields[1]) == pid
    return count


async def _watch_children(pid: int, peak: list[int]) -> None:
    """Keep the largest number of ``pid``'s children in ``peak[0]``, sampling every 0.2s until cancelled."""
    while True:
        peak[0] = max(peak[0], await anyio.to_thread.run_sync(children, pid))
        await anyio.sleep(0.2)


def _tool_result(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content or [])
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def run_isolation(
    target: IsolationTarget,
    *,
    runs: int = 200,
    concurrency: int = 8,
    run_timeout: float = 90.0,
    max_failures: int = 5,
    tool_list_every: int = 10,
) -> IsolationReport:
    """Drive ``runs`` interleaved runs of alice and bob, ``concurrency`` at a time, and check them all.

    The run owns alice's and bob's stored servers and credentials: it clears them,
    stores its own, and clears them again at the end. Each run is bounded by
    ``run_timeout``; a run that fails or hangs is reported, and after
    ``max_failures`` of them no further run starts.
    """
    async with AsyncExitStack() as stack:
        clients = {
            user: await stack.enter_async_context(
                get_client(url=target.url, api_key=None, headers={"Authorization": f"Bearer {token}"})
            )
            for user, token in TOKENS.items()
        }
        return await _isolation(
            target,
            clients,
            runs=runs,
            concurrency=concurrency,
            run_timeout=run_timeout,
            max_failures=max_failures,
            tool_list_every=tool_list_every,
        )


async def _isolation(
    target: IsolationTarget,
    clients: Mapping[str, LangGraphClient],
    *,
    runs: int,
    concurrency: int,
    run_timeout: float,
    max_failures: int,
    tool_list_every: int,
) -> IsolationReport:
    specs = plan(runs, tool_list_every=tool_list_every)
    results: list[RunResult] = []
    failures: list[str] = []
    calls_start, own_start = line_count(target.calls), line_count(target.own_calls)
    pending = iter(specs)

    async def worker() -> None:
        threads: dict[str, str] = {}  # this worker's reused thread of each user: one run at a time
        for spec in pending:
            if len(failures) >= max_failures:
                return
            client = clients[spec.user]
            result = RunResult(spec)
            results.append(result)
            try:
                with anyio.fail_after(run_timeout):
                    if spec.fresh_thread or spec.user not in threads:
                        thread_id = (await client.threads.create())["thread_id"]
                        if not spec.fresh_thread:
                            threads[spec.user] = thread_id
                    else:
                        thread_id = threads[spec.user]
                    result.thread_id = thread_id
                    await _run(client, spec, thread_id, result)
            except TimeoutError:
                result.error = f"did not finish within {run_timeout:g}s"
            except Exception as exc:
                result.error = f"{type(exc).__name__}: {exc}"
            if result.error is not None or result.status != "success":
                failures.append(
                    f"run {spec.index} ({spec.user}, thread {result.thread_id}, run {result.run_id}): "
                    f"status {result.status}, {result.error or 'no error reported'}"
                )

    peak: list[int] = [0]
    started = time.monotonic()
    try:
        await reset_store(clients)
        await prepare_store(clients, target.own_url)
        async with anyio.create_task_group() as group:
            if target.agent_pid is not None:
                group.start_soon(_watch_children, target.agent_pid, peak)
            async with anyio.create_task_group() as runners:
                for _ in range(concurrency):
                    runners.start_soon(worker)
            group.cancel_scope.cancel()
        wall_time = time.monotonic() - started
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            await reset_store(clients)

    checker = _Checker()
    by_run = {r.run_id: r for r in results if r.run_id is not None}
    for result in results:
        checker.run(result)
    recorded: Counter[tuple[str, Server]] = Counter()
    sources = ((target.calls, calls_start, False), (target.own_calls, own_start, True))
    for path, start, own in sources:
        for call in read_jsonl(path, start):
            server: Server = "own" if own else "remote" if call.get("pid") == target.remote_pid else "local"
            run_id = str((call.get("meta") or {}).get(f"{META}run_id"))
            checker.record(server, call, by_run.get(run_id))
            recorded[run_id, server] += 1
    for result in results:
        if result.run_id is None:
            continue
        for server in ("local", "remote", "own"):
            want = 0 if result.spec.ask_tools else expected_servers(result.spec.user).count(server)
            got = recorded[result.run_id, server]
            checker.expect(
                got == want,
                f"run {result.spec.index} ({result.spec.user}, {result.run_id}): "
                f"{got} calls reached the {server} server, expected {want}",
            )
    return IsolationReport(
        runs=len(results),
        concurrency=concurrency,
        wall_time=wall_time,
        peak_executing=None if target.agent_pid is None else peak[0],
        runs_by_user=dict(Counter(r.spec.user for r in results)),
        succeeded=sum(r.status == "success" and r.error is None for r in results),
        tool_list_runs=sum(r.spec.ask_tools for r in results),
        calls_checked=sum(checker.calls_by_server.values()),
        calls_by_user=dict(checker.calls_by_user),
        calls_by_server=dict(checker.calls_by_server),
        tool_calls_checked=checker.tool_calls,
        tool_results_checked=checker.tool_results,
        failures=tuple(failures),
        mismatches=tuple(checker.mismatches),
    )


# --- on demand ----------------------------------------------------------------------------------


@contextmanager
def isolation_servers(directory: Path, *, jobs: int = 1) -> Generator[IsolationTarget, None, None]:
    """The Agent Server with its MCP servers (`demo_servers`) and the users' own server.

    One identity secret, made here, is shared by the Agent Server and both HTTP echo servers.
    ``langgraph dev`` executes one run at a time unless told otherwise (``jobs``).
    """
    secret = secrets.token_urlsafe(48)
    calls = directory / "calls.jsonl"
    env = {
        "MCPBRIDGE_RECORD": str(calls),
        "MCPBRIDGE_IDENTITY_SECRET": secret,
        "MCPBRIDGE_ALLOWED_HOSTS": f"{HOST}:*",  # the users' own server listens on a free port
        "MCPBRIDGE_MODEL": "",  # the offline model
    }
    with ExitStack() as stack:
        servers = stack.enter_context(
            demo_servers(
                port=free_port(),
                mcp_port=free_port(),
                workdir=directory,
                config=per_run_config(CONFIG, directory),
                logs=directory,
                env=env,
                jobs=jobs,
            )
        )
        own = stack.enter_context(
            own_echo_server(
                secret=secret, records=directory / "own-calls.jsonl", log=directory / "own-echo.log"
            )
        )
        yield IsolationTarget(
            url=servers.url,
            calls=calls,
            remote_pid=servers.echo.pid,
            own_url=own.url,
            own_calls=own.records,
            agent_pid=servers.agent.pid,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200, help="how many runs (default 200)")
    parser.add_argument("--concurrency", type=int, default=8, help="runs in flight (default 8)")
    parser.add_argument("--run-timeout", type=float, default=90.0, help="seconds one run may take")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs the Agent Server executes at once (langgraph dev's --n-jobs-per-worker; default 1, "
        "as langgraph dev runs)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mcpbridge-isolation-") as scratch:
        directory = Path(scratch)
        try:
            with isolation_servers(directory, jobs=args.jobs) as target:
                isolation = functools.partial(
                    run_isolation,
                    target,
                    runs=args.runs,
                    concurrency=args.concurrency,
                    run_timeout=args.run_timeout,
                )
                report = anyio.run(isolation)
        except RuntimeError as exc:  # a server did not start (demo_servers, own_echo_server)
            print(f"could not run: {exc}", file=sys.stderr)
            return 1
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
