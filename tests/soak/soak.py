"""Soak run: hundreds of runs on the real Agent Server, with MCP servers crashing, stalling and being killed.

`soak_servers` starts ``langgraph dev --no-reload`` serving ``tests/soak/langgraph.json``
(the graph of ``tests/soak/graph.py``), the example echo server over streamable HTTP
beside it (`tests.support.processes.demo_servers`), and a second HTTP echo server that the
run kills and restarts (``flaky``). Every run of the graph starts its own stdio echo
server as a child of the Agent Server.

`run_soak` drives the runs through ``langgraph-sdk``, ``concurrency`` at a time, each on
a fresh thread, cycling through kinds that inject faults (see `KINDS`):

- plain successful calls over stdio and HTTP;
- timeouts: ``slow`` calls past the servers' 5 s ``call_timeout``, beside good calls;
- kills: the stdio server's ``crash`` tool kills it mid-call, then a good call reconnects;
  the driver kills the reconnected stdio server too, so the run's reconnect budget is
  spent; the driver kills the ``flaky`` HTTP server during a call and restarts it, and
  the run's next call reconnects to the new process;
- cancellations: the client cancels a run while an HTTP ``slow`` call is in flight, or as
  soon as the run executes (mostly while it connects to its servers).

Every run must end within ``run_timeout`` (else it is a hang) with its kind's status and
tool messages, and the servers' own records must show what the messages claim
(reconnected calls answered by a new process, cancelled calls seen cancelled). After a
warm-up of one run of each kind, the Agent Server's descendant processes and open file
descriptors are taken as the baseline; after the runs they must settle back to it.

Run it on demand, with its own servers::

    python -m tests.soak --runs 300

It prints the report and exits with status 1 on any unexpected outcome, hang or leak.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.integration.support import RecordFile, descendants, describe_process, poll_until
from tests.support.processes import (
    HOST,
    REPO_ROOT,
    child,
    demo_servers,
    free_port,
    port_open,
    portable_config,
    tail,
    wait_until,
)

CONFIG = Path(__file__).resolve().parent / "langgraph.json"
GRAPH_ID = "soak"
CANCELLED_STATUS = "interrupted"
"""The status of a run cancelled with ``action="interrupt"``."""

Fault = Literal["none", "timeout", "crash", "stdio-kill", "http-kill", "cancel", "cancel-early"]


# --- what the runs ask for and what they must get -----------------------------------------------


def _timed_out(server: str) -> str:
    return (
        rf"^MCP server '{server}' did not answer tool 'slow' within call_timeout=[0-9.]+s; "
        "the call was cancelled$"
    )


def _broken(server: str, tool: str) -> str:
    return rf"^MCP server '{server}' (closed the connection|failed) during tool '{tool}'"


_NOT_CONNECTED = r"^MCP server 'local' is not connected: "


@dataclass(frozen=True)
class Expect:
    """One tool message a run must end with: the tool, whether it succeeded, a pattern its text matches."""

    tool: str
    ok: bool
    pattern: str


@dataclass(frozen=True)
class RunSpec:
    """One planned run: its kind, its message and what it must end with."""

    index: int
    kind: str
    message: str
    expected: tuple[Expect, ...] = ()
    status: str = "success"
    gate: str | None = None
    """The ``wait_gate`` key the driver opens once its fault is injected."""
    new_process: tuple[str, str] | None = None
    """``(first, later)``: the server's ``later`` call must come from another process than its ``first``."""
    cancelled_remote: bool = False
    """The HTTP echo server must record the run's ``slow`` call as cancelled."""


def _add(tool: str, a: int, b: int) -> tuple[str, Expect]:
    return f'{tool} {{"a": {a}, "b": {b}}}', Expect(tool, True, rf"^{float(a + b)}$")


def _ok(i: int) -> RunSpec:
    (local, local_ok), (remote, remote_ok) = _add("local_add", i, 1), _add("remote_add", i, 2)
    return RunSpec(i, "ok", f"call {local} {remote}", (local_ok, remote_ok))


