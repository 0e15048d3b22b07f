"""Signed identity end to end: the echo example server verifies every call, over stdio and HTTP, in both eras.

The server runs as a real subprocess with ``MCPBRIDGE_IDENTITY_SECRET`` set, so it
accepts only ``tools/call`` requests whose signed identity verifies for its audience.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig

from mcpbridge import Bridge, HttpServer, IdentityMeta, IdentitySigner, ServerConfig, StdioServer

from .graphs import call, run_config, run_tool_calls, text_of, thread_of, tool_graph
from .support import (
    PROTOCOL_VERSIONS,
    RECORD_ENV,
    ROOT,
    THREAD_KEY,
    USER_KEY,
    ChildProcesses,
    HttpServerProcess,
    Protocol,
    RecordFile,
    Transport,
    start_http_server,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

SECRET_ENV = "MCPBRIDGE_IDENTITY_SECRET"
SECRET = "integration-secret-for-signed-identities-0123456789"
AUDIENCE = "echo-signed"
"""The audience the server is started with (``--audience``); the bridge maps its server name to it."""
NAME = "echo"


def signer(**options: Any) -> IdentitySigner:
    return IdentitySigner(SECRET, audiences={NAME: AUDIENCE}, **options)


def echo_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "tests.support.servers.echo", "--audience", AUDIENCE, *extra]


def start_signed_http_server(directory: Path) -> HttpServerProcess:
    """The echo server over streamable HTTP with a signing secret; waits until it accepts connections."""
    return start_http_server("echo", directory, args=("--audience", AUDIENCE), env={SECRET_ENV: SECRET})


@pytest.fixture(scope="module")
def signed_echo_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServerProcess]:
    server = start_signed_http_server(tmp_path_factory.mktemp("signed-echo-http"))
    try:
        yield server
    finally:
        server.stop()


@dataclass
class SignedEcho:
    """The echo server with signature checks on, as one test reaches it."""

    transport: Transport
    protocol: Protocol
    records: RecordFile
    http: HttpServerProcess | None = None

    def config(self) -> ServerConfig:
        if self.http is not None:
            return HttpServer(name=NAME, url=self.http.url, protocol=self.protocol)
        return StdioServer(
            name=NAME,
            command=sys.executable,
            args=tuple(echo_command()[1:]),
            cwd=ROOT,
            env={RECORD_ENV: str(self.records.path), SECRET_ENV: SECRET},
            protocol=self.protocol,
        )


@pytest.fixture
def signed_echo(
    request: pytest.FixtureRequest, transport: Transport, protocol: Protocol, tmp_path: Path
) -> SignedEcho:
    if transport == "http":
        http: HttpServerProcess = request.getfixturevalue("signed_echo_http")
        return SignedEcho(transport, protocol, http.records.view(), http)
    return SignedEcho(transport, protocol, RecordFile(tmp_path / "signed-echo-calls.jsonl"))


async def run_whoami(
    server: SignedEcho, identity: IdentityMeta, *configs: RunnableConfig
) -> list[ToolMessage]:
    answers: list[ToolMessage] = []
    with anyio.fail_after(30):
        async with Bridge([server.config()], identity=identity) as bridge:
            # Connecting and listing tools need no signature.
            assert bridge.protocol_version(NAME) == PROTOCOL_VERSIONS[server.protocol]
            graph = tool_graph(bridge.tools)
            for i, config in enumerate(configs):
                result = await run_tool_calls(graph, [call("whoami", f"who-{i}")], config)
                answers.append(result[f"who-{i}"])
    return answers


async def test_signed_calls_are_verified(signed_echo: SignedEcho, children: ChildProcesses) -> None:
    configs = [run_config(user="alice"), run_config(user="bob")]
    answers = await run_whoami(signed_echo, IdentityMeta(signer=signer()), *configs)
    children.assert_none_left()  # the stdio server stopped with the bridge

    for config, answer in zip(configs, answers, strict=True):
        assert answer.status == "success", text_of(answer)
        user = config["configurable"]["langgraph_auth_user"]["identity"]  # pyright: ignore[reportTypedDictNotRequiredAccess]
        expected = {"user_id": user, "thread_id": thread_of(config), "run_id": str(config["run_id"])}  # pyright: ignore[reportTypedDictNotRequiredAccess]
        [entry] = signed_echo.records.entries(tool="whoami", thread_id=thread_of(config))
        assert entry["signed"] is True
        assert entry["verified"] == expected
        assert entry["meta"][USER_KEY] == user
        assert entry["protocol"] == PROTOCOL_VERSIONS[signed_echo.protocol]
        # The token travels in the HTTP header too, where there is one.
        assert entry["identity_header"] is (signed_echo.transport == "http")
        assert not any(key.endswith("identity_token") for key in entry["meta"])
        # What the tool answered is what its verifier proved.
        assert answer.artifact["verified"] == expected


async def test_a_signer_without_the_header_is_verified_from_meta(signed_echo: SignedEcho) -> None:
    config = run_config(user="carol")
    [answer] = await run_whoami(signed_echo, IdentityMeta(signer=signer(header=None)), config)
    assert answer.status == "success", text_of(answer)
    [entry] = signed_echo.records.entries(tool="whoami", thread_id=thread_of(config))
    assert entry["verified"]["user_id"] == "carol"
    assert entry["identity_header"] is False


async def test_unsigned_calls_are_rejected_and_never_run(signed_echo: SignedEcho) -> None:
    config = run_config(user="alice")
    with anyio.fail_after(30):
        async with Bridge([signed_echo.config()]) as bridge:
            graph = tool_graph(bridge.tools)
            answers = await run_tool_calls(graph, [call("whoami", "w"), call("add", "a", a=1, b=2)], config)
    for answer in answers.values():
        assert answer.status == "error"
        assert "identity rejected" in text_of(answer)
        assert "no signed identity" in text_of(answer)
    assert signed_echo.records.entries() == []  # neither tool ran


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"audiences": {NAME: "files"}}, "addressed to another server"),
        ({"audiences": {}}, "addressed to another server"),
        ({"issuer": "someone-else"}, "was not issued by"),
    ],
)
async def test_misaddressed_tokens_are_rejected(
    signed_echo: SignedEcho, options: dict[str, Any], reason: str
) -> None:
    config = run_config(user="alice")
    [answer] = await run_whoami(signed_echo, IdentityMeta(signer=IdentitySigner(SECRET, **options)), config)
    assert answer.status == "error"
    assert "identity rejected" in text_of(answer)
    assert reason in text_of(answer)
    assert signed_echo.records.entries() == []


async def test_a_token_from_another_secret_is_rejected(signed_echo: SignedEcho) -> None:
    other = IdentitySigner("another-secret-0123456789-abcdefghijklmnopqrstuv", audiences={NAME: AUDIENCE})
    [answer] = await run_whoami(signed_echo, IdentityMeta(signer=other), run_config(user="alice"))
    assert answer.status == "error"
    assert "signature does not match" in text_of(answer)
    assert signed_echo.records.entries() == []


async def test_concurrent_runs_are_each_verified_as_their_own_user(signed_echo: SignedEcho) -> None:
    configs = [run_config(user=f"user-{i}") for i in range(4)]
    with anyio.fail_after(30):
        async with Bridge([signed_echo.config()], identity=IdentityMeta(signer=signer())) as bridge:
            graph = tool_graph(bridge.tools)
            async with anyio.create_task_group() as runs:
                for config in configs:
                    runs.start_soon(run_tool_calls, graph, [call("whoami"), call("add", a=1, b=2)], config)
    for i, config in enumerate(configs):
        entries = signed_echo.records.entries(thread_id=thread_of(config))
        assert sorted(e["tool"] for e in entries) == ["add", "whoami"]
        for entry in entries:
            assert entry["meta"][THREAD_KEY] == thread_of(config)
            assert entry["verified"] == {
                "user_id": f"user-{i}",
                "thread_id": thread_of(config),
                "run_id": str(config["run_id"]),  # pyright: ignore[reportTypedDictNotRequiredAccess]
            }
            assert entry["identity_header"] is (signed_echo.transport == "http")
