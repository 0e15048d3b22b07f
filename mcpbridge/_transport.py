"""Building one server's MCP client: its transport (stdio, streamable HTTP, SSE, in memory).

`open_client` enters the transport and the SDK `Client` into the caller's exit
stack, so the caller owns them: leaving the stack closes the session and stops
the server process. HTTP clients come from `mcpbridge._network.http_client`
(the shared TLS context, the byte cap, the per-call headers, the URL policy).
A stdio server's stderr goes to a `StderrLog`, whose end failure messages quote.

A call's answer is bounded by the SDK's request clock; its write, by the transport:
a stdio (or SSE) server that stops reading would otherwise hold every later write,
so those transports' writes end within the server's ``call_timeout`` (`_bounded_writes`).
A streamable HTTP transport's writes go through `_QuietWriteStream`.
"""

from __future__ import annotations

import functools
import io
import logging
import tempfile
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any, Final, Protocol, Self

import anyio
import httpx2
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.caching import CacheConfig
from mcp.client.session import LoggingFnT, MessageHandlerFnT
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage
from pydantic import BaseModel

from mcpbridge._network import http_client
from mcpbridge.caching import Discovered
from mcpbridge.config import HttpServer, MemoryServer, ServerConfig, SseServer, StdioServer
from mcpbridge.errors import UsageError

__all__ = ["StderrLog", "open_client"]

_STDERR_TAIL_CHARS: Final = 2000


class StderrLog:
    """A stdio server's stderr, written to a temporary file so that failure messages can quote its end.

    The file is opened per session (`open`) and closed when the session ends
    (`aclose`); the last tail read stays available after it is closed. File work
    runs off the event loop: the Agent Server refuses blocking calls on it.
    """

    def __init__(self) -> None:
        self._file: io.TextIOBase | None = None
        self._tail = ""

    async def open(self) -> io.TextIOBase:
        """A new file for the next session's stderr."""
        self._file = await anyio.to_thread.run_sync(
            functools.partial(tempfile.TemporaryFile, "w+", encoding="utf-8", errors="replace")
        )
        return self._file

    async def tail(self) -> str:
        """The last characters the server wrote (the last ones read, once the file is closed)."""
        if self._file is None:
            return self._tail
        tail = self._tail
        with anyio.CancelScope(shield=True):
            tail = await anyio.to_thread.run_sync(self._read_tail)
        return tail

    async def aclose(self) -> None:
        """Keep the tail, and close the file."""
        file = self._file
        if file is None:
            return
        await self.tail()  # keep the tail for messages after the file is gone
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(file.close)
        self._file = None

    def _read_tail(self) -> str:
        file = self._file
        if file is None or file.closed:
            return self._tail
        try:
            file.flush()
            size = file.seek(0, io.SEEK_END)
            file.seek(max(0, size - _STDERR_TAIL_CHARS * 4))
            text = file.read()[-_STDERR_TAIL_CHARS:]
        except (OSError, ValueError):
            return self._tail
        self._tail = text.strip()
        return self._tail


async def open_client(
    config: ServerConfig,
    stack: AsyncExitStack,
    *,
    stderr: StderrLog,
    client_info: types.Implementation,
    logging_callback: LoggingFnT,
    log_level: types.LoggingLevel | None,
    message_handler: MessageHandlerFnT | None = None,
    cache: CacheConfig | None = None,
    discovered: Discovered | None = None,
    callbacks: Mapping[str, Any] | None = None,
) -> Client:
    """Connect an SDK `Client` to ``config``'s server; ``stack`` owns the transport and the session.

    The handshake is bounded by ``connect_timeout`` (the SDK's read timeout); the
    caller bounds the whole connect. ``cache`` is the session's response cache (else
    the SDK's per-session one); with ``discovered``, a fresh discovery result, the
    session adopts it and sends no ``server/discover``. ``callbacks`` are the SDK's
    ``elicitation_callback``, ``sampling_callback`` and ``list_roots_callback`` (see
    `mcpbridge._answering`): the client offers what they answer.
    """
    mode: str = config.protocol
    prior: types.DiscoverResult | None = None
    if discovered is not None and mode == "auto":
        mode, prior = discovered.version, discovered.result
    transport: Any
    match config:
        case StdioServer():
            params = StdioServerParameters(
                command=config.command,
                args=list(config.args),
                env=dict(config.env) if config.env else None,
                cwd=config.cwd,
            )
            opened = stdio_client(params, errlog=await stderr.open())  # pyright: ignore[reportArgumentType]
            transport = _bounded_writes(opened, config.call_timeout)
        case HttpServer():
            client = await stack.enter_async_context(http_client(config))
            opened = streamable_http_client(
                config.url, http_client=client, max_sse_event_size=config.max_response_bytes
            )
            transport = _wrap_writes(opened, _QuietWriteStream)
        case SseServer():
            opened = sse_client(
                config.url,
                timeout=config.http_timeout,
                sse_read_timeout=config.sse_read_timeout,
                httpx_client_factory=_sse_client_factory(config),
                auth=config.auth,
            )
            transport = _bounded_writes(opened, config.call_timeout)
            mode, prior = "legacy", None
        case MemoryServer():
            transport = config.server
        case _:  # check_servers admits only the kinds above
            raise UsageError(f"MCP server {config.name!r}: unknown kind {type(config).__name__}")
    client = Client(
        transport,
        mode=mode,
        prior_discover=prior,
        client_info=client_info,
        logging_callback=logging_callback,
        message_handler=message_handler,
        log_level=log_level,
        read_timeout_seconds=config.connect_timeout,
        cache=CacheConfig() if cache is None else cache,  # the SDK default: a per-session store
        **(callbacks or {}),
    )
    return await stack.enter_async_context(client)