def _timeout(i: int) -> RunSpec:
    add, add_ok = _add("local_add", i, 1)
    message = f'call local_slow {{"seconds": 10}} remote_slow {{"seconds": 10}} {add}'
    expected = (
        Expect("local_slow", False, _timed_out("local")),
        Expect("remote_slow", False, _timed_out("remote")),
        add_ok,
    )
    return RunSpec(i, "timeout", message, expected, cancelled_remote=True)


def _timeout_then_ok(i: int) -> RunSpec:
    (local, local_ok), (remote, remote_ok) = _add("local_add", i, 1), _add("remote_add", i, 2)
    message = f'one by one: local_slow {{"seconds": 10}} {local} remote_slow {{"seconds": 10}} {remote}'
    expected = (
        Expect("local_slow", False, _timed_out("local")),
        local_ok,
        Expect("remote_slow", False, _timed_out("remote")),
        remote_ok,
    )
    return RunSpec(i, "timeout-then-ok", message, expected, cancelled_remote=True)


def _crash(i: int) -> RunSpec:
    add, add_ok = _add("local_add", i, 1)
    expected = (Expect("local_crash", False, _broken("local", "crash")), add_ok)
    return RunSpec(i, "crash", f"one by one: local_crash {{}} {add}", expected, new_process=("crash", "add"))


def _stdio_kill(i: int) -> RunSpec:
    add, add_ok = _add("local_add", i, 1)
    gate = f"gate-{i}"
    message = (
        f'one by one: local_crash {{}} {add} wait_gate {{"key": "{gate}"}} local_whoami {{}} '
        'local_count {"to": 2}'
    )
    expected = (
        Expect("local_crash", False, _broken("local", "crash")),
        add_ok,
        Expect("wait_gate", True, rf"^gate {gate} open$"),
        Expect("local_whoami", False, _broken("local", "whoami")),
        Expect("local_count", False, _NOT_CONNECTED),
    )
    return RunSpec(i, "stdio-kill", message, expected, gate=gate, new_process=("crash", "add"))


def _http_kill(i: int) -> RunSpec:
    add, add_ok = _add("flaky_add", i, 1)
    gate = f"gate-{i}"
    message = f'one by one: flaky_slow {{"seconds": 60}} wait_gate {{"key": "{gate}"}} {add}'
    expected = (
        Expect("flaky_slow", False, _broken("flaky", "slow")),
        Expect("wait_gate", True, rf"^gate {gate} open$"),
        add_ok,
    )
    return RunSpec(i, "http-kill", message, expected, gate=gate, new_process=("slow", "add"))


def _cancel(i: int) -> RunSpec:
    add, _ = _add("local_add", i, 1)
    message = f'call patient_slow {{"seconds": 60}} {add}'
    return RunSpec(i, "cancel", message, status=CANCELLED_STATUS, cancelled_remote=True)


def _cancel_early(i: int) -> RunSpec:
    # Its slow call, if it started before the cancel, must be seen cancelled (checked apart).
    return dataclasses.replace(_cancel(i), kind="cancel-early", cancelled_remote=False)


def _mixed(i: int) -> RunSpec:
    (local, local_ok), (remote, remote_ok) = _add("local_add", i, 1), _add("remote_add", i, 2)
    message = f'one by one: local_crash {{}} remote_slow {{"seconds": 10}} {local} {remote}'
    expected = (
        Expect("local_crash", False, _broken("local", "crash")),
        Expect("remote_slow", False, _timed_out("remote")),
        local_ok,
        remote_ok,
    )
    return RunSpec(i, "mixed", message, expected, new_process=("crash", "add"), cancelled_remote=True)


@dataclass(frozen=True)
class Kind:
    """A kind of run: what it is called in the report, how often it comes, and how to plan one."""

    outcome: str
    weight: int
    plan: Callable[[int], RunSpec]
    fault: Fault


