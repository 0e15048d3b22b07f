"""The run's identity, forwarded to MCP servers in the ``_meta`` of every ``tools/call``.

Identity is read from the tool's ``ToolRuntime`` (``execution_info`` and
``server_info``, langgraph >= 1.1.5), falling back to the run config. It travels
under namespaced keys, by default::

    dev.mcpbridge/thread_id      the LangGraph thread
    dev.mcpbridge/run_id         the run
    dev.mcpbridge/user_id        the authenticated user's identity
    dev.mcpbridge/assistant_id   the assistant
    dev.mcpbridge/graph_id       the graph

Model-supplied arguments never reach ``_meta``: identity comes from the runtime only.
With a `Signer` (such as `mcpbridge.IdentitySigner`), each call also carries a signed
token (``dev.mcpbridge/identity_token``, and the ``Mcpbridge-Identity`` header over HTTP)
that the server can verify (`mcpbridge.server.IdentityVerifier`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from langchain_core.runnables import RunnableConfig

from mcpbridge.errors import ConfigError

__all__ = ["IdentityMeta", "RunIdentity", "Signer", "identity_from_runtime"]

DEFAULT_META_PREFIX = "dev.mcpbridge/"
TOKEN_FIELD = "identity_token"
"""The ``_meta`` key of the signed identity token, after the prefix (``dev.mcpbridge/identity_token``)."""

# MCP reserves prefixes whose second label is `modelcontextprotocol` or `mcp`
# (io.modelcontextprotocol/, dev.mcp/).
_RESERVED = re.compile(r"^(?:[a-z0-9-]+\.)?(?:modelcontextprotocol|mcp)(?:[./]|$)", re.IGNORECASE)
_PREFIX = re.compile(r"^(?:[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?/$")


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """Who and what a tool call serves.

    Attributes:
        thread_id: The LangGraph thread, if the run has one.
        run_id: The run.
        user_id: The authenticated user's identity, if any.
        assistant_id: The Agent Server assistant, if any.
        graph_id: The Agent Server graph, if any.
    """

    thread_id: str | None = None
    run_id: str | None = None
    user_id: str | None = None
    assistant_id: str | None = None
    graph_id: str | None = None


_FIELDS = tuple(f.name for f in fields(RunIdentity))


class Signer(Protocol):
    """Signs a call's identity for the server it goes to (`mcpbridge.IdentitySigner` is one).

    Example:
        ```python
        IdentityMeta(signer=IdentitySigner(os.environ["MCP_IDENTITY_SECRET"]))
        ```
    """

    @property
    def header(self) -> str | None:
        """The HTTP header that also carries the token on HTTP transports; ``None``: ``_meta`` only."""
        ...

    def sign(self, identity: RunIdentity, *, server: str, registered: bool = False) -> str:
        """A token asserting ``identity`` to ``server`` (``registered``: a server a user registered)."""
        ...


@dataclass(frozen=True, slots=True)
class IdentityMeta:
    """How the run's identity is written into ``_meta``.

    Attributes:
        prefix: Namespace of the keys; must not be one MCP reserves.
        include: Which `RunIdentity` fields to send.
        enabled: Send nothing when ``False``.
        signer: Also send a signed token the server can verify (opt-in).

    Example:
        ```python
        IdentityMeta(prefix="com.acme.agents/", include=("thread_id", "user_id"))
        IdentityMeta(signer=IdentitySigner(os.environ["MCP_IDENTITY_SECRET"]))
        ```
    """

    prefix: str = DEFAULT_META_PREFIX
    include: tuple[str, ...] = _FIELDS
    enabled: bool = True
    signer: Signer | None = None
    _keys: tuple[tuple[int, str], ...] = field(init=False, repr=False, compare=False)
    """Each included field's position in `RunIdentity` with its ``_meta`` key, made once."""

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ConfigError(
                f"identity _meta prefix {self.prefix!r} is not a valid MCP _meta prefix; "
                "use dot-separated labels ending in '/', such as 'com.example/'",
                field="prefix",
            )
        if _RESERVED.match(self.prefix):
            raise ConfigError(
                f"identity _meta prefix {self.prefix!r} is reserved by MCP; use your own domain, "
                "such as 'com.example/'",
                field="prefix",
            )
        unknown = set(self.include) - set(_FIELDS)
        if unknown:
            raise ConfigError(
                f"identity fields {sorted(unknown)} do not exist; choose from {list(_FIELDS)}",
                field="include",
            )
        keys = tuple((_FIELDS.index(name), f"{self.prefix}{name}") for name in self.include)
        object.__setattr__(self, "_keys", keys)  # frozen: set once, here

    def key(self, field: str) -> str:
        """The ``_meta`` key of one identity field."""
        return f"{self.prefix}{field}"

    def build(self, identity: RunIdentity) -> dict[str, str]:
        """The ``_meta`` entries for ``identity`` (fields that are ``None`` are left out)."""
        if not self.enabled:
            return {}
        return self._entries(tuple(getattr(identity, name) for name in _FIELDS))

    def for_call(
        self, identity: RunIdentity, *, server: str, registered: bool = False
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The ``_meta`` entries and HTTP headers for one call to ``server``.

        ``registered`` marks a server a user registered; its token's audience is ``registered/<server>``.
        """
        meta = self.build(identity)
        if not self.enabled or self.signer is None:
            return meta, {}
        token = self.signer.sign(identity, server=server, registered=registered)
        meta[self.key(TOKEN_FIELD)] = token
        return meta, {self.signer.header: token} if self.signer.header else {}

    def for_runtime(
        self, runtime: Any | None, config: RunnableConfig | None, *, server: str, registered: bool = False
    ) -> tuple[dict[str, str], dict[str, str]]:
        """`for_call` of the identity `identity_from_runtime` reads from ``runtime`` and ``config``.

        The per-call path of every tool: without a signer, no `RunIdentity` is made on the way.
        """
        if not self.enabled:
            return {}, {}
        raw = _raw_identity(runtime, config)
        if self.signer is not None:
            return self.for_call(RunIdentity(*map(_str, raw)), server=server, registered=registered)
        meta: dict[str, str] = {}
        for index, key in self._keys:  # `_entries` of `_str`'s values, inline: this runs on every call
            value = raw[index]
            if value is not None and value != "":
                meta[key] = value if value.__class__ is str else str(value)
        return meta, {}

    def _entries(self, values: tuple[str | None, ...]) -> dict[str, str]:
        """The ``_meta`` entries of an identity's fields (in `RunIdentity`'s order) that are set."""
        meta: dict[str, str] = {}
        for index, key in self._keys:
            value = values[index]
            if value is not None:
                meta[key] = value
        return meta

    def read(self, meta: Mapping[str, Any] | None) -> RunIdentity:
        """Read a `RunIdentity` back from a request's ``_meta`` (for MCP servers)."""
        meta = meta or {}
        values = {name: meta.get(self.key(name)) for name in _FIELDS}
        return RunIdentity(**{k: str(v) if v is not None else None for k, v in values.items()})


