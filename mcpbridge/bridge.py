"""`Bridge`: the one owner of every MCP session of a run.

Entering a `Bridge` connects to all its servers concurrently (so it costs about
the slowest server, not the sum); each connection lists and prepares its tools
within its ``connect_timeout`` (see `ServerConnection`), and the Bridge names,
filters and wraps them as LangChain tools, yielding to the event loop as it goes.
Leaving it closes every session and stops every server process, on success,
error or cancellation alike.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Final, Self

import anyio
import mcp_types as types
from langgraph.store.base import BaseStore

from mcpbridge._access import ToolFilter
from mcpbridge._connection import ServerConnection
from mcpbridge._failures import describe_failure
from mcpbridge._listing import ListedTool
from mcpbridge._names import ConflictPolicy, NamedTool, assign_names, join, safe_name
from mcpbridge._version import package_version
from mcpbridge.caching import ServerCache, ToolCache
from mcpbridge.config import ServerConfig, check_servers
from mcpbridge.credentials import credential_principal, written_by_user
from mcpbridge.errors import ConnectError, MCPBridgeError, ServerFailure, ToolNameConflictError, UsageError
from mcpbridge.identity import IdentityMeta
from mcpbridge.interrupts import InputPolicy
from mcpbridge.pool import SessionPool
from mcpbridge.tools import MCPTool

__all__ = ["Bridge"]

logger = logging.getLogger("mcpbridge")

_BUILD_BATCH: Final = 64
"""Tools wrapped between two yields to the event loop."""


class Bridge:
    """Connects to MCP servers for the duration of an ``async with`` block.

    Args:
        servers: The servers to connect to.
        identity: How the run's identity is written into each call's ``_meta``.
        on_name_conflict: ``"prefix"`` gives tools that share a name their server's
            name as prefix; ``"error"`` raises `ToolNameConflictError` instead. Names never
            depend on which servers connected: among several servers, an optional server's
            tools always carry its prefix (its ``prefix``, else its name) and yield to the others.
        server_log_level: The least severe server log message to receive (they go to
            the ``mcpbridge.server.<name>`` logger); ``None`` asks for none.
        refused: Servers refused before connecting (see `UserServers`); they are
            reported like failed servers, and a refused required server fails the entry.
        tool_filter: Keep only the tools it allows (matched against the names the model sees).
        pool: Borrow sessions from this pool, and give them back on exit, instead of
            opening and closing them.
        user: Whose sessions these are: a pool lends a session only to runs of its user.
        guests: Names of the servers a user registered (see `RegisteredServers`): their
            tools never take or change another server's tool name; a clashing one gets its
            server's name as prefix, or is dropped with a warning when that clashes too. Among
            several guests, an optional guest's tools always carry its prefix.
        registered: Deprecated name of ``guests``.
        tool_cache: Keep tool lists (and discovery results) in this cache across runs, per
            ``user`` and credential principal, as the servers' ``ttlMs``/``cacheScope`` hints say
            (see `ToolCache`); ``None`` keeps nothing across runs.
        input_policy: How the servers' requests during a call (2025-11-25 elicitation,
            sampling, roots; 2026-07-28 sampling and roots) are answered without a human
            (see `InputPolicy`); ``None`` declines elicitation and sampling.
        store: The store sampling budgets are kept in (the run's, on the Agent Server).

    Raises:
        ConnectError: On entry, when a required server cannot be connected.
        ToolNameConflictError: On entry, when tool names clash and the policy is ``"error"``.
        UsageError: On entering twice, or with a closed pool; on reading `tools` when not open.

    Example:
        ```python
        servers = [
            StdioServer(name="files", command="files-mcp"),
            HttpServer(name="search", url="https://search.example.com/mcp", required=False),
        ]
        async with Bridge(servers) as bridge:
            agent = create_agent(model, tools=bridge.tools)
            await agent.ainvoke({"messages": [("user", "find the report")]})
        ```
    """

    def __init__(
        self,
        servers: Iterable[ServerConfig],
        *,
        identity: IdentityMeta | None = None,
        on_name_conflict: ConflictPolicy = "prefix",
        server_log_level: types.LoggingLevel | None = "info",
        refused: Iterable[ServerFailure] = (),
        tool_filter: ToolFilter | None = None,
        pool: SessionPool | None = None,
        user: str | None = None,
        guests: Iterable[str] = (),
        registered: Iterable[str] | None = None,
        tool_cache: ToolCache | None = None,
        input_policy: InputPolicy | None = None,
        store: BaseStore | None = None,
    ) -> None:
        if registered is not None:
            if guests:
                raise UsageError("give `guests` only; `registered` is its deprecated name")
            warnings.warn(
                "Bridge(registered=...) is deprecated; use Bridge(guests=...)",
                DeprecationWarning,
                stacklevel=2,
            )
            guests = registered
        self.servers: tuple[ServerConfig, ...] = tuple(servers)
        check_servers(self.servers)
        self.refused: tuple[ServerFailure, ...] = tuple(refused)
        self.tool_filter = tool_filter
        self.pool = pool
        self.user = user
        self.guests = frozenset(guests)
        self.identity = identity or IdentityMeta()
        self.tool_cache = tool_cache
        self.input_policy = input_policy
        self.store = store
        self.on_name_conflict: ConflictPolicy = on_name_conflict
        self.server_log_level: types.LoggingLevel | None = server_log_level
        self._client_info = types.Implementation(name="mcpbridge", version=package_version())
        self._connections: dict[str, ServerConnection] = {}
        self._tools: list[MCPTool] = []
        self._failures: dict[str, ServerFailure] = {}
        self._stack: AsyncExitStack | None = None
        self._entered = False

    @property
    def tools(self) -> list[MCPTool]:
        """The tools of every connected server, with unique provider-safe names."""
        self._require_open()
        return list(self._tools)

    @property
    def failures(self) -> Mapping[str, ServerFailure]:
        """Optional servers that could not be connected or were refused, and why."""
        return dict(self._failures)

    @property
    def connected(self) -> Sequence[str]:
        """Names of the servers that are connected."""
        return [name for name, conn in self._connections.items() if conn.failure is None]

    def protocol_version(self, server: str) -> str | None:
        """The protocol version negotiated with ``server``."""
        return self._connections[server].protocol_version

    async def __aenter__(self) -> Self:
        if self._entered:
            raise UsageError("a Bridge can be entered only once; make a new Bridge for each run")
        self._entered = True
        refused = {f.server: f for f in self.refused}
        if any(f.required for f in refused.values()):
            raise ConnectError(refused)  # connect nothing when the run cannot go ahead
        async with AsyncExitStack() as stack:
            failures: dict[str, ServerFailure] = {}
            opened: dict[str, ServerConnection] = {}
            open_one = await self._opener(stack, opened)

            async def connect(server: ServerConfig) -> None:
                try:
                    opened[server.name] = await open_one(server)
                except Exception as exc:
                    failures[server.name] = ServerFailure(
                        server=server.name, reason=describe_failure(server, exc), required=server.required
                    )

            async with anyio.create_task_group() as starters:
                for server in self.servers:
                    starters.start_soon(connect, server)

            ordered = {s.name: failures[s.name] for s in self.servers if s.name in failures} | refused
            # Raised once the stack has closed: raised inside it, the task group would wrap it in a group.
            error: MCPBridgeError | None = None
            if any(f.required for f in ordered.values()):
                error = ConnectError(ordered)
            else:
                for failure in ordered.values():
                    if failure.server in refused:
                        continue  # reported by whoever refused it
                    logger.warning("skipping optional MCP server %r: %s", failure.server, failure.reason)
                self._failures = ordered
                self._connections = {s.name: opened[s.name] for s in self.servers if s.name in opened}
                try:
                    self._tools = await self._make_tools()
                except ToolNameConflictError as exc:
                    error = exc
                else:
                    self._stack = stack.pop_all()
        if error is not None:
            self._connections = {}
            raise error
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._tools = []
        if stack is not None:
            # Close without handing the body's exception to the task group, which would wrap it.
            await stack.aclose()

    async def _opener(
        self, stack: AsyncExitStack, opened: Mapping[str, ServerConnection]
    ) -> Callable[[ServerConfig], Awaitable[ServerConnection]]:
        """How to open one server's session: in this Bridge's own task group, or from the pool."""
        pool = self.pool
        if pool is not None:
            if pool.closed:
                raise UsageError("the Bridge's SessionPool is closed; give it an open pool")
            stack.callback(_release_all, pool, opened)

            async def borrow(server: ServerConfig) -> ServerConnection:
                connection = await pool.acquire(
                    server,
                    user=self.user,
                    client_info=self._client_info,
                    log_level=self.server_log_level,
                    cache=self._cache_of(server),
                    policy=self.input_policy,
                )
                connection.answerer.bind(self.input_policy, user=self.user, store=self.store)
                return connection

            return borrow
        sessions = await stack.enter_async_context(anyio.create_task_group())
        connections: list[ServerConnection] = []
        stack.callback(_close_all, connections)  # runs before the task group waits for them

        async def start(server: ServerConfig) -> ServerConnection:
            connection = ServerConnection(
                server,
                client_info=self._client_info,
                log_level=self.server_log_level,
                cache=self._cache_of(server),
                policy=self.input_policy,
            )
            connection.answerer.bind(self.input_policy, user=self.user, store=self.store)
            connections.append(connection)
            await sessions.start(connection.run)
            return connection

        return start

    def _cache_of(self, server: ServerConfig) -> ServerCache | None:
        """The server's cache for this run's principal: the user and whom its credentials are for."""
        if self.tool_cache is None:
            return None
        principal = credential_principal(server)
        return self.tool_cache.for_server(
            server,
            user=self.user,
            principal=principal,
            guest=server.name in self.guests,
            user_written=written_by_user(server),
        )

    def _prefix(self, connection: ServerConnection) -> str | None:
        """The prefix of a server's tools: its own, or, for an optional server among several, its name.

        The deployment's servers and the guests are counted apart: guests yield to the deployment's names.
        """
        config = connection.config
        guest = config.name in self.guests
        peers = sum((s.name in self.guests) == guest for s in self.servers)  # the guests, or the others
        if config.prefix is None and not config.required and peers > 1:
            return safe_name(config.name)
        return config.prefix

    def _require_open(self) -> None:
        if self._stack is None:
            raise UsageError("the Bridge is not open; use its tools inside `async with Bridge(...)`")

    async def _make_tools(self) -> list[MCPTool]:
        """Name and filter the tools the connections prepared, and wrap them for LangChain."""
        usable = [(c, listed) for c in self._connections.values() for listed in c.tools]
        # Names follow from the configuration and the selection, never from which servers connected:
        # the deployment's required servers (all connected once the Bridge is open) are named together;
        # with several servers selected, an optional server's tools carry its prefix, and they and the
        # tools of user-registered servers yield to the names already given.
        fixed = [u for u in usable if u[0].name not in self.guests and u[0].config.required]
        optional = [u for u in usable if u[0].name not in self.guests and not u[0].config.required]
        guests = [u for u in usable if u[0].name in self.guests]
        named = assign_names(
            [(c.name, t.tool.name, self._prefix(c)) for c, t in fixed], on_conflict=self.on_name_conflict
        )
        taken = {n.name for n in named}
        kept = list(fixed)
        yielding: tuple[tuple[list[tuple[ServerConnection, ListedTool]], ConflictPolicy], ...] = (
            (optional, self.on_name_conflict),
            (guests, "prefix"),
        )
        for group, policy in yielding:
            candidates = [(c.name, t.tool.name, self._prefix(c)) for c, t in group]
            for entry, naming in zip(group, assign_names(candidates, on_conflict=policy), strict=True):
                name = naming.name
                if name in taken:
                    name = join(safe_name(naming.server), name)
                if name in taken:
                    logger.warning(
                        "dropping tool %r of %s MCP server %r: its name %r belongs to another tool",
                        naming.mcp_name,
                        "registered" if group is guests else "optional",
                        naming.server,
                        name,
                    )
                    continue
                taken.add(name)
                kept.append(entry)
                named.append(NamedTool(server=naming.server, mcp_name=naming.mcp_name, name=name))
        tools: list[MCPTool] = []
        for index, ((connection, listed), naming) in enumerate(zip(kept, named, strict=True)):
            if index % _BUILD_BATCH == _BUILD_BATCH - 1:
                await anyio.lowlevel.checkpoint()  # many tools: let other runs go on between batches
            if self.tool_filter is not None and not self.tool_filter.allows(naming.name):
                continue
            tools.append(
                MCPTool(
                    name=naming.name,
                    description=listed.description,
                    args_schema=listed.schema,
                    server=connection.name,
                    mcp_name=listed.tool.name,
                    max_result_chars=connection.config.max_result_chars,
                    max_progress_per_second=connection.config.max_progress_per_second,
                    metadata={"mcp_server": connection.name, "mcp_tool": listed.tool.name},
                    caller=connection,
                    identity=self.identity,
                    registered=connection.name in self.guests,
                    validator=listed.validator,
                )
            )
        return tools


def _close_all(connections: Sequence[ServerConnection]) -> None:
    for connection in connections:
        connection.close()


def _release_all(pool: SessionPool, lent: Mapping[str, ServerConnection]) -> None:
    for connection in lent.values():
        pool.release(connection)