KINDS: Mapping[str, Kind] = {
    "ok": Kind("success", 3, _ok, "none"),
    "timeout": Kind("timeouts as error messages, a good call beside", 1, _timeout, "timeout"),
    "timeout-then-ok": Kind("timeouts, then good calls on the sessions", 1, _timeout_then_ok, "timeout"),
    "crash": Kind("stdio crash, reconnect, good call", 2, _crash, "crash"),
    "stdio-kill": Kind("crash, reconnect, kill: not connected", 1, _stdio_kill, "stdio-kill"),
    "http-kill": Kind("HTTP kill mid-call, restart, reconnect, good call", 1, _http_kill, "http-kill"),
    "cancel": Kind("cancelled, HTTP call cancelled on the server", 2, _cancel, "cancel"),
    "cancel-early": Kind("cancelled as soon as it runs (connecting)", 1, _cancel_early, "cancel-early"),
    "mixed": Kind("crash and timeout, then good calls", 1, _mixed, "crash"),
}
"""Every kind of run, keyed by name; a cycle of runs holds each kind ``weight`` times."""


def plan(runs: int, *, seed: int = 0) -> list[RunSpec]:
    """``runs`` runs: cycles of every kind (each ``weight`` times), shuffled within each cycle."""
    rng = random.Random(seed)
    cycle = [name for name, kind in KINDS.items() for _ in range(kind.weight)]
    names: list[str] = []
    while len(names) < runs:
        rng.shuffle(cycle)
        names += cycle
    return [KINDS[name].plan(i) for i, name in enumerate(names[:runs])]


def warmup_plan() -> list[RunSpec]:
    """One run of every kind, numbered below the soak's runs."""
    return [kind.plan(-1 - i) for i, kind in enumerate(KINDS.values())]


# --- the servers ---------------------------------------------------------------------------------


class FlakyServer:
    """The HTTP echo server the soak kills and restarts, always on the same port (the graph's ``flaky``)."""

    def __init__(self, *, port: int, env: Mapping[str, str], log: Path) -> None:
        self.port = port
        self._env = dict(env)
        self._log = log
        self._stack = ExitStack()
        self.process: subprocess.Popen[Any] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/mcp"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it listens."""
        command = [sys.executable, "-m", "tests.support.servers.echo", "--http", "--host", HOST]
        command += ["--port", str(self.port), "--audience", "flaky"]
        process = self._stack.enter_context(child(command, cwd=REPO_ROOT, env=self._env, log=self._log))
        self.process = process
        wait_until(lambda: port_open(self.port), process, self._log, "the flaky HTTP echo server", timeout)

    def kill_and_restart(self) -> None:
        """Kill the server at once (SIGKILL, reaped by its handle), then start a new one on the same port."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.stop()
        self._stack = ExitStack()
        self.start()

    def stop(self) -> None:
        """Stop the current server by its handle."""
        self._stack.close()
        self.process = None


@dataclass(frozen=True)
class SoakTarget:
    """The running servers a soak drives and watches.

    Attributes:
        url: The Agent Server.
        agent_pid: The Agent Server's process (``langgraph dev``), whose children are the stdio servers.
        port: The Agent Server's port.
        records: The calls of the stdio servers and of the steady HTTP echo server (``MCPBRIDGE_RECORD``).
        remote_pid: The steady HTTP echo server's pid (to tell its records from the stdio servers').
        flaky: The HTTP echo server the soak kills.
        flaky_records: Its calls.
        gates: Where the driver opens ``wait_gate`` gates.
        log: The Agent Server's log.
    """

    url: str
    agent_pid: int
    port: int
    records: RecordFile
    remote_pid: int
    flaky: FlakyServer
    flaky_records: RecordFile
    gates: Path
    log: Path


@contextmanager
def soak_servers(directory: Path, *, jobs: int = 4) -> Generator[SoakTarget, None, None]:
    """Start the flaky HTTP echo server, then the Agent Server with the steady one; stop all on exit.

    Args:
        directory: Working directory of ``langgraph dev``, and the place of logs, records and gates.
        jobs: Runs the Agent Server executes at once (``--n-jobs-per-worker``).
    """
    secret = secrets.token_urlsafe(48)
    records, flaky_records, gates = (
        directory / "calls.jsonl",
        directory / "flaky-calls.jsonl",
        directory / "gates",
    )
    gates.mkdir()
    flaky_env = {k: v for k, v in os.environ.items() if not k.startswith("MCPBRIDGE_")}
    flaky_env |= {"MCPBRIDGE_IDENTITY_SECRET": secret, "MCPBRIDGE_RECORD": str(flaky_records)}
    flaky = FlakyServer(port=free_port(), env=flaky_env, log=directory / "flaky-echo.log")
    env = {
        "MCPBRIDGE_RECORD": str(records),
        "MCPBRIDGE_IDENTITY_SECRET": secret,
        "MCPBRIDGE_SOAK_FLAKY_URL": flaky.url,
        "MCPBRIDGE_SOAK_GATES": str(gates),
        "PYTHONUNBUFFERED": "1",
    }
    try:
        flaky.start()
        port = free_port()
        with demo_servers(
            port=port,
            mcp_port=free_port(),
            workdir=directory,
            config=portable_config(CONFIG, directory),
            logs=directory,
            env=env,
            jobs=jobs,
        ) as servers:
            yield SoakTarget(
                url=servers.url,
                agent_pid=serving_process(servers.agent.pid, port),
                port=port,
                records=RecordFile(records),
                remote_pid=servers.echo.pid,
                flaky=flaky,
                flaky_records=RecordFile(flaky_records),
                gates=gates,
                log=directory / "agent-server.log",
            )
    finally:
        flaky.stop()


# --- processes and descriptors -------------------------------------------------------------------


def serving_process(pid: int, port: int) -> int:
    """The process, ``pid`` or one of its descendants, that holds the socket listening on ``port``."""
    for candidate in (pid, *sorted(descendants(pid))):
        try:
            table = Path(f"/proc/{candidate}/net/tcp").read_text().splitlines()[1:]
            links = {os.readlink(f"/proc/{candidate}/fd/{fd}") for fd in os.listdir(f"/proc/{candidate}/fd")}
        except OSError:
            continue
        for row in table:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and f"socket:[{inode}]" in links:
                return candidate
    raise RuntimeError(f"no process below {pid} listens on port {port}")


@dataclass(frozen=True)
class Snapshot:
    """The Agent Server's descendant processes and its number of open file descriptors."""

    processes: frozenset[int]
    fds: int