_EMPTY: Mapping[str, Any] = {}


def identity_from_runtime(runtime: Any | None, config: RunnableConfig | None = None) -> RunIdentity:
    """Read the run's identity from a ``ToolRuntime``, falling back to the run config.

    Args:
        runtime: The tool's injected ``ToolRuntime``, or ``None`` when called outside a graph.
        config: The run config; defaults to ``runtime.config``.
    """
    return RunIdentity(*map(_str, _raw_identity(runtime, config)))


def _raw_identity(runtime: Any | None, config: RunnableConfig | None) -> tuple[Any, Any, Any, Any, Any]:
    """`identity_from_runtime`'s fields as found, in `RunIdentity`'s order; `_str` makes them fields.

    A tuple, not a `RunIdentity`: a frozen dataclass costs ~2 us to make, on every call.
    """
    execution = getattr(runtime, "execution_info", None)
    server = getattr(runtime, "server_info", None)
    if config is None:
        config = getattr(runtime, "config", None)
    run: Mapping[str, Any] = config or _EMPTY
    configurable: Mapping[str, Any] = run.get("configurable") or _EMPTY
    metadata: Mapping[str, Any] = run.get("metadata") or _EMPTY

    if server is None:  # outside the Agent Server: the config tells the rest
        user_id = _user_identity(configurable.get("langgraph_auth_user"))
        assistant_id, graph_id = metadata.get("assistant_id"), metadata.get("graph_id")
    else:
        user_id = _user_identity(getattr(server, "user", None) or configurable.get("langgraph_auth_user"))
        assistant_id = getattr(server, "assistant_id", None) or metadata.get("assistant_id")
        graph_id = getattr(server, "graph_id", None) or metadata.get("graph_id")
    if execution is None:
        thread_id, run_id = configurable.get("thread_id"), run.get("run_id") or metadata.get("run_id")
    else:
        thread_id = getattr(execution, "thread_id", None) or configurable.get("thread_id")
        run_id = getattr(execution, "run_id", None) or run.get("run_id") or metadata.get("run_id")
    return thread_id, run_id, user_id or configurable.get("langgraph_auth_user_id"), assistant_id, graph_id


def _user_identity(user: Any) -> str | None:
    if user is None:
        return None
    identity: Any = getattr(user, "identity", None)
    if identity is None and isinstance(user, Mapping):
        identity = user.get("identity")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return _str(identity)


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
