"""MCP tool results as LangChain content blocks.

Text, image, audio, embedded resources and resource links become standard
LangChain content blocks; ``structuredContent`` travels as the tool artifact.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types

__all__ = ["limit_result", "to_content_blocks"]


def to_content_blocks(result: types.CallToolResult) -> list[dict[str, Any]]:
    """Convert the content of a ``tools/call`` result into LangChain content blocks.

    A result with no content but structured content is given one text block of
    its JSON, so the model always has something to read.
    """
    blocks = [_block(item) for item in result.content]
    if not blocks and result.structured_content is not None:
        blocks.append({"type": "text", "text": json.dumps(result.structured_content, ensure_ascii=False)})
    return blocks


def _block(item: types.ContentBlock) -> dict[str, Any]:
    match item:
        case types.TextContent():
            return {"type": "text", "text": item.text}
        case types.ImageContent():
            return {"type": "image", "base64": item.data, "mime_type": item.mime_type}
        case types.AudioContent():
            return {"type": "audio", "base64": item.data, "mime_type": item.mime_type}
        case types.EmbeddedResource():
            resource = item.resource
            if isinstance(resource, types.TextResourceContents):
                return {
                    "type": "text",
                    "text": resource.text,
                    "extras": {"uri": str(resource.uri), "mime_type": resource.mime_type},
                }
            block: dict[str, Any] = {
                "type": "file",
                "base64": resource.blob,
                "extras": {"uri": str(resource.uri)},
            }
            if resource.mime_type:
                block["mime_type"] = resource.mime_type
            return block
        case types.ResourceLink():
            link: dict[str, Any] = {"type": "file", "url": str(item.uri), "extras": {"name": item.name}}
            if item.mime_type:
                link["mime_type"] = item.mime_type
            return link
        case _:  # pyright: ignore[reportUnnecessaryComparison] - future content types
            kind = getattr(item, "type", type(item).__name__)
            return {"type": "text", "text": f"[unsupported MCP content of type {kind!r}]"}


def limit_result(
    blocks: list[dict[str, Any]], structured: Any, *, max_chars: int
) -> tuple[list[dict[str, Any]], Any]:
    """Keep a result's text within ``max_chars`` characters, with a note saying what was cut.

    Text beyond the limit is cut (the model never gets it whole); structured content
    (the artifact, kept in the graph's state) larger than the limit is dropped.
    """
    total = sum(len(b["text"]) for b in blocks if b.get("type") == "text")
    notes: list[str] = []
    if total > max_chars:
        budget = max_chars
        kept: list[dict[str, Any]] = []
        for block in blocks:
            if block.get("type") != "text":
                kept.append(block)
            elif budget > 0:
                text: str = block["text"]
                kept.append({**block, "text": text[:budget]} if len(text) > budget else block)
                budget -= min(len(text), budget)
        blocks = kept
        notes.append(f"{max_chars:,} of its {total:,} characters of text are shown")
    if structured is not None:
        size = len(json.dumps(structured, ensure_ascii=False, default=str))
        if size > max_chars:
            structured = None
            notes.append(f"its structured content ({size:,} characters) was left out")
    if notes:
        blocks.append(
            {
                "type": "text",
                "text": f"[The result was too long: {'; '.join(notes)} (max_result_chars={max_chars:,}). "
                "If you need more, ask the tool for less at a time, such as a narrower query or a page.]",
            }
        )
    return blocks, structured
