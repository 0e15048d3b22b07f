"""`AgentMCPServer`: LangGraph graphs offered to MCP clients, one tool per graph.

The front is the MCP SDK's low-level server: both protocol eras, stdio and
streamable HTTP, progress notifications and cancellation. Over HTTP an optional
`UserVerifier` checks each request's bearer token (401 otherwise) and the user
reaches the backend, which runs the graphs locally (`LocalGraphs`) or on an
Agent Server (`RemoteAssistants`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import mcp_types as types
import uvicorn
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from starlette.applications import Starlette
from starlette.requests import Request

from mcpbridge._version import package_version
from mcpbridge.errors import ConfigError
from mcpbridge.serving.backend import Backend, Caller, OpenBackend
from mcpbridge.serving.checkpointers import CheckpointerSpec
from mcpbridge.serving.loading import ServedGraph
from mcpbridge.serving.local import LocalGraphs
from mcpbridge.serving.progress import ProgressReporter
from mcpbridge.serving.remote import RemoteAssistants
from mcpbridge.serving.users import UserVerifier, VerifierAdapter, user_of_scope

__all__ = ["AgentMCPServer"]

logger = logging.getLogger("mcpbridge")

INSTRUCTIONS = (
    "Each tool runs a LangGraph agent. Send it a message; the result has the agent's answer and a "
    "thread_id. Pass the thread_id back to continue the same conversation."
)


class AgentMCPServer:
    """An MCP server whose tools are LangGraph graphs.

    Args:
        backend: What runs the graphs (`LocalGraphs` or `RemoteAssistants`).
        name: The server's name, as MCP clients see it.
        instructions: Instructions for MCP clients.
        auth: Checks bearer tokens over HTTP; ``None`` serves everyone (as nobody).
        stateless: Serve HTTP without sessions (each request on its own); the default
            keeps sessions for local graphs and none for remote assistants.

    Example:
        ```python
        server = AgentMCPServer.from_graphs({"agent": make_graph}, checkpointer="sqlite:threads.db")
        server.run("http", port=8000)  # or: await server.run_stdio()
        ```
    """

    def __init__(
        self,
        backend: Backend,
        *,
        name: str = "mcpbridge",
        instructions: str | None = INSTRUCTIONS,
        auth: UserVerifier | None = None,
        stateless: bool | None = None,
    ) -> None:
        self.backend = backend
        self.auth = auth
        self.stateless = isinstance(backend, RemoteAssistants) if stateless is None else stateless
        self.lowlevel: Server[OpenBackend] = Server(
            name,
            version=package_version(),
            instructions=instructions,
            lifespan=self._lifespan,
            # Local graphs' schemas are the same for every caller: no tools/list per 2026-era call.
            get_tool_input_schema=backend.header_schema if isinstance(backend, LocalGraphs) else None,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        """The MCP SDK server: mount it, or connect to it in memory with ``mcp.Client(server.lowlevel)``."""

    @classmethod
    def from_graphs(
        cls,
        graphs: Sequence[ServedGraph] | Mapping[str, Any],
        *,
        checkpointer: str | CheckpointerSpec | BaseCheckpointSaver[Any] | None = None,
        store: BaseStore | None = None,
        **options: Any,
    ) -> AgentMCPServer:
        """Serve graphs of this process (``{name: graph or factory}`` or `ServedGraph` values).

        Args:
            graphs: The graphs, one tool each.
            checkpointer: ``"memory"`` (default), ``"sqlite:PATH"``, ``"postgres://..."`` or a checkpointer.
            store: The store the graphs get; an ``InMemoryStore`` by default.
            **options: Options of `AgentMCPServer` (``name``, ``auth``, ...).
        """
        served = (
            [ServedGraph(name, graph) for name, graph in graphs.items()]
            if isinstance(graphs, Mapping)
            else list(graphs)
        )
        return cls(LocalGraphs(served, checkpointer=checkpointer, store=store), **options)

    @classmethod
    def from_remote(
        cls,
        url: str,
        *,
        assistants: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> AgentMCPServer:
        """Serve the assistants of the Agent Server at ``url`` (all, or the ids, graph ids or names given)."""
        return cls(RemoteAssistants(url, assistants=assistants, headers=headers), **options)

    @asynccontextmanager
    async def _lifespan(self, server: Server[OpenBackend]) -> AsyncGenerator[OpenBackend, None]:
        async with self.backend.running() as running:
            yield running

    async def _list_tools(
        self, ctx: ServerRequestContext[OpenBackend], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=await ctx.lifespan_context.list_tools(_caller(ctx)))

    async def _call_tool(
        self, ctx: ServerRequestContext[OpenBackend], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        progress = ProgressReporter(ctx.session.report_progress if _wants_progress(ctx) else None)
        return await ctx.lifespan_context.call_tool(
            params.name, params.arguments or {}, _caller(ctx), progress
        )

    def http_app(
        self,
        *,
        path: str = "/mcp",
        host: str = "127.0.0.1",
        json_response: bool = False,
        issuer_url: str | None = None,
        resource_url: str | None = None,
    ) -> Starlette:
        """The streamable HTTP app (ASGI), with bearer-token auth when ``auth`` is set.

        Args:
            path: Where MCP is served.
            host: The host it is served on (``127.0.0.1``/``localhost`` turn on DNS-rebinding protection).
            json_response: Answer with ``application/json`` instead of event streams (no progress then).
            issuer_url: The OAuth authorization server of your tokens, announced with ``resource_url``.
            resource_url: This server's public MCP URL; serves OAuth protected-resource metadata.
        """
        settings: AuthSettings | None = None
        verifier: VerifierAdapter | None = None
        if self.auth is not None:
            verifier = VerifierAdapter(self.auth)
            # The issuer is read only for OAuth metadata, which is served only with a resource_url.
            settings = AuthSettings(
                issuer_url=issuer_url or f"http://{host}",  # pyright: ignore[reportArgumentType]
                resource_server_url=resource_url,  # pyright: ignore[reportArgumentType]
                validate_token_resource=False if resource_url else None,
            )
        elif issuer_url or resource_url:
            raise ConfigError("issuer_url and resource_url need auth (a token verifier)", field="auth")
        return self.lowlevel.streamable_http_app(
            streamable_http_path=path,
            json_response=json_response,
            stateless_http=self.stateless,
            host=host,
            auth=settings,
            token_verifier=verifier,
        )

    async def run_stdio(self) -> None:
        """Serve over this process's stdin and stdout until stdin closes."""
        if self.auth is not None:
            logger.warning("auth applies to HTTP only; over stdio every call runs without a user")
        async with stdio_server() as (read_stream, write_stream):
            await self.lowlevel.run(read_stream, write_stream, self.lowlevel.create_initialization_options())

    async def run_http(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        path: str = "/mcp",
        json_response: bool = False,
        on_ready: Callable[[str], None] | None = None,
        log_level: str = "warning",
    ) -> None:
        """Serve streamable HTTP on ``host:port`` (``port=0``: any free port) until stopped.

        Args:
            host: The address to listen on.
            port: The port; 0 picks a free one (``on_ready`` tells which).
            path: Where MCP is served.
            json_response: Answer with ``application/json`` instead of event streams.
            on_ready: Called with the MCP URL once the port listens.
            log_level: uvicorn's log level.
        """
        app = self.http_app(path=path, host=host, json_response=json_response)
        _warn_when_exposed(host, authenticated=self.auth is not None)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
        # Accepted connections inherit it: without it, each streamed answer waits ~40 ms on delayed ACKs.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            bound = sock.getsockname()[1]
            where = f"[{host}]" if family == socket.AF_INET6 else host
            if on_ready is not None:
                on_ready(
                    f"http://{where}:{bound}{path}"
                )  # connections wait in the backlog until startup ends
            config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5, lifespan="on")
            await uvicorn.Server(config).serve(sockets=[sock])
        finally:
            sock.close()

    def run(self, transport: Literal["stdio", "http"] = "stdio", **options: Any) -> None:
        """Serve until stopped: ``run("stdio")`` or ``run("http", host=..., port=...)`` (blocking)."""
        if transport == "stdio":
            anyio.run(self.run_stdio)
        else:
            anyio.run(lambda: self.run_http(**options))


def _warn_when_exposed(host: str, *, authenticated: bool) -> None:
    """Warn when graphs are served without auth on an address other machines may reach."""
    if authenticated or _loopback(host):
        return
    logger.warning(
        "serving on %s without auth: anyone who reaches this address runs the graphs, as nobody; "
        "give a token verifier (AgentMCPServer(auth=...), `mcpbridge serve --auth`) or serve on "
        "127.0.0.1",
        host,
    )


def _loopback(host: str) -> bool:
    """Whether ``host`` listens on loopback only (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any address
        return False


def _wants_progress(ctx: ServerRequestContext[OpenBackend]) -> bool:
    """Whether the caller may listen for progress: over HTTP only with a ``progressToken``.

    Elsewhere it is not known (an in-process client's callback comes without a token), so yes.
    """
    if not isinstance(ctx.request, Request):
        return True
    return ctx.meta is not None and ctx.meta.get("progress_token") is not None


def _caller(ctx: ServerRequestContext[OpenBackend]) -> Caller:
    request: Any = ctx.request
    if not isinstance(request, Request):
        return Caller()
    return Caller(user=user_of_scope(request.scope), authorization=request.headers.get("authorization"))
