"""mcpbridge: MCP servers as run-scoped LangGraph tools, and LangGraph agents as MCP servers.

This module holds what an agent author types. Other readers have their own modules:
`mcpbridge.scoping` (user-scoped servers), `mcpbridge.server` (for MCP server authors),
`mcpbridge.events` (stream event names), `mcpbridge.topology`, `mcpbridge.identity`,
`mcpbridge.testing` (test doubles) and `mcpbridge.serving` (agents as MCP servers).
"""

from mcpbridge._deprecation import moved
from mcpbridge._mcpjson import load_servers, parse_servers
from mcpbridge.bridge import Bridge
from mcpbridge.caching import ToolCache
from mcpbridge.config import HttpServer, MemoryServer, ServerConfig, SseServer, StdioServer
from mcpbridge.credentials import CredentialProvider, Credentials, EnvCredentials, StoreCredentials
from mcpbridge.errors import (
    ConfigError,
    ConnectError,
    IdentityError,
    MCPBridgeError,
    OAuthError,
    ServerError,
    ServerFailure,
    ServerRefusedError,
    ToolCallError,
    ToolNameConflictError,
    ToolTimeoutError,
    TopologyMismatchError,
    UsageError,
)
from mcpbridge.factory import BridgeMiddleware, GraphFactory, agent_factory, graph_factory
from mcpbridge.identity import IdentityMeta, RunIdentity
from mcpbridge.pool import SessionPool
from mcpbridge.signing import IdentitySigner
from mcpbridge.tools import MCPTool
from mcpbridge.urlpolicy import UrlPolicy

__all__ = [
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
]

# Names that moved to their topic module; they keep working, with a warning, for one release.
# (`mcpbridge.topology` is the module now; calling it still calls `mcpbridge.topology.topology`.)
__getattr__ = moved(
    "mcpbridge",
    {
        **dict.fromkeys(("PROGRESS_EVENT", "SKIPPED_EVENT"), "mcpbridge.events"),
        **dict.fromkeys(("Topology", "check_topology"), "mcpbridge.topology"),
        "identity_from_runtime": "mcpbridge.identity",
        **dict.fromkeys(("MODEL_ENV", "OfflineChatModel", "load_chat_model"), "mcpbridge.testing"),
        **dict.fromkeys(
            (
                "DEFAULT_META_PREFIX",
                "IDENTITY_HEADER",
                "TOKEN_FIELD",
                "IdentityVerifier",
                "VerifiedIdentity",
                "verified_identity",
            ),
            "mcpbridge.server",
        ),
        **dict.fromkeys(
            (
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
            ),
            "mcpbridge.scoping",
        ),
    },
)
