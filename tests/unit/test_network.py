"""The network side of HTTP servers: the checking backend, the response cap, simulated DNS.

Connections here go to listeners of this process on 127.0.0.1 only; names are
answered by a simulated resolver (`tests.security.dns`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httpcore2
import httpx2
import pytest

from mcpbridge import HttpServer, SseServer, UrlPolicy
from mcpbridge._failures import describe_failure
from mcpbridge._network import (
    AddressRefused,
    CallRecord,
    PolicyBackend,
    ResponseCap,
    ResponseTooLarge,
    call_record,
    end_call_record,
    http_client,
    policy_transport,
)
from mcpbridge.pool import pool_key
from mcpbridge.scoping import RegisteredServers, UserContext
from tests.security.dns import DNS_ENV, SimulatedDns, install_from_env

pytestmark = pytest.mark.anyio


@pytest.fixture
async def listener() -> AsyncIterator[int]:
    """A TCP listener on 127.0.0.1 that accepts and closes; yields its port."""
    server = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = server.extra(anyio.abc.SocketAttribute.local_port)

    async def close(stream: anyio.abc.SocketStream) -> None:
        await stream.aclose()

    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, close)
        yield port
        group.cancel_scope.cancel()
    await server.aclose()


# --- the checking backend ------------------------------------------------------------------------


async def test_the_backend_connects_only_to_an_admitted_address(
    listener: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mcpbridge.network")
    backend = PolicyBackend(UrlPolicy(allow=[f"127.0.0.1/32:{listener}"]))
    with SimulatedDns({"svc.test": [["127.0.0.5", "127.0.0.1"]]}) as dns:
        with anyio.fail_after(10):
            stream = await backend.connect_tcp("svc.test", listener, timeout=5)
    try:
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", listener)
    finally:
        await stream.aclose()
    assert dns.lookups["svc.test"] == 1  # resolved once, for this connection
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("refused a connection to 127.0.0.5") and "loopback" in m for m in messages)
    assert any(m.startswith("connected to 127.0.0.1") for m in messages)


async def test_requests_keep_the_name_in_the_host_header() -> None:
    """The backend connects to the checked address; the request still names the host (TLS does too: SNI)."""
    received = bytearray()
    answered = anyio.Event()

    async def answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            while b"\r\n\r\n" not in received:
                received.extend(await stream.receive())
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            answered.set()

    server = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = server.extra(anyio.abc.SocketAttribute.local_port)
    response: httpx2.Response | None = None
    config = HttpServer(
        name="s", url=f"http://svc.test:{port}/mcp", url_policy=UrlPolicy(allow=[f"127.0.0.1/32:{port}"])
    )
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, answer)
        with SimulatedDns({"svc.test": [["127.0.0.1"]]}), anyio.fail_after(10):
            async with http_client(config) as client:
                response = await client.get(config.url)
            await answered.wait()
        group.cancel_scope.cancel()
    await server.aclose()
    assert response is not None and response.text == "ok"
    assert f"host: svc.test:{port}\r\n".encode() in bytes(received).lower()


async def test_the_backend_refuses_when_no_address_is_admitted(listener: int) -> None:
    backend = PolicyBackend(UrlPolicy(allow=[f"127.0.0.1/32:{listener}"]))
    with SimulatedDns({"svc.test": [["127.0.0.5"]]}), anyio.fail_after(10):
        with pytest.raises(AddressRefused) as caught:
            await backend.connect_tcp("svc.test", listener, timeout=5)
        with pytest.raises(AddressRefused):
            await backend.connect_tcp("127.0.0.1", listener + 1 if listener < 65535 else 1, timeout=5)  # port
    assert isinstance(caught.value, httpcore2.ConnectError)
    assert "127.0.0.5" not in str(caught.value)  # addresses go to the log only


async def test_a_host_allow_listed_by_name_connects_whatever_it_resolves_to(listener: int) -> None:
    backend = PolicyBackend(UrlPolicy(allow=[f"svc.test:{listener}"]))
    with SimulatedDns({"svc.test": [["127.0.0.1"]]}), anyio.fail_after(10):
        stream = await backend.connect_tcp("svc.test", listener, timeout=5)
        await stream.aclose()


async def test_the_backend_refuses_unix_sockets() -> None:
    with pytest.raises(AddressRefused):
        await PolicyBackend(UrlPolicy()).connect_unix_socket("/tmp/any.sock")


async def test_a_name_that_does_not_resolve_is_a_connect_error() -> None:
    with pytest.raises(httpcore2.ConnectError), anyio.fail_after(10):
        await PolicyBackend(UrlPolicy()).connect_tcp("nonexistent.invalid", 443, timeout=5)


async def test_policy_transport_plugs_the_backend_into_httpx2_private_pool() -> None:
    """`set_transport_pool` sets httpx2's private ``AsyncHTTPTransport._pool``: requests reach the backend."""
    async with httpx2.AsyncClient(transport=policy_transport(UrlPolicy())) as client:
        with pytest.raises(httpx2.ConnectError) as caught, anyio.fail_after(10):
            await client.get("http://127.0.0.9:8000/mcp")  # refused before any connection
    assert isinstance(caught.value.__cause__, AddressRefused)