def snapshot(pid: int) -> Snapshot:
    """What ``pid`` holds now: its descendants (zombies included) and its open descriptors."""
    return Snapshot(frozenset(descendants(pid)), len(os.listdir(f"/proc/{pid}/fd")))


async def steady(pid: int, *, within: float, quiet: float = 1.0) -> Snapshot:
    """Poll until ``pid``'s snapshot stays the same for ``quiet`` seconds; the last one at ``within``."""
    last, since = snapshot(pid), time.monotonic()
    with anyio.move_on_after(within):
        while time.monotonic() - since < quiet:
            await anyio.sleep(0.1)
            now = snapshot(pid)
            if now != last:
                last, since = now, time.monotonic()
    return last


async def settled(pid: int, baseline: Snapshot, *, within: float) -> tuple[Snapshot, float]:
    """Poll until ``pid`` is back at ``baseline`` (no new process, no more descriptors), for ``within`` s.

    Returns the last snapshot and how long it took.
    """
    started = time.monotonic()
    now = snapshot(pid)
    with anyio.move_on_after(within):
        while now.processes - baseline.processes or now.fds > baseline.fds:
            await anyio.sleep(0.1)
            now = snapshot(pid)
    return now, time.monotonic() - started


def dead(pid: int) -> bool:
    """Whether ``pid`` has exited (gone, or a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


# --- driving runs --------------------------------------------------------------------------------


@dataclass
class RunResult:
    """How one run ended, and what was wrong with it."""

    spec: RunSpec
    thread_id: str = ""
    run_id: str = ""
    status: str | None = None
    hang: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    problems: list[str] = field(default_factory=list[str])
    faults: Counter[str] = field(default_factory=Counter[str])
    """Faults this run shows evidence of (timeouts, crashes, kills, cancellations, reconnects)."""
    seconds: float = 0.0

    @property
    def expected(self) -> bool:
        return not self.hang and not self.problems


def text_of(content: Any) -> str:
    """The text of a message's content (a string, or a list of content blocks)."""
    if isinstance(content, str):
        return content
    parts: list[Any] = content if isinstance(content, list) else []
    return "".join(str(part.get("text", "")) for part in parts if isinstance(part, dict))


