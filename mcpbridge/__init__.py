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
)
from mcpbridge.identity import DEFAULT_META_PREFIX, IdentityMeta, RunIdentity, identity_from_runtime
from mcpbridge.tools import PROGRESS_EVENT, MCPTool

__all__ = [
    "DEFAULT_META_PREFIX",
    "PROGRESS_EVENT",
    "Bridge",
    "ConfigError",
    "ConnectError",
    "HttpServer",
    "IdentityMeta",
    "MCPBridgeError",
    "MCPTool",
    "MemoryServer",
    "RunIdentity",
    "ServerConfig",
    "ServerError",
    "ServerFailure",
    "SseServer",
    "StdioServer",
    "ToolCallError",
    "ToolNameConflictError",
    "ToolTimeoutError",
    "identity_from_runtime",
    "load_servers",
    "parse_servers",
]
