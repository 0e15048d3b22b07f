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
from mcpbridge.errors import (
    ConfigError,
    ConnectError,
    MCPBridgeError,
    ServerError,
    ServerFailure,
    ToolCallError,
    ToolNameConflictError,
    ToolTimeoutError,
    TopologyMismatchError,
)
from mcpbridge.factory import SKIPPED_EVENT, BridgeMiddleware, GraphFactory, agent_factory, graph_factory
from mcpbridge.identity import DEFAULT_META_PREFIX, IdentityMeta, RunIdentity, identity_from_runtime
from mcpbridge.models import MODEL_ENV, OfflineChatModel, load_chat_model
from mcpbridge.tools import PROGRESS_EVENT, MCPTool
from mcpbridge.topology import Topology, check_topology, topology

__all__ = [
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
    "agent_factory",
    "check_topology",
    "graph_factory",
    "identity_from_runtime",
    "load_chat_model",
    "load_servers",
    "parse_servers",
    "topology",
]