class Driver:
    """Runs planned runs against a `SoakTarget`, injecting each kind's fault."""

    def __init__(self, target: SoakTarget, client: LangGraphClient, *, run_timeout: float) -> None:
        self.target = target
        self.client = client
        self.run_timeout = run_timeout
        self.flaky_lock = anyio.Lock()
        """One HTTP kill at a time: a kill run holds it from its creation to its end."""

    async def run(self, spec: RunSpec) -> RunResult:
        """Create the run, inject its fault, wait (bounded) for its end, and check it."""
        result = RunResult(spec)
        started = time.monotonic()
        try:
            await self._run(result)
        except Exception as exc:  # the run's outcome is unknown: report it, go on with the others
            result.problems.append(f"the driver failed: {exc!r}")
        result.seconds = time.monotonic() - started
        return result

    async def _run(self, result: RunResult) -> None:
        spec = result.spec
        async with AsyncExitStack() as stack:
            if spec.kind == "http-kill":
                await stack.enter_async_context(self.flaky_lock)
            thread = await self.client.threads.create()
            result.thread_id = thread["thread_id"]
            payload: dict[str, Any] = {"messages": [{"role": "user", "content": spec.message}]}
            run = await self.client.runs.create(result.thread_id, GRAPH_ID, input=payload)
            result.run_id = run["run_id"]
            try:
                with anyio.fail_after(self.run_timeout):
                    values = await self._until_end(result)
            except TimeoutError:
                result.hang = True
                await self._unstick(result)
            else:
                messages: list[Any] = values.get("messages", []) if isinstance(values, dict) else []
                result.messages = [m for m in messages if isinstance(m, dict)]
            result.status = (await self.client.runs.get(result.thread_id, result.run_id))["status"]
        if not result.hang:
            await self._check(result)

    async def _until_end(self, result: RunResult) -> Any:
        """Inject the run's fault while waiting for the run's end; return the thread's final values.

        A run that ends before its fault could be injected (say, it failed to start) is
        reported as such, rather than waited for.
        """
        injected = anyio.Event()
        values: Any = None

        async def inject() -> None:
            await self._inject(result.spec, result)
            injected.set()

        async with anyio.create_task_group() as group:
            group.start_soon(inject)
            values = await self.client.runs.join(result.thread_id, result.run_id)
            with anyio.move_on_after(5):  # the injection's last step may finish just after the run
                await injected.wait()
            if not injected.is_set():
                result.problems.append("the run ended before its fault was injected")
                group.cancel_scope.cancel()
        return values

    async def _inject(self, spec: RunSpec, result: RunResult) -> None:
        fault = KINDS[spec.kind].fault
        thread_id = result.thread_id
        if fault == "cancel":
            await self.target.records.wait_for(
                tool="slow", phase="start", thread_id=thread_id, within=self.run_timeout
            )
            await self.client.runs.cancel(thread_id, result.run_id, action="interrupt")
            result.faults["cancellations"] += 1
        elif fault == "cancel-early":  # as soon as the run executes: mostly while it connects
            # The Agent Server's run status: poll it.
            while (await self.client.runs.get(thread_id, result.run_id))["status"] == "pending":  # noqa: ASYNC110
                await anyio.sleep(0.02)
            await self.client.runs.cancel(thread_id, result.run_id, action="interrupt")
            result.faults["cancellations"] += 1
        elif fault == "http-kill":
            await self.target.flaky_records.wait_for(
                tool="slow", phase="start", thread_id=thread_id, within=self.run_timeout
            )
            await anyio.to_thread.run_sync(self.target.flaky.kill_and_restart)
            result.faults["HTTP server kills"] += 1
        elif fault == "stdio-kill":
            # Kill the reconnected server once its `add` answer is in the thread (its record comes earlier).
            await self._answered(thread_id, "local_add")
            add = await self.target.records.wait_for(tool="add", thread_id=thread_id, within=self.run_timeout)
            pid = int(add["pid"])
            if pid not in descendants(self.target.agent_pid):
                result.problems.append(
                    f"the stdio server {describe_process(pid)} is no child of the Agent Server"
                )
            else:
                os.kill(pid, signal.SIGKILL)
                with anyio.fail_after(10):
                    while not dead(pid):  # noqa: ASYNC110 - a process of another program: poll /proc
                        await anyio.sleep(0.02)
                result.faults["stdio kills"] += 1
        if spec.gate is not None:
            await (anyio.Path(self.target.gates) / spec.gate).touch()

    async def _answered(self, thread_id: str, tool: str) -> None:
        """Poll the thread's state until it holds the answer of ``tool`` (bounded by the run's deadline)."""
        while True:
            state: Any = await self.client.threads.get_state(thread_id)
            values: Any = state.get("values") if isinstance(state, dict) else None
            messages: list[Any] = values.get("messages", []) if isinstance(values, dict) else []
            if any(
                isinstance(m, dict) and m.get("type") == "tool" and m.get("name") == tool for m in messages
            ):
                return
            await anyio.sleep(0.05)

    async def _unstick(self, result: RunResult) -> None:
        """After a hang: open the run's gate and cancel it, so it does not hold the server."""
        with anyio.move_on_after(10):
            if result.spec.gate is not None:
                await (anyio.Path(self.target.gates) / result.spec.gate).touch()
            await self.client.runs.cancel(result.thread_id, result.run_id, action="interrupt")

    async def _check(self, result: RunResult) -> None:
        spec, problems = result.spec, result.problems
        if result.status != spec.status:
            problems.append(f"status {result.status!r}, expected {spec.status!r}")
        tools = [m for m in result.messages if m.get("type") == "tool"]
        for message in tools:
            text = text_of(message.get("content"))
            if message.get("status") == "error" and "call_timeout=" in text:
                result.faults["timeouts"] += 1
            if message.get("name") == "local_crash" and message.get("status") == "error":
                result.faults["stdio crashes"] += 1
        if spec.status == "success":
            got = [(m.get("name"), m.get("status"), text_of(m.get("content"))) for m in tools]
            wanted = [(e.tool, "success" if e.ok else "error", e.pattern) for e in spec.expected]
            matches = len(got) == len(wanted) and all(
                g[0] == w[0] and g[1] == w[1] and re.search(w[2], g[2])
                for g, w in zip(got, wanted, strict=True)
            )
            if not matches:
                problems.append(f"tool messages {got}, expected {wanted}")
        if spec.new_process is not None:
            first, later = spec.new_process
            records = self.target.flaky_records if spec.kind == "http-kill" else self.target.records
            steady = self.target.remote_pid  # its calls (remote_add) are not the ones to compare
            pids = {
                tool: {
                    e["pid"]
                    for e in records.entries(tool=tool, thread_id=result.thread_id)
                    if e["pid"] != steady
                }
                for tool in (first, later)
            }
            if len(pids[first]) == 1 and len(pids[later]) == 1 and pids[first] != pids[later]:
                result.faults["reconnects"] += 1
            else:
                problems.append(f"{first!r} and {later!r} calls came from processes {pids}, expected two")
        started = self._remote_slow(result.thread_id, "start")
        if spec.kind == "cancel-early" and not started():
            result.faults["cancellations before any call"] += 1
        elif spec.cancelled_remote or spec.kind == "cancel-early":
            try:
                await poll_until(self._remote_slow(result.thread_id, "cancelled"), within=10)
            except TimeoutError:
                problems.append("the HTTP echo server did not see its slow call cancelled within 10s")

    def _remote_slow(self, thread_id: str, phase: str) -> Callable[[], bool]:
        """Whether the steady HTTP echo server recorded the ``phase`` of a ``slow`` call of the thread."""
        records, remote = self.target.records, self.target.remote_pid

        def recorded() -> bool:
            entries = records.entries(tool="slow", phase=phase, thread_id=thread_id)
            return any(e["pid"] == remote for e in entries)

        return recorded


