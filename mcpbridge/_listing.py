"""A server's tools: listed page by page, filtered, and prepared for the model.

`list_tools` reads every page of ``tools/list`` and keeps the tools that
``include_tools``/``exclude_tools`` want; a server offering more than ``max_tools``
tools is refused: listing stops at the page that passes the cap. `prepare_tools`
checks each tool's schema, builds its validator and cuts its description, yielding
to the event loop every few dozen tools, so a big catalogue never stalls other runs.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass
from typing import Any, Final

import anyio
import mcp_types as types
from mcp import Client
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcpbridge._failures import too_many_tools
from mcpbridge._schema import ArgumentsValidator, InvalidSchemaError, normalize_input_schema
from mcpbridge.caching import ServerCache
from mcpbridge.config import ServerConfig

__all__ = ["ListedTool", "list_tools", "listing_expiry", "prepare_tools"]

logger = logging.getLogger("mcpbridge")

_MAX_TOOL_PAGES: Final = 1000

_PREPARE_BATCH: Final = 32
"""Tools prepared between two yields to the event loop (~0.1 ms each when their schema is new)."""


@dataclass(frozen=True, slots=True)
class ListedTool:
    """A tool of a server, prepared at connect time: its schema checked and its validator built.

    Attributes:
        tool: The tool as the server listed it.
        schema: The complete object schema the model sees.
        description: The description the model sees (cut to ``max_description_chars``).
        validator: Checks a call's arguments against ``schema``.
    """

    tool: types.Tool
    schema: dict[str, Any]
    description: str
    validator: ArgumentsValidator


async def list_tools(config: ServerConfig, client: Client) -> tuple[list[types.Tool], types.ListToolsResult]:
    """The wanted tools of every page, and the first page (its cache hints).

    Raises:
        ConnectFailed: The server offers more than ``config.max_tools`` tools.
    """
    tools: list[types.Tool] = []
    cursor: str | None = None
    seen: set[str] = set()
    limit = config.max_tools
    first: types.ListToolsResult | None = None
    for _ in range(_MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        first = first or page
        tools.extend(page.tools)
        # Counted before filtering: listing and holding the tools is what costs the process.
        if len(tools) > limit:
            raise too_many_tools(limit)
        cursor = page.next_cursor
        if cursor is None:
            break
        if cursor in seen:
            logger.warning(
                "MCP server %r repeated a tools/list cursor; stopping at %d tools", config.name, len(tools)
            )
            break
        seen.add(cursor)
    assert first is not None  # the loop runs at least once
    return [tool for tool in tools if _wanted(config, tool.name)], first


async def prepare_tools(config: ServerConfig, tools: list[types.Tool]) -> list[ListedTool]:
    """Check every tool's schema and build its validator, yielding to the event loop as it goes.

    A tool with an invalid schema is skipped with a warning. Runs under the connect
    deadline, so ``connect_timeout`` bounds it too.
    """
    prepared: list[ListedTool] = []
    for index, tool in enumerate(tools):
        if index % _PREPARE_BATCH == _PREPARE_BATCH - 1:
            await anyio.lowlevel.checkpoint()
        try:
            schema = normalize_input_schema(tool.input_schema)
        except InvalidSchemaError as exc:
            logger.warning("skipping tool %r of MCP server %r: %s", tool.name, config.name, exc)
            continue
        prepared.append(ListedTool(tool, schema, _description(config, tool), ArgumentsValidator(schema)))
    return prepared


def listing_expiry(cache: ServerCache | None, client: Client, page: types.ListToolsResult) -> float | None:
    """When the listing goes stale, if the server said (2026-07-28 hints only)."""
    if cache is None or client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return None
    if "ttl_ms" not in page.model_fields_set:
        return None
    return cache.clock() + min(page.ttl_ms / 1000, cache.max_ttl)


def _description(config: ServerConfig, tool: types.Tool) -> str:
    text = tool.description or tool.title or tool.name
    limit = config.max_description_chars
    if len(text) <= limit:
        return text
    logger.warning(
        "cutting the description of tool %r of MCP server %r from %d to %d characters "
        "(max_description_chars)",
        tool.name,
        config.name,
        len(text),
        limit,
    )
    return text[:limit] + f"\n[Description cut: {limit:,} of {len(text):,} characters shown.]"


def _wanted(config: ServerConfig, name: str) -> bool:
    include = config.include_tools
    if include is not None and not any(fnmatch.fnmatchcase(name, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(name, p) for p in config.exclude_tools)