def _sse_client_factory(config: SseServer) -> Any:
    def factory(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        # The SDK caps no event of the legacy stream: the client counts them.
        return http_client(config, events_counted=True, timeout=timeout, auth=auth)

    return factory


class _WriteStream(Protocol):
    """What the SDK's transports yield to write with (their ``WriteStream``)."""

    async def send(self, item: SessionMessage, /) -> None: ...
    async def aclose(self) -> None: ...


class _WrappedWriteStream:
    """A transport's write stream, closed and entered as the transport's own."""

    __slots__ = ("_inner",)

    def __init__(self, inner: _WriteStream) -> None:
        self._inner = inner

    async def send(self, item: SessionMessage, /) -> None:
        """Hand ``item`` to the transport's writer."""
        await self._inner.send(item)

    async def aclose(self) -> None:
        """Close the stream, as the transport's own does."""
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _BoundedWriteStream(_WrappedWriteStream):
    """A transport's write stream whose every send ends within ``timeout`` seconds.

    Where the writer task waits for the next message (a memory stream), the message
    changes hands at once, with no timer; only a writer still busy (a server not
    reading, or concurrent calls) makes a send wait, under `anyio.fail_after`.
    """

    __slots__ = ("_now", "_timeout")

    def __init__(self, inner: _WriteStream, timeout: float) -> None:
        super().__init__(inner)
        self._now: Callable[[SessionMessage], None] | None = getattr(inner, "send_nowait", None)
        self._timeout = timeout

    async def send(self, item: SessionMessage, /) -> None:
        """Hand ``item`` to the writer; `TimeoutError` when it takes none within the timeout."""
        if self._now is not None:
            try:
                self._now(item)
                return
            except anyio.WouldBlock:
                pass
        with anyio.fail_after(self._timeout):
            await self._inner.send(item)


_HTTP_CLIENT_LOG: Final = logging.getLogger("mcp.client.streamable_http")


def _quiet_class(cls: type[BaseModel]) -> type[BaseModel]:
    """``cls``, printing through pydantic only while the SDK's HTTP client logs at DEBUG."""

    class Quiet(cls):
        __slots__ = ()

        def __str__(self) -> str:
            return super().__str__() if _HTTP_CLIENT_LOG.isEnabledFor(logging.DEBUG) else cls.__name__

    Quiet.__name__, Quiet.__qualname__, Quiet.__module__ = cls.__name__, cls.__qualname__, cls.__module__
    return Quiet


_QUIET: Final[dict[type, type]] = {
    cls: _quiet_class(cls)
    for cls in (types.JSONRPCRequest, types.JSONRPCNotification, types.JSONRPCResponse, types.JSONRPCError)
}


class _QuietWriteStream(_WrappedWriteStream):
    """A streamable HTTP transport's write stream whose messages print only for a DEBUG log.

    The SDK's HTTP client formats every message it sends into a debug line
    (``logger.debug(f"Sending client message: {message}")``), DEBUG on or not: pydantic's
    printing of the message, about 1.5% of the client's instructions for a tool call
    (``python -m bench.profile_call --transport http --instructions``). Each message sent
    here takes a subclass of its own class (same fields, same serialization) whose ``str``
    is pydantic's while that logger is enabled for DEBUG, and the class name otherwise:
    the log reads as before, and a call pays for the printing only when it is written.
    When the SDK formats lazily, ``test_the_sdks_http_client_formats_each_message_it_sends``
    (``tests/unit/test_transport.py``) fails, and this stream can go.
    """

    __slots__ = ()

    async def send(self, item: SessionMessage, /) -> None:
        """Hand ``item`` to the writer, its message printing only for a DEBUG log."""
        message = item.message
        quiet = _QUIET.get(type(message))
        if quiet is not None:
            object.__setattr__(message, "__class__", quiet)  # pydantic's __setattr__ takes fields only
        await self._inner.send(item)


@asynccontextmanager
async def _wrap_writes(
    transport: AbstractAsyncContextManager[tuple[Any, Any]],
    wrap: Callable[[_WriteStream], _WrappedWriteStream],
) -> AsyncGenerator[tuple[Any, _WrappedWriteStream]]:
    """``transport``, its write stream wrapped by ``wrap``."""
    async with transport as (read_stream, write_stream):
        yield read_stream, wrap(write_stream)


def _bounded_writes(
    transport: AbstractAsyncContextManager[tuple[Any, Any]], write_timeout: float
) -> AbstractAsyncContextManager[tuple[Any, _WrappedWriteStream]]:
    """``transport``, with every write ending within ``write_timeout`` seconds."""
    return _wrap_writes(transport, lambda inner: _BoundedWriteStream(inner, write_timeout))
