"""The one exception tree of mcpbridge.

Caller mistakes (bad configuration, bad usage) are kept apart from runtime
failures (a server that is down, slow or broken)::

    MCPBridgeError
    ├── ConfigError            bad server configuration or options; fix the input (also a ValueError)
    │   ├── ToolNameConflictError   two tools would share a name
    │   └── TopologyMismatchError   the run's graph differs from the read graph
    ├── UsageError             mcpbridge used the wrong way round; fix the calling code (also a RuntimeError)
    ├── ServerRefusedError     a server is refused for one user's run (URL policy, credentials)
    │   └── OAuthError              a step of a user's OAuth authorization for a server failed or was refused
    ├── ServerError            an MCP server failed at run time (also a RuntimeError)
    │   ├── ConnectError            one or more required servers could not be connected
    │   └── ToolCallError           a tools/call failed (transport, protocol)
    │       └── ToolTimeoutError        a tools/call did not answer in time
    └── IdentityError          (MCP server side) a signed identity assertion was rejected

Failures of the libraries below (httpx, the MCP SDK) are translated into these
at one boundary, and the exceptions private modules raise among themselves
derive from `MCPBridgeError` too. Two exceptions are those of a protocol: a
server model made directly (``StdioServer(...)``) reports a bad field as
pydantic's ``ValidationError`` (a `ValueError`, as `ConfigError` is; the loaders
raise `ConfigError`), and a tool's error reaches LangChain as its
``ToolException``, which becomes the model's error message.

Every message says what happened and what to do next. Secrets (headers,
tokens, environment values) never appear in messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "ConfigError",
    "ConnectError",
    "IdentityError",
    "MCPBridgeError",
    "OAuthError",
    "ServerError",
    "ServerFailure",
    "ServerRefusedError",
    "ToolCallError",
    "ToolNameConflictError",
    "ToolTimeoutError",
    "TopologyMismatchError",
    "UsageError",
]


class MCPBridgeError(Exception):
    """Base class of every exception raised by mcpbridge."""


class ConfigError(MCPBridgeError, ValueError):
    """A server configuration or an option is invalid.

    Attributes:
        server: The server the problem belongs to, if any.
        field: The offending field, if any.
    """

    def __init__(self, message: str, *, server: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.server = server
        self.field = field


class ToolNameConflictError(ConfigError):
    """Two tools resolve to the same name and the conflict policy is ``"error"``."""


class TopologyMismatchError(ConfigError):
    """The graph built for execution differs from the one built for reads and updates.

    Attributes:
        differences: One readable line per difference.
    """

    def __init__(self, differences: list[str]) -> None:
        body = "\n".join(f"  - {line}" for line in differences)
        super().__init__(
            "the graph built for runs differs from the graph built for reads, updates and schemas:\n"
            f"{body}\nBuild the same nodes and edges whatever tools are connected "
            "(with create_agent, keep a middleware that wraps tool calls so the `tools` node stays)."
        )
        self.differences = differences


class UsageError(MCPBridgeError, RuntimeError):
    """mcpbridge was used in a way it does not support: a mistake in the calling code.

    Entering a `Bridge` twice, using its tools outside ``async with``, lending from a
    closed `SessionPool`, or calling `verified_identity` outside a verified request.
    The message says what to do instead. A `RuntimeError` too, as these were before.

    Example:
        ```python
        bridge = Bridge(servers)
        try:
            bridge.tools  # not entered yet
        except UsageError as exc:
            print(exc)  # the Bridge is not open; use its tools inside `async with Bridge(...)`
        ```
    """


class ServerRefusedError(MCPBridgeError):
    """A server entry is refused for one user's run.

    Its URL breaks the policy, its credentials are missing, or a template names
    a user field the user does not have. The run goes on without the server
    when it is optional; the reason is reported. An outcome of one user's run,
    not a mistake in the deployment's configuration, so not a `ConfigError`.

    Attributes:
        server: The refused server.
        field: The offending field, if any.
    """

    def __init__(self, message: str, *, server: str, field: str | None = None) -> None:
        super().__init__(message)
        self.server = server
        self.field = field


class OAuthError(ServerRefusedError):
    """A step of one user's OAuth authorization for a server failed or was refused.

    Discovery found no usable metadata, registration failed, a metadata document
    pointed at a URL the policy refuses, a callback's ``state`` was unknown, used,
    expired or another user's, the ``iss`` was wrong, or the authorization server
    refused the code or the refresh token. Nothing was stored; the user authorizes
    again. Messages never hold a token, code, verifier, state or client secret.

    Attributes:
        server: The server the authorization was for (empty when a callback's ``state`` is unknown).
        reason: One of ``discovery``, ``registration``, ``url_refused``, ``state_missing``,
            ``state_unknown``, ``state_expired``, ``state_user``, ``issuer_mismatch``,
            ``denied``, ``code_missing``, ``token``, ``refresh`` (the authorization server could
            not be reached; try later), ``authorization_needed`` (the user has no usable tokens for
            the server, or the authorization server refused their refresh: they authorize again),
            ``revoke``.
        authorization_url: With ``authorization_needed`` raised for a run: where to send the
            user to authorize the server (show it to that user only; never log it).

    Example:
        ```python
        try:
            done = await flow.complete(user="alice", params=request.query_params)
        except OAuthError as exc:
            print(exc.reason)  # state_unknown: a forged or replayed callback
        ```
    """

    def __init__(
        self,
        message: str,
        *,
        server: str,
        reason: str,
        field: str | None = None,
        authorization_url: str | None = None,
    ) -> None:
        super().__init__(message, server=server, field=field)
        self.reason = reason
        self.authorization_url = authorization_url


class ServerError(MCPBridgeError, RuntimeError):
    """An MCP server failed at run time.

    A `RuntimeError` too, so hosts that show only the messages of built-in error
    types (the Agent Server does) show these: they name the server and never a secret.

    Attributes:
        server: The name of the server.
    """

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message)
        self.server = server


@dataclass(frozen=True, slots=True)
class ServerFailure:
    """Why a server could not be connected.

    Attributes:
        server: The server's name.
        reason: A readable account of the failure, with what to do about it.
        required: Whether the server was required.
        authorization_url: Where the run's user authorizes the server, when it needs their OAuth
            authorization (the agent's middleware asks them in an interrupt); never logged.
    """

    server: str
    reason: str
    required: bool
    authorization_url: str | None = field(default=None, repr=False, compare=False)


class ConnectError(ServerError):
    """One or more required MCP servers could not be connected.

    Attributes:
        failures: Every server that failed, keyed by name (optional ones included).
    """

    def __init__(self, failures: Mapping[str, ServerFailure]) -> None:
        required = [f for f in failures.values() if f.required]
        lines = "\n".join(f"  - {f.server}: {f.reason}" for f in required)
        noun = "server" if len(required) == 1 else "servers"
        super().__init__(
            f"could not connect to {len(required)} required MCP {noun}:\n{lines}\n"
            "Start the server or fix its configuration, or mark it `required=False` to run without it.",
            server=required[0].server if required else "",
        )
        self.failures = dict(failures)


class ToolCallError(ServerError):
    """A ``tools/call`` failed: the server is unreachable, died, or answered with a protocol error.

    Attributes:
        tool: The MCP tool name.
        code: The JSON-RPC error code, when the server sent one.
        data: The JSON-RPC error data, when the server sent it.
    """

    def __init__(
        self, message: str, *, server: str, tool: str, code: int | None = None, data: object = None
    ) -> None:
        super().__init__(message, server=server)
        self.tool = tool
        self.code = code
        self.data = data


class ToolTimeoutError(ToolCallError, TimeoutError):
    """A ``tools/call`` did not complete within its timeout; the request was cancelled."""


class IdentityError(MCPBridgeError):
    """A signed identity assertion was missing or invalid (raised on the MCP server side).

    Attributes:
        reason: One of ``missing``, ``malformed``, ``bad_signature``, ``expired``,
            ``not_yet_valid``, ``wrong_audience``, ``wrong_issuer``, ``missing_claim``.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
