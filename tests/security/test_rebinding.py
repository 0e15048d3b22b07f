"""A user cannot reach refused addresses by DNS rebinding, nor scan ports through registered servers.

Rebinding: the allow-listed target is the example echo server on ``127.0.0.2:P``; a
tripwire on ``127.0.0.3:P`` (the same port, an address the policy refuses) records every
connection. The attacker registers servers whose names (simulated DNS, in this process)
answer ``127.0.0.2`` to the registration check and ``127.0.0.3`` afterwards. Their runs
reach the echo server only, every connection's peer is an address the policy checked,
and the tripwire records nothing; with the connection-time check off (the URL checked
at registration only, as before) the same names reach the tripwire.

Port scanning: registered URLs pointing at a closed port, an open port that is not MCP
and a silent one give the user one text; the deployment's log has each detail. As
deployment servers (the protection off) the same URLs give three different texts.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.messages import ToolMessage
from langgraph.store.memory import InMemoryStore

from mcpbridge import Bridge, HttpServer, ServerFailure, UrlPolicy
from mcpbridge.scoping import RegisteredServers, Selection, UserContext, UserServers
from tests.integration.support import HttpServerProcess, SilentListener, free_port, start_http_server
from tests.security.dns import SimulatedDns
from tests.security.network import NotMcp, Tripwire, start_echo_at

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TARGET = "127.0.0.2"
"""The allow-listed address: the echo server listens here."""
REFUSED = "127.0.0.3"
"""An address the policy refuses: the tripwire listens here, on the same port."""
STEADY = "notes.rebind.test"
"""Answers the target to the registration check, then the refused address first and the target second."""
FLIP = "flip.rebind.test"
"""Answers the target to the registration check, then only the refused address."""
CALL_TIMEOUT = 20.0
RUN_TIMEOUT = 30.0


def simulated_dns() -> SimulatedDns:
    return SimulatedDns({STEADY: [[TARGET], [REFUSED, TARGET]], FLIP: [[TARGET], [REFUSED]]})


@dataclass
class Target:
    port: int
    echo: HttpServerProcess
    tripwire: Tripwire

    @property
    def policy(self) -> UrlPolicy:
        """Admits the echo server's address on its port only."""
        return UrlPolicy(allow=[f"{TARGET}/32:{self.port}"], require_https=False)

    def url(self, host: str) -> str:
        return f"http://{host}:{self.port}/mcp"


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    """The echo server on 127.0.0.2:P and a tripwire on 127.0.0.3:P (P picked by the tripwire)."""
    problems: list[str] = []
    for _ in range(3):
        with Tripwire(REFUSED) as tripwire:
            try:
                with start_echo_at(TARGET, tripwire.port, tmp_path) as echo:
                    yield Target(tripwire.port, echo, tripwire)
                    return
            except RuntimeError as exc:  # the port is taken on 127.0.0.2: another port
                problems.append(str(exc))
    raise RuntimeError("could not start the rebinding target:\n" + "\n".join(problems))


def alice(store: InMemoryStore) -> UserContext:
    return UserContext.from_user({"identity": "alice", "permissions": []}, store)


async def register(store: InMemoryStore, name: str, url: str) -> None:
    await store.aput(("alice", "mcp_servers"), name, {"url": url})


@dataclass
class Run:
    failures: Mapping[str, ServerFailure]
    results: list[str] = field(default_factory=list[str])


async def run(selection: Selection, user: UserContext, *, calls: int) -> Run:
    """One run as the factory makes it (a Bridge of the selection): ``calls`` calls of ``notes``' ``add``."""
    with anyio.fail_after(RUN_TIMEOUT):
        async with Bridge(
            selection.servers, guests=selection.registered, refused=selection.refused, user=user.identity
        ) as bridge:
            outcome = Run(bridge.failures)
            tools = {(tool.server, tool.mcp_name): tool for tool in bridge.tools}
            config: dict[str, Any] = {
                "configurable": {"thread_id": str(uuid.uuid4()), "langgraph_auth_user_id": user.identity}
            }
            for index in range(calls):
                call = {
                    "name": "add",
                    "args": {"a": index, "b": 1},
                    "id": f"call-{index}",
                    "type": "tool_call",
                }
                with anyio.fail_after(CALL_TIMEOUT):
                    message = await tools["notes", "add"].ainvoke(call, config)  # pyright: ignore[reportArgumentType]
                assert isinstance(message, ToolMessage)
                assert message.status == "success", message.content
                outcome.results.append(str(message.text))
    return outcome