# --- the soak --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoakReport:
    """What a soak run found."""

    runs: int
    concurrency: int
    jobs: int | None
    wall_time: float
    warmup: tuple[RunResult, ...]
    results: tuple[RunResult, ...]
    initial: Snapshot
    """Before any run."""
    baseline: Snapshot
    """After the warm-up, once steady: what the Agent Server must settle back to."""
    peak: Snapshot
    after: Snapshot
    settle_time: float
    run_timeout: float
    agent_pid: int

    @property
    def unexpected(self) -> list[RunResult]:
        """Runs (warm-up included) that ended, but not as their kind must."""
        return [r for r in (*self.warmup, *self.results) if not r.hang and r.problems]

    @property
    def hangs(self) -> list[RunResult]:
        """Runs (warm-up included) that did not end within ``run_timeout``."""
        return [r for r in (*self.warmup, *self.results) if r.hang]

    @property
    def leaked_processes(self) -> frozenset[int]:
        return self.after.processes - self.baseline.processes

    @property
    def leaked_fds(self) -> int:
        return max(0, self.after.fds - self.baseline.fds)

    @property
    def faults(self) -> Counter[str]:
        """Faults with evidence, over the soak's runs (not the warm-up)."""
        total: Counter[str] = Counter()
        for result in self.results:
            total.update(result.faults)
        return total

    @property
    def ok(self) -> bool:
        """Every run ended as expected and nothing leaked."""
        return not self.unexpected and not self.hangs and not self.leaked_processes and not self.leaked_fds

    def render(self, limit: int = 20) -> str:
        """The report as text, with the first ``limit`` unexpected outcomes and hangs."""
        outcomes = Counter(r.spec.kind for r in self.results if r.expected)
        failures = Counter(r.spec.kind for r in self.unexpected)
        width = max(len(k.outcome) for k in KINDS.values())
        slowest = max(self.results, key=lambda r: r.seconds, default=None)
        lines = [
            f"soak run: {self.runs} runs, {self.concurrency} in flight, Agent Server running "
            f"{self.jobs or 1} at once; {self.wall_time:.1f}s wall "
            f"({self.wall_time / max(self.runs, 1):.2f}s per run"
            + (f", slowest {slowest.seconds:.1f}s: {slowest.spec.kind})" if slowest else ")"),
            f"  warm-up:             {len(self.warmup)} runs (one of each kind), "
            f"{sum(r.expected for r in self.warmup)} as expected",
            "  outcomes (as expected / runs of the kind):",
        ]
        for name, kind in KINDS.items():
            planned = sum(r.spec.kind == name for r in self.results)
            lines.append(f"    {kind.outcome:<{width}}  {outcomes[name]:>4} / {planned}")
        faults = self.faults
        lines += [
            "  faults with evidence: "
            + ", ".join(
                f"{name} {faults[name]}"
                for name in (
                    "timeouts",
                    "stdio crashes",
                    "stdio kills",
                    "HTTP server kills",
                    "cancellations",
                    "cancellations before any call",
                )
            ),
            f"  reconnects:          {faults['reconnects']} "
            "(a call after a crash or kill answered by a new process)",
            f"  unexpected outcomes: {len(self.unexpected)}"
            + (f" ({', '.join(f'{k} {v}' for k, v in sorted(failures.items()))})" if failures else ""),
            f"  hangs:               {len(self.hangs)} (no end within {self.run_timeout:g}s)",
            f"  leaked processes:    {len(self.leaked_processes)} (Agent Server descendants: "
            f"before any run {len(self.initial.processes)}, baseline {len(self.baseline.processes)}, "
            f"peak {len(self.peak.processes)}, after {len(self.after.processes)})",
            f"  leaked descriptors:  {self.leaked_fds} (Agent Server pid {self.agent_pid} open fds: "
            f"before any run {self.initial.fds}, baseline {self.baseline.fds}, peak {self.peak.fds}, "
            f"after {self.after.fds}; "
            f"settled in {self.settle_time:.1f}s)",
            f"  wall time:           {self.wall_time:.1f}s",
        ]
        for result in [*self.unexpected, *self.hangs][:limit]:
            what = "hang" if result.hang else "; ".join(result.problems)
            lines.append(
                f"    run {result.spec.index} ({result.spec.kind}, thread {result.thread_id}): {what}"
            )
            tools = [m for m in result.messages if m.get("type") == "tool"]
            lines += [
                f"      {m.get('name')} {m.get('status')}: {text_of(m.get('content'))[:300]}" for m in tools
            ]
        lines += [f"    leaked: {describe_process(pid)}" for pid in sorted(self.leaked_processes)[:limit]]
        return "\n".join(lines)