async def test_a_client_with_a_policy_ignores_proxies_and_redirects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    server = HttpServer(name="s", url="http://127.0.0.9:8000/mcp", url_policy=UrlPolicy())
    async with http_client(server) as client:
        assert client.follow_redirects is False and client.trust_env is False
        with pytest.raises(httpx2.ConnectError) as caught, anyio.fail_after(10):
            await client.get(server.url)  # through the backend, not the proxy
    assert isinstance(caught.value.__cause__, AddressRefused)
    async with http_client(HttpServer(name="d", url="https://mcp.example.com/mcp")) as client:
        assert (
            client.follow_redirects is False and client.trust_env is True
        )  # deployment servers keep proxies


# --- the response cap ----------------------------------------------------------------------------


class _Body(httpx2.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.sent += 1
            yield chunk


def _client(body: _Body, cap: ResponseCap, headers: dict[str, str]) -> httpx2.AsyncClient:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=headers, stream=body)

    return httpx2.AsyncClient(transport=httpx2.MockTransport(answer), event_hooks={"response": [cap]})


async def test_a_body_is_counted_as_it_streams_and_fails_past_the_cap() -> None:
    body = _Body([b"x" * 4] * 10)
    record, token = call_record()
    try:
        async with _client(body, ResponseCap(10, "s"), {"content-type": "application/json"}) as client:
            with pytest.raises(ResponseTooLarge) as caught:
                await client.get("http://s.test/")
    finally:
        end_call_record(token)
    assert body.sent == 3  # stopped at the chunk that passed the cap, not read to the end
    assert "max_response_bytes=10 bytes" in str(caught.value) and "'s'" in str(caught.value)
    assert isinstance(caught.value, httpx2.StreamError)  # the SDK reports these as the request's error
    assert record == CallRecord(oversized=10)


async def test_a_declared_length_past_the_cap_fails_before_reading() -> None:
    body = _Body([b"x" * 4])
    headers = {"content-type": "application/json", "content-length": "100"}
    async with _client(body, ResponseCap(10, "s"), headers) as client:
        with pytest.raises(ResponseTooLarge):
            await client.get("http://s.test/")
    assert body.sent == 0


async def test_a_body_within_the_cap_is_read() -> None:
    async with _client(_Body([b"x" * 5, b"y" * 5]), ResponseCap(10, "s"), {}) as client:
        assert (await client.get("http://s.test/")).content == b"xxxxxyyyyy"


async def test_event_streams_are_counted_per_event_when_asked() -> None:
    headers = {"content-type": "text/event-stream"}
    events = [b"data: 1234\n\n", b"data: 12", b"34\r\n\r\n", b"data: 1234\n\n"]
    async with _client(_Body(events), ResponseCap(16, "s", events_counted=True), headers) as client:
        assert len((await client.get("http://s.test/")).content) == 38  # each event is under 16 bytes
    big = [b"data: 12345", b"67890\n", b"data: 1\n\n"]
    async with _client(_Body(big), ResponseCap(16, "s", events_counted=True), headers) as client:
        with pytest.raises(ResponseTooLarge):
            await client.get("http://s.test/")
    async with _client(_Body(big), ResponseCap(16, "s"), headers) as client:
        await client.get("http://s.test/")  # left to the SDK's own per-event cap


@asynccontextmanager
async def _raw_http_server(head: bytes, body_chunks: list[bytes]) -> AsyncGenerator[tuple[int, list[int]]]:
    """A TCP server on 127.0.0.1 answering each request with ``head`` then ``body_chunks``.

    Yields its port and the count of body chunks it managed to send (it stops when the client closes).
    """
    server = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = server.extra(anyio.abc.SocketAttribute.local_port)
    sent = [0]

    async def answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            try:
                await stream.send(head)
                for chunk in body_chunks:
                    await stream.send(chunk)
                    sent[0] += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return

    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, answer)
        yield port, sent
        group.cancel_scope.cancel()
    await server.aclose()


async def test_an_oversized_chunked_answer_over_a_real_connection_is_refused() -> None:
    # No Content-Length: the body is counted as it streams, whatever the headers promise.
    piece = b"x" * 65536
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    async with _raw_http_server(head, [chunk] * 64 + [b"0\r\n\r\n"]) as (port, sent):
        server = HttpServer(name="s", url=f"http://127.0.0.1:{port}/mcp", max_response_bytes=200_000)
        with anyio.fail_after(10):
            async with http_client(server) as client:
                with pytest.raises(ResponseTooLarge):
                    await client.post(f"http://127.0.0.1:{port}/mcp", content=b"{}")
    assert sent[0] < 64  # dropped before the whole answer arrived


async def test_a_declared_length_within_the_cap_is_read_without_a_counter_and_never_past_it() -> None:
    # A server declaring a small body and sending more: only the declared bytes are read.
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n"
    async with _raw_http_server(head, [b"0123456789", b"y" * 1_000_000]) as (port, _):
        server = HttpServer(name="s", url=f"http://127.0.0.1:{port}/mcp", max_response_bytes=100)
        with anyio.fail_after(10):
            async with http_client(server) as client:
                async with client.stream("POST", f"http://127.0.0.1:{port}/mcp", content=b"{}") as response:
                    assert type(response.stream).__name__ != "_CappedStream"  # no wrapper: the cheap path
                    assert await response.aread() == b"0123456789"


