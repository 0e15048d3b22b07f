"""`AgentMCPServer`: LangGraph graphs offered to MCP clients, one tool per graph.

The front is the MCP SDK's low-level server: both protocol eras, stdio and
streamable HTTP, progress notifications and cancellation (``notifications/cancelled``, a
closed response stream, a deleted session). Over HTTP an optional
`UserVerifier` checks each request's bearer token (401 otherwise) and the user
reaches the backend, which runs the graphs locally (`LocalGraphs`) or on an
Agent Server (`RemoteAssistants`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, Protocol, cast

import anyio
import mcp_types as types
import uvicorn
from anyio.streams.memory import MemoryObjectSendStream
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.request_state import RequestStateBoundary
from mcp.server.stdio import stdio_server
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp.shared.message import SessionMessage
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mcpbridge._version import package_version
from mcpbridge.errors import ConfigError
from mcpbridge.serving.backend import Backend, Caller, ClientInput, OpenBackend
from mcpbridge.serving.checkpointers import CheckpointerSpec
from mcpbridge.serving.closing import CancelOnClose, read_body, replay
from mcpbridge.serving.limits import BoundedBody
from mcpbridge.serving.loading import ServedGraph
from mcpbridge.serving.local import LocalGraphs
from mcpbridge.serving.oauth import ProtectedResource, ResourceTokenVerifier, serve_protected_resource
from mcpbridge.serving.progress import ProgressReporter
from mcpbridge.serving.questions import request_state_security
from mcpbridge.serving.remote import RemoteAssistants
from mcpbridge.serving.users import UserVerifier, VerifierAdapter, user_of_scope

__all__ = ["AgentMCPServer"]

logger = logging.getLogger("mcpbridge")

INSTRUCTIONS = (
    "Each tool runs a LangGraph agent. Send it a message; the result has the agent's answer and a "
    "thread_id. Pass the thread_id back to continue the same conversation. A run that waits for input "
    "asks for it; a client that cannot be asked answers with the resume argument."
)


class AgentMCPServer:
    """An MCP server whose tools are LangGraph graphs.

    Args:
        backend: What runs the graphs (`LocalGraphs` or `RemoteAssistants`).
        name: The server's name, as MCP clients see it.
        instructions: Instructions for MCP clients.
        auth: Checks bearer tokens over HTTP; ``None`` serves everyone (as nobody).
        oauth: Serve HTTP as an OAuth protected resource: access tokens of its authorization
            servers, the token's subject as the user (instead of ``auth``; local graphs only).
        stateless: Serve HTTP without sessions (each request on its own); the default
            keeps sessions for local graphs and none for remote assistants.
        request_state_keys: Secrets (32 characters or more) that seal the ``requestState`` of
            input requests, the first sealing; by default those of ``$MCPBRIDGE_REQUEST_STATE_KEYS``,
            else a key of this process (one replica only).

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
        oauth: ProtectedResource | None = None,
        stateless: bool | None = None,
        request_state_keys: Sequence[str] | None = None,
    ) -> None:
        self.backend = backend
        self.auth = auth
        self.oauth = oauth
        _check_oauth(backend, auth, oauth)
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
        # Seals what an interrupted call's input request leaves for the retry; refuses any other.
        security = request_state_security(request_state_keys)
        self.lowlevel.middleware.append(RequestStateBoundary(security, default_audience=name))

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
    ) -> types.CallToolResult | types.InputRequiredResult:
        progress = ProgressReporter(ctx.session.report_progress if _wants_progress(ctx) else None)
        return await ctx.lifespan_context.call_tool(
            params.name, params.arguments or {}, _caller(ctx), progress, client=_client_input(ctx, params)
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

        A request body over the MCP SDK's limit (4 MiB) is answered 413 before it is read past it.

        Args:
            path: Where MCP is served.
            host: The host it is served on (``127.0.0.1``/``localhost`` turn on DNS-rebinding protection).
            json_response: Answer with ``application/json`` instead of event streams (no progress then).
            issuer_url: The OAuth authorization server of your tokens, announced with ``resource_url``.
            resource_url: This server's public MCP URL; serves OAuth protected-resource metadata.
        """
        settings: AuthSettings | None = None
        verifier: VerifierAdapter | ResourceTokenVerifier | None = None
        if self.oauth is not None:
            if issuer_url or resource_url:
                raise ConfigError(
                    "with oauth, the issuer and resource are the ProtectedResource's", field="oauth"
                )
            verifier = ResourceTokenVerifier(self.oauth)
            settings = AuthSettings(
                issuer_url=self.oauth.issuers[0],  # pyright: ignore[reportArgumentType]
                resource_server_url=self.oauth.resource,  # pyright: ignore[reportArgumentType]
                required_scopes=list(self.oauth.scopes) or None,
                validate_token_resource=True,
            )
        elif self.auth is not None:
            verifier = VerifierAdapter(self.auth)
            # The issuer is read only for OAuth metadata, which is served only with a resource_url.
            settings = AuthSettings(
                issuer_url=issuer_url or f"http://{host}",  # pyright: ignore[reportArgumentType]
                resource_server_url=resource_url,  # pyright: ignore[reportArgumentType]
                validate_token_resource=False if resource_url else None,
            )
        elif issuer_url or resource_url:
            raise ConfigError("issuer_url and resource_url need auth (a token verifier)", field="auth")
        app = self.lowlevel.streamable_http_app(
            streamable_http_path=path,
            json_response=json_response,
            stateless_http=self.stateless,
            max_request_body_size=DEFAULT_MAX_REQUEST_BODY_SIZE,
            host=host,
            auth=settings,
            token_verifier=verifier,
        )
        if self.oauth is not None:
            assert isinstance(verifier, ResourceTokenVerifier)
            serve_protected_resource(app, self.oauth, verifier)
        app.add_middleware(CancelOnClose, path=path, events=not json_response)  # sees JSON-RPC messages only
        app.add_middleware(_RefuseNonMessages, path=path)
        # Outermost: the two above read whole bodies; none past the SDK's limit reaches them (413).
        app.add_middleware(BoundedBody, limit=DEFAULT_MAX_REQUEST_BODY_SIZE)
        return app

    async def run_stdio(self) -> None:
        """Serve over this process's stdin and stdout until stdin closes."""
        if self.auth is not None or self.oauth is not None:
            logger.warning("auth applies to HTTP only; over stdio every call runs without a user")
        async with stdio_server() as (read_stream, write_stream):
            # The SDK drops a line that is no JSON-RPC message silently; the client is told instead.
            send, receive = anyio.create_memory_object_stream[SessionMessage | Exception]()
            async with anyio.create_task_group() as group:
                group.start_soon(_answer_malformed, read_stream, send, write_stream)
                await self.lowlevel.run(receive, write_stream, self.lowlevel.create_initialization_options())
                group.cancel_scope.cancel()

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
        _warn_when_exposed(host, authenticated=self.auth is not None or self.oauth is not None)
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


class _RefuseNonMessages:
    """Answer a POST whose JSON body is no JSON-RPC message ``-32600`` (the SDK says ``-32602``)."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:  # the client went away
            return
        try:
            parsed: Any = json.loads(body)
        except ValueError:  # not JSON: the SDK answers -32700
            await self.app(scope, replay(body, receive), send)
            return
        # A message's shape is checked at once; anything else is refused unless the SDK's types take it
        # (a batch): the SDK validates every message itself, so each pays for one validation only.
        if not _looks_like_a_message(parsed) and not _valid_message(parsed):
            error = {"code": types.INVALID_REQUEST, "message": "Invalid Request: not a JSON-RPC message"}
            answer = {"jsonrpc": "2.0", "id": None, "error": error}
            await JSONResponse(answer, status_code=400)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)


def _valid_message(value: Any) -> bool:
    """Whether the SDK's JSON-RPC types take ``value``."""
    try:
        types.jsonrpc_message_adapter.validate_python(value, by_name=False)
    except ValidationError:
        return False
    return True


def _looks_like_a_message(value: Any) -> bool:
    """Whether ``value`` is a JSON-RPC request, notification or response, whatever its params."""
    if not isinstance(value, dict):
        return False
    item = cast(dict[str, Any], value)
    if item.get("jsonrpc") != "2.0":
        return False
    if "method" in item:
        return isinstance(item["method"], str) and isinstance(item.get("id", 0), int | str)
    return "id" in item and ("result" in item or "error" in item)


class _Sender(Protocol):
    async def send(self, item: SessionMessage, /) -> None: ...


async def _answer_malformed(
    source: AsyncIterable[SessionMessage | Exception],
    sink: MemoryObjectSendStream[SessionMessage | Exception],
    replies: _Sender,
) -> None:
    """Pass messages on; answer a line that is no JSON-RPC message with a JSON-RPC error."""
    async with sink:
        async for item in source:
            if not isinstance(item, ValidationError):
                await sink.send(item)
                continue
            invalid_json = any(error["type"] == "json_invalid" for error in item.errors())
            error = types.ErrorData(
                code=types.PARSE_ERROR if invalid_json else types.INVALID_REQUEST,
                message="Parse error: not JSON"
                if invalid_json
                else "Invalid Request: not a JSON-RPC message",
            )
            await replies.send(SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=None, error=error)))


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