@asynccontextmanager
async def _sampling(pid: int, peak: list[Snapshot]) -> AsyncGenerator[None, None]:
    """Track the most processes and descriptors ``pid`` holds while the block runs (in ``peak[0]``)."""

    async def sample() -> None:
        while True:
            now = snapshot(pid)
            peak[0] = Snapshot(max(peak[0].processes, now.processes, key=len), max(peak[0].fds, now.fds))
            await anyio.sleep(0.2)

    async with anyio.create_task_group() as group:
        group.start_soon(sample)
        yield
        group.cancel_scope.cancel()


async def _drive(
    target: SoakTarget, specs: Sequence[RunSpec], *, concurrency: int, run_timeout: float
) -> list[RunResult]:
    """Run ``specs``, ``concurrency`` at a time, through one client closed at the end."""
    results: list[RunResult] = []
    limiter = anyio.CapacityLimiter(concurrency)
    async with get_client(url=target.url, api_key=None) as client:
        driver = Driver(target, client, run_timeout=run_timeout)

        async def one(spec: RunSpec) -> None:
            async with limiter:
                results.append(await driver.run(spec))

        async with anyio.create_task_group() as group:
            for spec in specs:
                group.start_soon(one, spec)
    return sorted(results, key=lambda r: r.spec.index)


