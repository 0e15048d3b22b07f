from __future__ import annotations

import mcpbridge

PUBLIC_API = {
    "DEFAULT_META_PREFIX",
    "MODEL_ENV",
    "PROGRESS_EVENT",
    "SKIPPED_EVENT",
    "Bridge",
    "BridgeMiddleware",
    "ConfigError",
    "ConnectError",
    "GraphFactory",
    "HttpServer",
    "IdentityMeta",
    "MCPBridgeError",
    "MCPTool",
    "MemoryServer",
    "OfflineChatModel",
    "RunIdentity",
    "ServerConfig",
    "ServerError",
    "ServerFailure",
    "SseServer",
    "StdioServer",
    "ToolCallError",
    "ToolNameConflictError",
    "ToolTimeoutError",
    "Topology",
    "TopologyMismatchError",
    "UsageError",
    "agent_factory",
    "check_topology",
    "graph_factory",
    "identity_from_runtime",
    "load_chat_model",
    "load_servers",
    "parse_servers",
    "topology",
    "IDENTITY_HEADER",
    "TOKEN_FIELD",
    "CredentialProvider",
    "Credentials",
    "EnvCredentials",
    "StoreCredentials",
    "IdentityError",
    "ServerRefusedError",
    "IdentitySigner",
    "IdentityVerifier",
    "VerifiedIdentity",
    "verified_identity",
    "RegisteredServers",
    "Scoped",
    "Selection",
    "UserServers",
    "ToolFilter",
    "UserContext",
    "has_permission",
    "has_any_permission",
    "user_in",
    "UrlPolicy",
    "SessionPool",
    "Rule",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(mcpbridge.__all__) == PUBLIC_API
    assert len(mcpbridge.__all__) == len(PUBLIC_API)


def isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


def test_all_is_sorted() -> None:
    assert list(mcpbridge.__all__) == sorted(mcpbridge.__all__, key=isort_key)


def test_every_exported_name_exists() -> None:
    for name in mcpbridge.__all__:
        assert getattr(mcpbridge, name) is not None, name


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from mcpbridge import *", namespace)
    assert set(namespace) - {"__builtins__"} == PUBLIC_API
