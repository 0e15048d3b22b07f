"""Replicas of ``mcpbridge serve`` behind round-robin, sharing one real Postgres and the sealing keys.

Two ``mcpbridge serve --checkpointer postgres://...`` processes serve the same
graphs with the same ``MCPBRIDGE_REQUEST_STATE_KEYS``. 2026-era (stateless) mcp
clients alternate between them: a thread goes on whichever replica answers, a
sealed input request is taken by the other replica, two calls on one thread
through both replicas give one run, and a killed replica leaves its thread usable.
The ``gate`` graph holds a run at the test's TCP gate until the test lets it go.
The Postgres server is the system's (`tests.support.postgres`), started for this module;
the replicas start together, so both set its fresh database up at once.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncGenerator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import psycopg
import pytest
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, MCPError
from mcp.client.context import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client

from mcpbridge.serving.threadlocks import PostgresThreadLocks, open_thread_locks
from tests.integration.support import RecordFile, poll_until
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.processes import free_port

from .conftest import ServeProcess, http_client, serve_env, start_serve
from .graphs import GATE_ENV

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(240)]

THREADS = 20
CALLS_PER_THREAD = 10
CALL_TIMEOUT = 60.0
GRAPHS = ["memo=tests.serve.graphs:memo", "gate=tests.serve.graphs:gate", "ask=tests.serve.graphs:ask"]


def text(result: types.CallToolResult) -> str:
    first = result.content[0] if result.content else None
    return first.text if isinstance(first, types.TextContent) else ""


def thread_of(result: types.CallToolResult) -> str:
    assert result.structured_content is not None, text(result)
    return str(result.structured_content["thread_id"])


@dataclass
class Deployment:
    """What every replica is started with: the database, the sealing keys, the gate's port."""

    postgres: PostgresServer
    directory: Path
    records: RecordFile
    env: dict[str, str]

    def start(self, **env: str) -> ServeProcess:
        """A replica (``env``: variables that differ from the others')."""
        args = [*GRAPHS, "--checkpointer", self.postgres.url]
        return start_serve(args, self.directory, {**self.env, **env}, self.records)

    @property
    def gate_port(self) -> int:
        return int(self.env[GATE_ENV])


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("replicas")
    records = RecordFile(directory / "calls.jsonl")
    keys = secrets.token_urlsafe(32)
    env = serve_env(records, MCPBRIDGE_REQUEST_STATE_KEYS=keys, **{GATE_ENV: str(free_port())})
    with postgres_server() as postgres:
        yield Deployment(postgres, directory, records, env)


@pytest.fixture(scope="module")
def replicas(deployment: Deployment) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    """Two replicas started together: both set the fresh database up at once."""
    with ThreadPoolExecutor(2) as pool:
        starts = [pool.submit(deployment.start) for _ in range(2)]
    started = [start.result() for start in starts if start.exception() is None]
    try:
        for start in starts:
            if start.exception() is not None:
                raise RuntimeError("a replica did not start") from start.exception()
        yield started[0], started[1]
    finally:
        for served in started:
            served.stop()


@pytest.fixture(scope="module")
def replica_a(replicas: tuple[ServeProcess, ServeProcess]) -> ServeProcess:
    return replicas[0]


@pytest.fixture(scope="module")
def replica_b(replicas: tuple[ServeProcess, ServeProcess]) -> ServeProcess:
    return replicas[1]


@asynccontextmanager
async def clients(a: ServeProcess, b: ServeProcess) -> AsyncGenerator[tuple[Client, Client], None]:
    """A 2026-era (stateless) client of each replica."""
    async with http_client(a.url) as of_a, http_client(b.url) as of_b:
        yield of_a, of_b


# --- the round-robin balancer, inside the client's HTTP stack ------------------------------------


@dataclass
class Hit:
    replica: int
    method: str
    request_state: bool


class RoundRobin(httpx2.AsyncBaseTransport):
    """Sends each HTTP request to the next replica in turn, as a balancer without sticky sessions does."""

    def __init__(self, urls: Sequence[str]) -> None:
        self._targets = [httpx2.URL(url) for url in urls]
        self._next = 0
        self._inner = httpx2.AsyncHTTPTransport()
        self.hits: list[Hit] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        index, self._next = self._next, (self._next + 1) % len(self._targets)
        target = self._targets[index]
        request.url = request.url.copy_with(host=target.host, port=target.port)
        request.headers["host"] = f"{target.host}:{target.port}"
        body: Any = json.loads(request.content) if request.content else {}
        params = body.get("params") or {} if isinstance(body, dict) else {}
        self.hits.append(Hit(index, str(body.get("method", "")), "requestState" in params))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


# --- the gate that holds runs of the ``gate`` graph ------------------------------------------------