async def run_soak(
    target: SoakTarget,
    *,
    runs: int,
    concurrency: int = 8,
    jobs: int | None = None,
    run_timeout: float = 120.0,
    settle_timeout: float = 60.0,
    seed: int = 0,
) -> SoakReport:
    """Warm up, take the baseline, drive ``runs`` runs, let the Agent Server settle, and report.

    Args:
        target: The running servers (`soak_servers`).
        runs: How many runs, after the warm-up.
        concurrency: Runs in flight at once.
        jobs: Runs the Agent Server executes at once (for the report).
        run_timeout: Seconds a run may take, from its creation to its end, before it counts as a hang.
        settle_timeout: Seconds the Agent Server may take to give back processes and descriptors.
        seed: Seed of the order of the kinds.
    """
    pid = target.agent_pid
    initial = await steady(pid, within=settle_timeout)
    warmup = await _drive(target, warmup_plan(), concurrency=concurrency, run_timeout=run_timeout)
    baseline = await steady(pid, within=settle_timeout)
    peak = [baseline]
    started = time.monotonic()
    async with _sampling(pid, peak):
        results = await _drive(
            target, plan(runs, seed=seed), concurrency=concurrency, run_timeout=run_timeout
        )
    wall_time = time.monotonic() - started
    after, settle_time = await settled(pid, baseline, within=settle_timeout)
    return SoakReport(
        runs=runs,
        concurrency=concurrency,
        jobs=jobs,
        wall_time=wall_time,
        warmup=tuple(warmup),
        results=tuple(results),
        initial=initial,
        baseline=baseline,
        peak=peak[0],
        after=after,
        settle_time=settle_time,
        run_timeout=run_timeout,
        agent_pid=pid,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=300, help="how many runs after the warm-up (default 300)")
    parser.add_argument("--concurrency", type=int, default=8, help="runs in flight (default 8)")
    parser.add_argument(
        "--jobs", type=int, default=4, help="runs the Agent Server executes at once (default 4)"
    )
    parser.add_argument("--run-timeout", type=float, default=120.0, help="seconds before a run is a hang")
    parser.add_argument("--seed", type=int, default=0, help="seed of the order of the kinds of runs")
    parser.add_argument("--keep", type=Path, help="keep logs and records in this directory")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        if args.keep is not None:
            directory: Path = args.keep.resolve()
            directory.mkdir(parents=True, exist_ok=False)
        else:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mcpbridge-soak-")))
        try:
            with soak_servers(directory, jobs=args.jobs) as target:
                soak = functools.partial(
                    run_soak,
                    target,
                    runs=args.runs,
                    concurrency=args.concurrency,
                    jobs=args.jobs,
                    run_timeout=args.run_timeout,
                    seed=args.seed,
                )
                report = anyio.run(soak)
        except RuntimeError as exc:  # a server did not start
            print(f"could not run: {exc}", file=sys.stderr)
            return 1
        print(report.render())
        if not report.ok:
            print(f"--- Agent Server log (tail) ---\n{tail(target.log, 80)}", file=sys.stderr)
    return 0 if report.ok else 1
