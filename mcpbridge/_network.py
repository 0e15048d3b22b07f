"""The network side of HTTP MCP servers: checked connections and capped responses.

Contract:

- `PolicyBackend` is the httpcore2 network backend of every server given a
  `UrlPolicy` (every server `RegisteredServers` builds). For each TCP connection
  it resolves the host once, asks the policy about every address, and connects
  only to an admitted one, so the address checked is the address connected to
  (no DNS rebinding between a check and a connect). TLS keeps the name: httpcore2
  gives ``start_tls`` the URL's host for SNI and certificate checks, and the
  ``Host`` header is the URL's. Refused addresses are logged, never shown to users.
- `ResponseCap`, a response event hook (so it holds on any transport, proxies
  included), fails a response body larger than ``max_response_bytes`` before it
  is parsed: at once when ``Content-Length`` says so, else (no length declared:
  a chunked body) once the bytes counted as they stream in pass the cap, so an
  oversized answer never lands in memory. A body whose declared length is within
  the cap is not wrapped: the HTTP layer reads no byte past that length. The
  failure is a `ResponseTooLarge`, an ``httpx2.StreamError``, which the SDK
  turns into that request's error (the session goes on). Event streams are left
  to the SDK's per-event cap, except where the SDK has none
  (the legacy SSE transport): there each event is counted.
- `http_client` builds the ``httpx2.AsyncClient`` of one server: no redirects
  followed (a redirect to another host would skip the URL check), and, for
  servers with a policy, proxies from the environment ignored (``trust_env=False``).
"""

from __future__ import annotations

import contextvars
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, cast

import anyio
import httpcore2
import httpx2

from mcpbridge._compat import set_transport_pool
from mcpbridge.config import HttpServer, SseServer
from mcpbridge.errors import MCPBridgeError
from mcpbridge.urlpolicy import UrlPolicy

__all__ = [
    "CALL_HEADERS",
    "CallRecord",
    "PolicyBackend",
    "ResponseCap",
    "ResponseTooLarge",
    "call_record",
    "end_call_record",
    "http_client",
    "policy_transport",
    "shared_ssl_context",
]

logger = logging.getLogger("mcpbridge")
network_logger = logging.getLogger("mcpbridge.network")
"""Logs every connection a `PolicyBackend` opens (DEBUG) and every address it refuses (WARNING)."""

CALL_HEADERS: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "mcpbridge_call_headers", default=None
)
"""Headers added to the HTTP requests of one tool call (set around the call)."""


@dataclass
class CallRecord:
    """What the transport saw during one tool call: set when a response passed the byte cap."""

    oversized: int | None = None


_CALL_RECORD: contextvars.ContextVar[CallRecord | None] = contextvars.ContextVar(
    "mcpbridge_call_record", default=None
)


def call_record() -> tuple[CallRecord, contextvars.Token[CallRecord | None]]:
    """Start recording the current tool call; give the token to `end_call_record` after it.

    The SDK sends each request from a task that runs in a copy of the caller's
    context, so the transport finds this record (a shared object) from there.
    """
    record = CallRecord()
    return record, _CALL_RECORD.set(record)


def end_call_record(token: contextvars.Token[CallRecord | None]) -> None:
    """Stop recording the tool call started with `call_record`."""
    _CALL_RECORD.reset(token)


_LIMITS: Final = httpx2.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=4.0)
"""Idle connections are dropped after 4 s, before common servers drop them (uvicorn and Node.js
after 5 s): a call sent on a connection the server is closing fails although it never ran."""


@cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every HTTP client: loading certificates costs ~20 ms each time."""
    return ssl.create_default_context()


async def _add_call_headers(request: httpx2.Request) -> None:
    # The SDK sends each request from a task that runs in the caller's context.
    headers = CALL_HEADERS.get()
    if headers:
        request.headers.update(headers)


def http_client(
    config: HttpServer | SseServer, *, events_counted: bool = False, **overrides: Any
) -> httpx2.AsyncClient:
    """Build one server's HTTP client: the shared TLS context, its byte cap and, with a policy, its checks.

    Args:
        config: The server.
        events_counted: Count each event of event streams against ``max_response_bytes``
            (for the legacy SSE transport, where the SDK has no cap of its own).
        overrides: ``httpx2.AsyncClient`` options replacing the server's (``None`` values ignored).
    """
    options: dict[str, Any] = {
        "headers": config.request_headers(),
        "auth": config.auth,
        "timeout": httpx2.Timeout(config.http_timeout, read=config.sse_read_timeout),
        "verify": shared_ssl_context(),
        "limits": _LIMITS,
        # A redirect is answered, not followed: following it would reach a URL no policy checked.
        "follow_redirects": False,
        "event_hooks": {
            "request": [_add_call_headers],
            "response": [ResponseCap(config.max_response_bytes, config.name, events_counted=events_counted)],
        },
    }
    policy = config.url_policy
    if policy is not None:
        # Every connection through the checking backend; no proxy from the environment (a proxy
        # would connect to the host itself, unchecked).
        options["transport"] = policy_transport(policy)
        options["trust_env"] = False
    options.update({k: v for k, v in overrides.items() if v is not None})
    return httpx2.AsyncClient(**options)


def policy_transport(policy: UrlPolicy) -> httpx2.AsyncHTTPTransport:
    """An HTTP transport whose every TCP connection goes through a `PolicyBackend` of ``policy``."""
    transport = httpx2.AsyncHTTPTransport(verify=shared_ssl_context(), limits=_LIMITS, trust_env=False)
    set_transport_pool(transport, _policy_pool(policy))
    return transport


def _policy_pool(policy: UrlPolicy) -> httpcore2.AsyncConnectionPool:
    return httpcore2.AsyncConnectionPool(
        ssl_context=shared_ssl_context(),
        max_connections=_LIMITS.max_connections,
        max_keepalive_connections=_LIMITS.max_keepalive_connections,
        keepalive_expiry=_LIMITS.keepalive_expiry,
        network_backend=PolicyBackend(policy),
    )


class AddressRefused(httpcore2.ConnectError, MCPBridgeError):
    """No address of the host is one the URL policy admits (the detail is in the log)."""


class PolicyBackend(httpcore2.AsyncNetworkBackend):
    """An httpcore2 network backend that connects only to addresses its `UrlPolicy` admits.

    Every TCP connection resolves its host (``anyio.getaddrinfo``) and checks each
    address with `UrlPolicy.connect_refusal`; it connects to the admitted addresses
    in the resolver's order, never to a refused one, and never resolves twice.
    """

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        # httpcore2 declares AnyIOBackend twice (a stand-in when anyio is missing): name its interface.
        self._inner = cast(httpcore2.AsyncNetworkBackend, httpcore2.AnyIOBackend())

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore2's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        """Connect to an admitted address of ``host``.

        Raises:
            httpcore2.ConnectError: No address is admitted (`AddressRefused`), or none accepted.
            httpcore2.ConnectTimeout: The name did not resolve within ``timeout``.
        """
        admitted: list[str] = []
        for address in await self._resolve(host, port, timeout):
            reason = self.policy.connect_refusal(host, port, address)
            if reason is None:
                admitted.append(address)
            else:
                network_logger.warning(
                    "refused a connection to %s port %d for host %r: %s", address, port, host, reason
                )
        if not admitted:
            raise AddressRefused(f"no address of {host!r} on port {port} is admitted by the URL policy")
        failure: httpcore2.ConnectError | httpcore2.ConnectTimeout | None = None
        for address in admitted:
            try:
                stream = await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
                continue
            network_logger.debug("connected to %s port %d for host %r", address, port, host)
            return stream
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore2's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        """Refused: a server with a URL policy is reached over TCP only."""
        raise AddressRefused("a server with a URL policy cannot be reached over a unix socket")

    async def sleep(self, seconds: float) -> None:
        """Sleep (httpcore2 waits between connect retries)."""
        await anyio.sleep(seconds)

    async def _resolve(self, host: str, port: int, within: float | None) -> list[str]:
        try:
            with anyio.fail_after(within):
                infos = await anyio.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"{host!r} did not resolve in time") from None
        except OSError as exc:
            raise httpcore2.ConnectError(f"{host!r} does not resolve ({exc.strerror or exc})") from None
        addresses: list[str] = []
        for info in infos:
            address = str(info[4][0])
            if address not in addresses:
                addresses.append(address)
        return addresses


class ResponseTooLarge(httpx2.StreamError, MCPBridgeError):
    """A response (or one event of a stream) was larger than ``max_response_bytes``; it was not read."""

    def __init__(self, server: str, limit: int) -> None:
        super().__init__(
            f"MCP server {server!r} answered with more than max_response_bytes={limit:,} bytes; "
            "the answer was dropped unread"
        )
        self.server = server
        self.limit = limit


class ResponseCap:
    """A response event hook: no response body larger than ``limit`` bytes is read.

    Args:
        limit: The most bytes of one response body (or of one event, when ``events_counted``).
        server: The server's name, for messages.
        events_counted: Count event streams per event; else they pass uncounted (the SDK caps them).
    """

    def __init__(self, limit: int, server: str, *, events_counted: bool = False) -> None:
        self.limit = limit
        self.server = server
        self.events_counted = events_counted

    async def __call__(self, response: httpx2.Response) -> None:
        """Wrap ``response``'s body (not read yet: hooks run once the headers are in) in a counter."""
        declared = _declared_length(response.headers.get("content-length"))
        if declared is not None and declared <= self.limit:
            # A body of a declared length within the cap (so each of its events too) is left
            # unwrapped, the common and cheap case: httpcore2 reads no byte past that length.
            return
        events = response.headers.get("content-type", "").lower().startswith("text/event-stream")
        if events and not self.events_counted:
            return
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        response.stream = _CappedStream(
            stream,
            limit=self.limit,
            server=self.server,
            events=events,
            over_at_once=not events and declared is not None and declared > self.limit,
        )


def _declared_length(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


_EVENT_ENDS: Final = (b"\n\n", b"\r\r", b"\r\n\r\n")


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(
        self, inner: httpx2.AsyncByteStream, *, limit: int, server: str, events: bool, over_at_once: bool
    ) -> None:
        self._inner = inner
        self._limit = limit
        self._server = server
        self._events = events
        self._over_at_once = over_at_once

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._over_at_once:
            self._over()
        counted = 0  # bytes of the body, or of the current event
        tail = b""
        async for chunk in self._inner:
            if self._events:
                seen = tail + chunk
                end = max(seen.rfind(mark) + len(mark) if mark in seen else -1 for mark in _EVENT_ENDS)
                counted = len(seen) - end if end >= 0 else counted + len(chunk)
                tail = seen[-3:]
            else:
                counted += len(chunk)
            if counted > self._limit:
                self._over()
            yield chunk

    def _over(self) -> None:
        record = _CALL_RECORD.get()
        if record is not None:
            record.oversized = self._limit
        logger.warning(
            "MCP server %r answered with more than max_response_bytes=%d bytes; dropped unread",
            self._server,
            self._limit,
        )
        raise ResponseTooLarge(self._server, self._limit)

    async def aclose(self) -> None:
        await self._inner.aclose()
