"""The public API: the names of every public module, and the old names that still work for one release."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

import pytest

import mcpbridge
from mcpbridge import Bridge, MemoryServer, ServerConfig
from mcpbridge.scoping import UserServers

PUBLIC_API: dict[str, list[str]] = {
    "mcpbridge": [
        "Bridge",
        "BridgeMiddleware",
        "ConfigError",
        "ConnectError",
        "CredentialProvider",
        "Credentials",
        "EnvCredentials",
        "GraphFactory",
        "HttpServer",
        "IdentityError",
        "IdentityMeta",
        "IdentitySigner",
        "MCPBridgeError",
        "MCPTool",
        "MemoryServer",
        "OAuthError",
        "RunIdentity",
        "ServerConfig",
        "ServerError",
        "ServerFailure",
        "ServerRefusedError",
        "SessionPool",
        "SseServer",
        "StdioServer",
        "StoreCredentials",
        "ToolCache",
        "ToolCallError",
        "ToolNameConflictError",
        "ToolTimeoutError",
        "TopologyMismatchError",
        "UrlPolicy",
        "UsageError",
        "agent_factory",
        "graph_factory",
        "load_servers",
        "parse_servers",
    ],
    "mcpbridge.errors": [
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
    ],
    "mcpbridge.oauth": [
        "AuthorizationRequest",
        "Authorized",
        "ClientRegistry",
        "Connection",
        "Discovery",
        "KEYS_ENV",
        "KeyRing",
        "OAuthClient",
        "OAuthCredentials",
        "OAuthFlow",
        "OAuthSettings",
        "PendingAuthorization",
        "RESERVED_NAMESPACE",
        "StateStore",
        "StoreClientRegistry",
        "StoreStateStore",
        "TokenStore",
        "Tokens",
        "authorization_node",
        "oauth_routes",
        "request_identity",
        "reserved",
    ],
    "mcpbridge.scoping": [
        "RegisteredServers",
        "Rule",
        "Scoped",
        "Selection",
        "ToolFilter",
        "UserContext",
        "UserServers",
        "has_any_permission",
        "has_permission",
        "user_in",
    ],
    "mcpbridge.server": [
        "DEFAULT_META_PREFIX",
        "IDENTITY_HEADER",
        "IdentityVerifier",
        "TOKEN_FIELD",
        "VerifiedIdentity",
        "verified_identity",
    ],
    "mcpbridge.events": ["PROGRESS_EVENT", "SKIPPED_EVENT"],
    "mcpbridge.interrupts": [
        "ElicitationAnswer",
        "ElicitationHandler",
        "ElicitationRequest",
        "INPUT_REQUEST",
        "INPUT_SECRET_ENV",
        "InputPolicy",
    ],
    "mcpbridge.sampling": ["BUDGET_NAMESPACE", "Sampling", "reserved_budget"],
    "mcpbridge.caching": ["ToolCache"],
    "mcpbridge.history": ["UNFINISHED_CALL", "repair_tool_calls", "repaired_messages_update"],
    "mcpbridge.topology": ["Topology", "check_topology", "topology"],
    "mcpbridge.identity": ["IdentityMeta", "RunIdentity", "Signer", "identity_from_runtime"],
    "mcpbridge.testing": ["MODEL_ENV", "OfflineChatModel", "load_chat_model"],
    "mcpbridge.serving": [
        "AgentMCPServer",
        "Backend",
        "Caller",
        "CheckpointerSpec",
        "ClientInput",
        "Introspection",
        "LocalGraphs",
        "OpenBackend",
        "ProtectedResource",
        "RemoteAssistants",
        "RemoteTokenCheck",
        "ServedGraph",
        "ServedUser",
        "UserVerifier",
        "open_checkpointer",
    ],
}

# Old name -> the module it moved to; the old name still works, with a warning, for one release.
MOVED: dict[str, dict[str, str]] = {
    "mcpbridge": {
        "PROGRESS_EVENT": "mcpbridge.events",
        "SKIPPED_EVENT": "mcpbridge.events",
        "Topology": "mcpbridge.topology",
        "check_topology": "mcpbridge.topology",
        "identity_from_runtime": "mcpbridge.identity",
        "MODEL_ENV": "mcpbridge.testing",
        "OfflineChatModel": "mcpbridge.testing",
        "load_chat_model": "mcpbridge.testing",
        "DEFAULT_META_PREFIX": "mcpbridge.server",
        "IDENTITY_HEADER": "mcpbridge.server",
        "TOKEN_FIELD": "mcpbridge.server",
        "IdentityVerifier": "mcpbridge.server",
        "VerifiedIdentity": "mcpbridge.server",
        "verified_identity": "mcpbridge.server",
        "RegisteredServers": "mcpbridge.scoping",
        "Rule": "mcpbridge.scoping",
        "Scoped": "mcpbridge.scoping",
        "Selection": "mcpbridge.scoping",
        "ToolFilter": "mcpbridge.scoping",
        "UserContext": "mcpbridge.scoping",
        "UserServers": "mcpbridge.scoping",
        "has_any_permission": "mcpbridge.scoping",
        "has_permission": "mcpbridge.scoping",
        "user_in": "mcpbridge.scoping",
    },
    "mcpbridge.users": {
        "Rule": "mcpbridge.scoping",
        "ToolFilter": "mcpbridge.scoping",
        "UserContext": "mcpbridge.scoping",
        "has_any_permission": "mcpbridge.scoping",
        "has_permission": "mcpbridge.scoping",
        "user_in": "mcpbridge.scoping",
        "render_server": "mcpbridge._templating",
    },
    "mcpbridge.models": {
        "MODEL_ENV": "mcpbridge.testing",
        "OfflineChatModel": "mcpbridge.testing",
        "load_chat_model": "mcpbridge.testing",
    },
    "mcpbridge.signing": {
        "IdentityVerifier": "mcpbridge.server",
        "VerifiedIdentity": "mcpbridge.server",
        "verified_identity": "mcpbridge.server",
        "TOKEN_FIELD": "mcpbridge.server",
    },
    "mcpbridge.config": {"load_servers": "mcpbridge", "parse_servers": "mcpbridge"},
    "mcpbridge.serving": {
        "load_config_graphs": "mcpbridge.serving.loading",
        "load_graph": "mcpbridge.serving.loading",
        "load_object": "mcpbridge.serving.loading",
        "parse_graph_arg": "mcpbridge.serving.loading",
        "parse_checkpointer": "mcpbridge.serving.checkpointers",
        "OUTPUT_SCHEMA": "mcpbridge.serving.interface",
        "ToolInterface": "mcpbridge.serving.interface",
        "interface_for": "mcpbridge.serving.interface",
        "ProgressReporter": "mcpbridge.serving.progress",
    },
}


@pytest.mark.parametrize("module", sorted(PUBLIC_API))
def test_all_is_exactly_the_public_api(module: str) -> None:
    assert sorted(importlib.import_module(module).__all__) == PUBLIC_API[module]
    assert PUBLIC_API[module] == sorted(PUBLIC_API[module])


@pytest.mark.parametrize("module", sorted(PUBLIC_API))
def test_every_public_name_resolves_without_a_warning(module: str) -> None:
    imported = importlib.import_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in imported.__all__:
            assert getattr(imported, name) is not None, name


@pytest.mark.parametrize("module", sorted(PUBLIC_API))
def test_star_import_gives_exactly_all(module: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module} import *", namespace)
    assert sorted(set(namespace) - {"__builtins__"}) == PUBLIC_API[module]


def test_each_public_name_has_one_public_home() -> None:
    """A name is in ``__all__`` of one public module, besides the top level re-exporting it."""
    homes: dict[str, list[str]] = {}
    for module, names in PUBLIC_API.items():
        if module != "mcpbridge":
            for name in names:
                homes.setdefault(name, []).append(module)
    assert {name: where for name, where in homes.items() if len(where) > 1} == {}


@pytest.mark.parametrize(
    ("module", "name", "home"),
    [(module, name, home) for module, names in MOVED.items() for name, home in names.items()],
)
def test_a_moved_name_still_works_with_a_warning_naming_its_home(module: str, name: str, home: str) -> None:
    old: ModuleType = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{name} is deprecated; import it from {home}\b"):
        value = getattr(old, name)
    assert value is getattr(importlib.import_module(home), name)


def test_a_moved_name_imports_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="mcpbridge.scoping"):
        from mcpbridge import UserServers as Old  # pyright: ignore[reportAttributeAccessIssue]
    assert Old is UserServers


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        mcpbridge.Nothing  # noqa: B018  # pyright: ignore[reportAttributeAccessIssue]


def test_bridge_registered_is_the_deprecated_name_of_guests() -> None:
    server = MemoryServer(name="local", server=object())
    with pytest.warns(DeprecationWarning, match=r"Bridge\(guests=\.\.\.\)"):
        bridge = Bridge([server], registered=["local"])
    assert bridge.guests == Bridge([server], guests=["local"]).guests == frozenset({"local"})
    with pytest.raises(mcpbridge.UsageError, match="give `guests` only"):
        Bridge([server], guests=["local"], registered=["local"])


def test_server_config_is_the_base_of_every_kind() -> None:
    stdio = mcpbridge.StdioServer(name="files", command="files-mcp")
    http = mcpbridge.HttpServer(name="search", url="https://mcp.example.com/mcp")
    sse = mcpbridge.SseServer(name="legacy", url="http://127.0.0.1:8000/sse")
    memory = MemoryServer(name="local", server=object())
    assert all(isinstance(server, ServerConfig) for server in (stdio, http, sse, memory))
    assert mcpbridge.parse_servers({"mcpServers": {"files": {"command": "files-mcp"}}}) == [stdio]


def test_bridge_refuses_a_bare_server_config() -> None:
    with pytest.raises(
        mcpbridge.ConfigError, match="give a StdioServer, HttpServer, SseServer or MemoryServer"
    ):
        Bridge([ServerConfig(name="bare")])


def test_calling_the_topology_module_still_fingerprints_with_a_warning() -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph

    import mcpbridge
    import mcpbridge.topology

    builder = StateGraph(MessagesState)
    builder.add_node("model", lambda state: state)
    builder.add_edge(START, "model")
    builder.add_edge("model", END)
    graph = builder.compile()
    with pytest.warns(DeprecationWarning, match=r"call mcpbridge\.topology\.topology"):
        old = mcpbridge.topology(graph)  # pyright: ignore[reportCallIssue]
    assert old == mcpbridge.topology.topology(graph)