def _check_oauth(backend: Backend, auth: UserVerifier | None, oauth: ProtectedResource | None) -> None:
    if oauth is None:
        return
    if auth is not None:
        raise ConfigError(
            "give auth or oauth, not both: with oauth, tokens are checked as OAuth", field="oauth"
        )
    if isinstance(backend, RemoteAssistants):
        raise ConfigError(
            "oauth does not apply to remote assistants: the caller's token would go on to the Agent Server, "
            "token passthrough that the MCP authorization spec forbids; serve them with auth, and give the "
            "Agent Server its own OAuth",
            field="oauth",
        )


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


def _client_input(ctx: ServerRequestContext[OpenBackend], params: types.CallToolRequestParams) -> ClientInput:
    """How the client can be asked: ``input_required`` (2026), ``elicitation/create`` (2025), or not."""
    capabilities = ctx.session.client_capabilities
    elicits = capabilities is not None and capabilities.elicitation is not None
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return ClientInput(
            input_required=elicits, responses=params.input_responses, state=params.request_state
        )
    if not elicits or not ctx.session.can_send_request:
        return ClientInput()
    session, request_id = ctx.session, ctx.request_id

    async def elicit(message: str, schema: dict[str, Any]) -> types.ElicitResult:
        return await session.elicit_form(message, schema, related_request_id=request_id)

    return ClientInput(elicit=elicit)