@dataclass
class Gate:
    """A TCP listener where held runs wait: each arrival is a thread id; ``open`` lets them all go on."""

    arrivals: list[str] = field(default_factory=list[str])
    arrived: anyio.Event = field(default_factory=anyio.Event)
    opened: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, stream: SocketStream) -> None:
        async with stream:
            line = await BufferedByteReceiveStream(stream).receive_until(b"\n", 200)
            self.arrivals.append(line.decode())
            self.arrived.set()
            await self.opened.wait()
            await stream.send(b"go\n")


@asynccontextmanager
async def gate_on(port: int) -> AsyncGenerator[Gate, None]:
    gate = Gate()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, gate.handle)
        try:
            yield gate
        finally:
            gate.opened.set()
            group.cancel_scope.cancel()


def advisory_locks(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
    return int(row[0]) if row else 0


def backend_alive(url: str, pid: int) -> bool:
    """Whether the Postgres backend ``pid`` still runs or holds locks."""
    query = (
        "SELECT pid FROM pg_stat_activity WHERE pid = %s UNION ALL SELECT pid FROM pg_locks WHERE pid = %s"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, (pid, pid)).fetchone() is not None


# --- the tests ------------------------------------------------------------------------------------


async def test_threads_go_on_whichever_replica_answers(
    replica_a: ServeProcess, replica_b: ServeProcess
) -> None:
    """200 calls over 20 threads, each thread alternating replicas: no message lost or crossed."""
    replies: dict[int, list[str]] = {t: [] for t in range(THREADS)}
    threads: dict[int, str] = {}

    async def converse(pair: tuple[Client, Client], t: int) -> None:
        for i in range(CALLS_PER_THREAD):
            replica = (t + i) % 2
            arguments: dict[str, Any] = {"message": f"t{t}m{i}"}
            if i:
                arguments["thread_id"] = threads[t]
            result = await pair[replica].call_tool("memo", arguments)
            assert not result.is_error, text(result)
            if i:
                assert thread_of(result) == threads[t]
            else:
                threads[t] = thread_of(result)
            replies[t].append(text(result))

    with anyio.fail_after(CALL_TIMEOUT * 3):
        async with clients(replica_a, replica_b) as pair, anyio.create_task_group() as group:
            for t in range(THREADS):
                group.start_soon(converse, pair, t)

    assert len(set(threads.values())) == THREADS
    for t in range(THREADS):
        # Each answer lists the thread's own messages, all of them, in order.
        expected = [
            f"you said: {' | '.join(f't{t}m{j}' for j in range(i + 1))}" for i in range(CALLS_PER_THREAD)
        ]
        assert replies[t] == expected


class Human:
    """Answers the ``ask`` graph's two questions."""

    async def __call__(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        assert isinstance(params, types.ElicitRequestFormParams)
        [name] = params.requested_schema["properties"]
        return types.ElicitResult(action="accept", content={name: {"answer": "Ada", "city": "Oslo"}[name]})


async def test_a_sealed_input_request_is_answered_through_the_other_replica(
    replica_a: ServeProcess, replica_b: ServeProcess
) -> None:
    balancer = RoundRobin([replica_a.url, replica_b.url])
    with anyio.fail_after(CALL_TIMEOUT):
        async with httpx2.AsyncClient(transport=balancer, timeout=httpx2.Timeout(30, read=120)) as http:
            async with Client(
                streamable_http_client(replica_a.url, http_client=http), elicitation_callback=Human()
            ) as client:
                result = await client.call_tool("ask", {"message": "hi"})
    assert text(result) == "Ada lives in Oslo", text(result)
    calls = [hit for hit in balancer.hits if hit.method == "tools/call"]
    # The call, then one retry per question, each carrying the state the previous replica sealed.
    assert [hit.request_state for hit in calls] == [False, True, True]
    assert [hit.replica for hit in calls] in ([0, 1, 0], [1, 0, 1])
    answered = [e["answer"] for e in replica_a.records.entries(tool="ask", thread_id=thread_of(result))]
    assert answered == ["Ada", "Ada", {"city": "Oslo"}]  # the node runs again from its start on each resume


async def test_a_replica_with_other_keys_refuses_the_sealed_request(
    deployment: Deployment, replica_a: ServeProcess
) -> None:
    """What the shared keys buy: without them, the retry that reaches the other replica is refused."""
    records = deployment.records.view()
    stranger = deployment.start(MCPBRIDGE_REQUEST_STATE_KEYS=secrets.token_urlsafe(32))
    try:
        balancer = RoundRobin([replica_a.url, stranger.url])
        with anyio.fail_after(CALL_TIMEOUT):
            async with httpx2.AsyncClient(transport=balancer, timeout=httpx2.Timeout(30, read=120)) as http:
                async with Client(
                    streamable_http_client(replica_a.url, http_client=http), elicitation_callback=Human()
                ) as client:
                    with pytest.raises(MCPError, match="requestState"):
                        await client.call_tool("ask", {"message": "hi"})
    finally:
        stranger.stop()
    calls = [hit for hit in balancer.hits if hit.method == "tools/call"]
    # The call, then its retry, which the replica that did not seal the state refuses.
    assert [hit.request_state for hit in calls] == [False, True]
    assert calls[0].replica != calls[1].replica
    assert records.entries(tool="ask") == []  # nothing resumed


async def test_two_calls_on_one_thread_through_two_replicas_give_one_run(
    deployment: Deployment, replica_a: ServeProcess, replica_b: ServeProcess
) -> None:
    busy: list[types.CallToolResult] = []
    done: list[types.CallToolResult] = []
    answered = anyio.Event()

    async def call(client: Client, message: str, thread_id: str) -> None:
        result = await client.call_tool("gate", {"message": message, "thread_id": thread_id})
        (busy if "is busy with another call" in text(result) else done).append(result)
        answered.set()

    with anyio.fail_after(CALL_TIMEOUT):
        async with clients(replica_a, replica_b) as pair, gate_on(deployment.gate_port) as gate:
            thread_id = thread_of(await pair[0].call_tool("gate", {"message": "hello"}))
            async with anyio.create_task_group() as group:
                group.start_soon(call, pair[0], "wait via a", thread_id)
                group.start_soon(call, pair[1], "wait via b", thread_id)
                await gate.arrived.wait()  # one run holds the thread...
                await answered.wait()  # ...and the other call is refused while it does
                assert len(busy) == 1 and not done, [text(r) for r in busy + done]
                gate.opened.set()
            after = await pair[1].call_tool("gate", {"message": "after", "thread_id": thread_id})

    assert gate.arrivals == [thread_id]
    [run] = done
    assert busy[0].is_error and f"Thread {thread_id} is busy" in text(busy[0])
    winner = text(run).rsplit(" | ", 1)[-1]
    assert winner in ("wait via a", "wait via b")
    assert text(after) == f"you said: hello | {winner} | after"


async def test_a_replica_killed_mid_run_leaves_the_thread_usable(
    deployment: Deployment, replica_b: ServeProcess
) -> None:
    doomed = deployment.start()
    try:
        with anyio.fail_after(CALL_TIMEOUT):
            async with http_client(replica_b.url) as client, gate_on(deployment.gate_port) as gate:
                thread_id = thread_of(await client.call_tool("gate", {"message": "hello"}))

                async def held() -> None:
                    # The replica dies under the call: its client's connection breaks.
                    with pytest.raises(Exception):  # noqa: B017
                        async with http_client(doomed.url) as on_doomed:
                            arguments = {"message": "wait forever", "thread_id": thread_id}
                            await on_doomed.call_tool("gate", arguments)

                async with anyio.create_task_group() as group:
                    group.start_soon(held)
                    await gate.arrived.wait()
                    assert advisory_locks(deployment.postgres.url) == 1  # the run holds its thread
                    doomed.process.kill()
                    await anyio.to_thread.run_sync(doomed.process.wait)
                # Postgres frees the lock when it sees the dead replica's connection close.
                await poll_until(lambda: advisory_locks(deployment.postgres.url) == 0, within=20)
                after = await client.call_tool("gate", {"message": "after", "thread_id": thread_id})
                again = await client.call_tool("gate", {"message": "again", "thread_id": thread_id})
    finally:
        doomed.stop()
    assert not after.is_error, text(after)
    assert thread_of(after) == thread_id
    # The killed call's message may have been saved before its run began; its answer never was.
    assert text(after) in ("you said: hello | after", "you said: hello | wait forever | after")
    assert text(again) == f"{text(after)} | again"
    assert gate.arrivals == [thread_id]


async def test_thread_locks_are_shared_through_postgres_and_outlive_a_lost_connection(
    deployment: Deployment,
) -> None:
    url = deployment.postgres.url
    async with open_thread_locks(url) as one, open_thread_locks(url) as two:
        assert isinstance(one, PostgresThreadLocks)
        async with one.claim(("ada", "t")) as first:
            async with two.claim(("ada", "t")) as same, two.claim(("bob", "t")) as other_user:
                assert (first, same, other_user) == (True, False, True)
        async with two.claim(("ada", "t")) as released:
            assert released
        async with one.claim(("ada", "u")) as held:
            assert held
            # Postgres loses the connection (a restart, a cut network): its locks go with it...
            pid = one._conn.info.backend_pid
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))  # signals it, and returns
            await poll_until(lambda: not backend_alive(url, pid), within=20)
            async with two.claim(("ada", "u")) as freed:
                assert freed
        # ...and the next claim opens a new one.
        async with one.claim(("ada", "v")) as again, two.claim(("ada", "v")) as busy:
            assert (again, busy) == (True, False)
