"""mcpbridge: MCP servers as run-scoped LangGraph tools, and LangGraph agents as MCP servers."""

from mcpbridge.bridge import Bridge
from mcpbridge.config import (
    HttpServer,
    MemoryServer,
    ServerConfig,
    SseServer,
    StdioServer,
    load_servers,
    parse_servers,
)
from mcpbridge.credentials import CredentialProvider, Credentials, EnvCredentials, StoreCredentials
from mcpbridge.errors import (
    ConfigError,
    ConnectError,
    IdentityError,
    MCPBridgeError,
    ServerError,
    ServerFailure,
    ServerRefusedError,
    ToolCallError,
    ToolNameConflictError,
    ToolTimeoutError,
    TopologyMismatchError,
    UsageError,
)
from mcpbridge.factory import SKIPPED_EVENT, BridgeMiddleware, GraphFactory, agent_factory, graph_factory
from mcpbridge.identity import (
    DEFAULT_META_PREFIX,
    TOKEN_FIELD,
    IdentityMeta,
    RunIdentity,
    identity_from_runtime,
)
from mcpbridge.models import MODEL_ENV, OfflineChatModel, load_chat_model
from mcpbridge.pool import SessionPool
from mcpbridge.scoping import RegisteredServers, Scoped, Selection, UserServers
from mcpbridge.signing import (
    IDENTITY_HEADER,
    IdentitySigner,
    IdentityVerifier,
    VerifiedIdentity,
    verified_identity,
)
from mcpbridge.tools import PROGRESS_EVENT, MCPTool
from mcpbridge.topology import Topology, check_topology, topology
from mcpbridge.urlpolicy import UrlPolicy
from mcpbridge.users import Rule, ToolFilter, UserContext, has_any_permission, has_permission, user_in

__all__ = [
    "DEFAULT_META_PREFIX",
    "IDENTITY_HEADER",
    "MODEL_ENV",
    "PROGRESS_EVENT",
    "SKIPPED_EVENT",
    "TOKEN_FIELD",
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
    "IdentityVerifier",
    "MCPBridgeError",
    "MCPTool",
    "MemoryServer",
    "OfflineChatModel",
    "RegisteredServers",
    "Rule",
    "RunIdentity",
    "Scoped",
    "Selection",
    "ServerConfig",
    "ServerError",
    "ServerFailure",
    "ServerRefusedError",
    "SessionPool",
    "SseServer",
    "StdioServer",
    "StoreCredentials",
    "ToolCallError",
    "ToolFilter",
    "ToolNameConflictError",
    "ToolTimeoutError",
    "Topology",
    "TopologyMismatchError",
    "UrlPolicy",
    "UsageError",
    "UserContext",
    "UserServers",
    "VerifiedIdentity",
    "agent_factory",
    "check_topology",
    "graph_factory",
    "has_any_permission",
    "has_permission",
    "identity_from_runtime",
    "load_chat_model",
    "load_servers",
    "parse_servers",
    "topology",
    "user_in",
    "verified_identity",
]