def connected_peers(records: list[logging.LogRecord]) -> list[tuple[str, int, str]]:
    """(address, port, host) of every connection the checking backend opened."""
    return [
        (str(r.args[0]), int(r.args[1]), str(r.args[2]))  # pyright: ignore[reportArgumentType, reportOptionalSubscript, reportIndexIssue]
        for r in records
        if r.name == "mcpbridge.network" and str(r.msg).startswith("connected to")
    ]


async def test_rebinding_names_never_reach_the_refused_address(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mcpbridge.network")
    store = InMemoryStore()
    await register(store, "notes", target.url(STEADY))
    await register(store, "flip", target.url(FLIP))
    policy = target.policy
    servers = UserServers([], registered=RegisteredServers(policy=policy, connect_timeout=5))
    calls = target.echo.records.view()
    with simulated_dns() as dns:
        selection = await servers.select(alice(store))  # the registration check: both names answer TARGET
        assert {s.name for s in selection.servers} == {"notes", "flip"}, selection.refused
        # Connections after the check, as a second run of a pooled or reconnecting session makes them:
        # every lookup from now on is rebound.
        first = await run(selection, alice(store), calls=3)
        second = await run(selection, alice(store), calls=2)
        recheck = await servers.select(alice(store))

    assert first.results == ["1.0", "2.0", "3.0"] and second.results == ["1.0", "2.0"]
    assert len(calls.entries(tool="add")) == 5  # the echo server's own record
    assert dns.lookups[STEADY] >= 3, dns.lookups  # the check, then a lookup per connection, rebound
    # FLIP resolves only to the refused address after its check: it never connects, and the user is
    # told one fixed text, without any address.
    for failure in (first.failures["flip"], second.failures["flip"]):
        assert "could not be connected" in failure.reason
        assert REFUSED not in failure.reason and TARGET not in failure.reason
    # A new check sees the rebound answers and refuses both names, naming no address either.
    assert {f.server for f in recheck.refused} == {"notes", "flip"}
    for failure in recheck.refused:
        assert "does not resolve to public addresses" in failure.reason and REFUSED not in failure.reason
    peers = connected_peers(caplog.records)
    assert len(peers) >= 2, peers  # at least one connection per run
    for address, port, host in peers:
        assert address == TARGET and port == target.port, peers
        assert policy.connect_refusal(host, port, address) is None
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused a connection")]
    assert any(REFUSED in message and FLIP in message for message in refused), refused
    assert any(REFUSED in message and STEADY in message for message in refused), refused
    assert await target.tripwire.canary() == []  # nothing but the test's own canary reached it


async def test_control_without_the_connection_check_the_same_names_reach_the_tripwire(target: Target) -> None:
    """The same names and policy, the URL checked at registration only: the rebinding reaches 127.0.0.3."""
    policy = target.policy
    with simulated_dns():
        for name in (STEADY, FLIP):
            await policy.check(target.url(name), server=name.split(".")[0])  # the check passes (127.0.0.2)
        servers = [
            HttpServer(name=name.split(".")[0], url=target.url(name), required=False, connect_timeout=2)
            for name in (STEADY, FLIP)
        ]
        with anyio.fail_after(RUN_TIMEOUT):
            async with Bridge(servers) as bridge:
                assert bridge.failures  # the tripwire never answers
    reached = await target.tripwire.canary()
    assert reached, "the unchecked connections should have reached the tripwire"
    assert all(peer[0] == "127.0.0.1" for peer in reached)  # from this process


# --- port scanning -------------------------------------------------------------------------------


@pytest.fixture
def scan_targets() -> Iterator[dict[str, str]]:
    """A closed port, an open port serving something else than MCP, and a silent one, on 127.0.0.1."""
    with NotMcp() as web, SilentListener() as silent:
        yield {
            "closed": f"http://127.0.0.1:{free_port()}/mcp",
            "web": f"http://127.0.0.1:{web.port}/mcp",
            "silent": silent.url,
        }


def normalized(failures: Mapping[str, ServerFailure], urls: Mapping[str, str]) -> set[str]:
    """The distinct reasons, each with its server's name and URL taken out (they differ anyway)."""
    return {
        failures[name].reason.replace(url, "<url>").replace(repr(name), "<server>")
        for name, url in urls.items()
    }


async def test_registered_servers_do_not_tell_a_closed_port_from_an_open_or_silent_one(
    scan_targets: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    store = InMemoryStore()
    for name, url in scan_targets.items():
        await register(store, name, url)
    policy = UrlPolicy(allow=["127.0.0.1:*"], require_https=False)
    servers = UserServers([], registered=RegisteredServers(policy=policy, connect_timeout=2))
    outcome = await run(await servers.select(alice(store)), alice(store), calls=0)

    assert set(outcome.failures) == set(scan_targets)
    texts = normalized(outcome.failures, scan_targets)
    assert len(texts) == 1, texts  # one text, whatever the port did
    [text] = texts
    for url in scan_targets.values():
        assert url.split(":")[2].split("/")[0] not in text  # no port
    details = {
        name: [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING and repr(name) in r.getMessage()
        ]
        for name in scan_targets
    }
    assert all(details.values()), details  # the deployment's log has each server's detail
    assert "connect_timeout" in " ".join(details["silent"])
    assert len({" ".join(d).replace(n, "") for n, d in details.items()}) == 3, details


async def test_control_deployment_servers_keep_their_detailed_reasons(scan_targets: dict[str, str]) -> None:
    """The same URLs as the deployment's own servers (no URL policy): three different reasons."""
    servers = [
        HttpServer(name=name, url=url, required=False, connect_timeout=2)
        for name, url in scan_targets.items()
    ]
    with anyio.fail_after(RUN_TIMEOUT):
        async with Bridge(servers) as bridge:
            failures = bridge.failures
    assert len(normalized(failures, scan_targets)) == 3, failures


@pytest.mark.parametrize("registered", [True, False], ids=["registered", "control-deployment"])
async def test_tool_errors_of_a_registered_server_do_not_tell_how_its_connection_failed(
    registered: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server dies during a call; the next call's reconnect is refused: the model is told one text."""
    echo = start_http_server("echo", tmp_path)
    try:
        if registered:
            store = InMemoryStore()
            await register(store, "notes", echo.url)
            policy = UrlPolicy(allow=[f"127.0.0.1:{echo.port}"], require_https=False)
            selection = await UserServers([], registered=RegisteredServers(policy=policy)).select(
                alice(store)
            )
        else:
            selection = Selection(servers=(HttpServer(name="notes", url=echo.url, required=False),))
        with anyio.fail_after(RUN_TIMEOUT):
            async with Bridge(selection.servers, guests=selection.registered) as bridge:
                tools = {tool.mcp_name: tool for tool in bridge.tools}
                config: dict[str, Any] = {"configurable": {"thread_id": str(uuid.uuid4())}}
                crash = {"name": tools["crash"].name, "args": {}, "id": "call-1", "type": "tool_call"}
                await tools["crash"].ainvoke(crash, config)  # pyright: ignore[reportArgumentType]
                echo.process.wait(timeout=10)  # gone: the port is closed now
                add = {
                    "name": tools["add"].name,
                    "args": {"a": 1, "b": 2},
                    "id": "call-2",
                    "type": "tool_call",
                }
                message = await tools["add"].ainvoke(add, config)  # pyright: ignore[reportArgumentType]
    finally:
        echo.stop()
    assert isinstance(message, ToolMessage) and message.status == "error"
    text = str(message.content)
    if registered:
        assert "could not be connected, or did not answer as an MCP server" in text, text
        assert str(echo.port) not in text and "refused" not in text.lower()
        logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("cannot reach" in m and str(echo.port) in m for m in logged), logged  # the detail
    else:
        assert "cannot reach" in text and str(echo.port) in text, text  # the deployment's detail