# --- configuration -------------------------------------------------------------------------------


def test_the_url_policy_is_kept_by_identity_and_left_out_of_dumps() -> None:
    policy = UrlPolicy(allow=["127.0.0.1:8000"])
    server = HttpServer(name="s", url="http://127.0.0.1:8000/mcp", url_policy=policy)
    assert server.url_policy is policy
    assert "url_policy" not in server.model_dump() and "UrlPolicy" not in repr(server)
    assert SseServer(name="s", url="http://127.0.0.1:8000/sse", url_policy=policy).url_policy is policy
    other = server.model_copy(update={"url_policy": UrlPolicy(allow=["127.0.0.1:8000"])})
    plain = server.model_copy(update={"url_policy": None})
    assert len({pool_key(server, "a"), pool_key(other, "a"), pool_key(plain, "a")}) == 3


async def test_registered_servers_get_the_policy_and_a_stricter_response_cap() -> None:
    from langgraph.store.memory import InMemoryStore

    store = InMemoryStore()
    await store.aput(("alice", "mcp_servers"), "notes", {"url": "https://93.184.216.34/mcp"})
    user = UserContext.from_user({"identity": "alice"}, store)
    registered = RegisteredServers()
    [server], _ = await registered.load(user)
    assert isinstance(server, HttpServer)
    assert server.url_policy is registered.policy
    assert server.max_response_bytes == 8 * 1024 * 1024
    [server], _ = await RegisteredServers(max_response_bytes=1000).load(user)
    assert isinstance(server, HttpServer) and server.max_response_bytes == 1000
    assert HttpServer(name="d", url="https://mcp.example.com/mcp").max_response_bytes == 64 * 1024 * 1024


def test_registered_servers_refuse_a_cap_below_one() -> None:
    from mcpbridge import ConfigError

    with pytest.raises(ConfigError) as caught:
        RegisteredServers(max_response_bytes=0)
    assert caught.value.field == "max_response_bytes"


@pytest.mark.parametrize(
    "exc",
    [
        httpx2.ConnectError("[Errno 111] Connection refused"),
        httpx2.ConnectTimeout("timed out"),
        TimeoutError(),
        httpx2.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_failures_of_servers_with_a_policy_are_one_text_and_logged(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    registered = HttpServer(name="notes", url="http://10.0.0.5:22/mcp", url_policy=UrlPolicy())
    shown = describe_failure(registered, exc)
    assert shown == describe_failure(registered, httpx2.ConnectError("other"))
    assert "10.0.0.5" not in shown and "22" not in shown and "refused" not in shown
    assert any("10.0.0.5" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    deployment = HttpServer(name="notes", url="http://10.0.0.5:22/mcp")
    assert describe_failure(deployment, exc) != shown  # the deployment's own servers keep the detail


# --- simulated DNS -------------------------------------------------------------------------------


def test_simulated_names_answer_in_sequence_and_others_resolve_for_real() -> None:
    with SimulatedDns({"Flip.Test": [["127.0.0.2"], ["127.0.0.3", "127.0.0.2"]]}) as dns:
        answers = [[info[4][0] for info in socket.getaddrinfo("flip.test", 80)] for _ in range(3)]
        assert answers == [["127.0.0.2"], ["127.0.0.3", "127.0.0.2"], ["127.0.0.3", "127.0.0.2"]]
        assert socket.getaddrinfo("flip.test", 80, socket.AF_INET6) == []
        assert socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)[0][4][0] == "127.0.0.1"
        assert dns.lookups == {"flip.test": 4}
    assert socket.getaddrinfo.__module__ == "socket"  # given back


async def test_anyio_resolves_through_the_simulation() -> None:
    with SimulatedDns({"flip.test": [["127.0.0.7"]]}):
        infos = await anyio.getaddrinfo("flip.test", 443, type=socket.SOCK_STREAM)
    assert [info[4][0] for info in infos] == ["127.0.0.7"]


@pytest.mark.parametrize("address", ["10.0.0.1", "127.0.1.1", "::1"])
def test_only_127_0_0_x_may_be_answered(address: str) -> None:
    with pytest.raises(ValueError, match=r"only 127\.0\.0\.x"):
        SimulatedDns({"x.test": [[address]]})


def test_the_simulation_installs_from_the_environment() -> None:
    assert install_from_env({}) is None
    dns = install_from_env({DNS_ENV: '{"env.test": [["127.0.0.2"], ["127.0.0.3"]]}'})
    assert dns is not None
    try:
        assert install_from_env({DNS_ENV: '{"other.test": [["127.0.0.4"]]}'}) is dns  # once per process
        assert [socket.getaddrinfo("env.test", 1)[0][4][0] for _ in range(3)] == [
            "127.0.0.2",
            "127.0.0.3",
            "127.0.0.3",
        ]
    finally:
        dns.uninstall()
