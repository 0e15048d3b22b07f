"""MCP tool results as LangChain content blocks.

Text, image, audio, embedded resources and resource links become standard
LangChain content blocks; ``structuredContent`` travels as the tool artifact.
"""

from __future__ import annotations

import binascii
import json
import json.encoder
from collections.abc import Callable, Sequence
from typing import Any

import mcp_types as types
from pydantic import ValidationError
from pydantic_core import ErrorDetails

__all__ = ["describe_invalid_result", "limit_result", "to_content_blocks"]

_SHOWN_CHARS = 200
_JSON = json.JSONEncoder(ensure_ascii=False, default=str)
"""``json.dumps(..., ensure_ascii=False, default=str)``, without making an encoder on every call."""
_C_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)  # None without the C accelerator
_JSON_PARTS: Callable[[Any, int], Sequence[str]] | None = (
    _C_MAKE_ENCODER(None, str, json.encoder.encode_basestring, None, ": ", ", ", False, False, True)
    if _C_MAKE_ENCODER is not None
    else None
)
"""The C encoder `_JSON` makes on each call, made once: the parts of the same JSON text.

Without the circularity check: a tool's structured content was parsed from JSON, so it has no cycles.
"""


def _json_size(value: Any) -> int:
    """The characters of ``value``'s JSON text (``json.dumps(value, ensure_ascii=False, default=str)``)."""
    if _JSON_PARTS is None:
        return len(_JSON.encode(value))
    return len("".join(_JSON_PARTS(value, 0)))


def to_content_blocks(result: types.CallToolResult) -> list[dict[str, Any]]:
    """Convert the content of a ``tools/call`` result into LangChain content blocks.

    A result with no content but structured content is given one text block of
    its JSON, so the model always has something to read. Text, the kind of almost every
    block, is made without `_block`'s match (that class exactly; a subclass goes there).
    """
    blocks = [
        {"type": "text", "text": item.text} if type(item) is types.TextContent else _block(item)
        for item in result.content
    ]
    if not blocks and result.structured_content is not None:
        blocks.append({"type": "text", "text": json.dumps(result.structured_content, ensure_ascii=False)})
    return blocks


def _block(item: types.ContentBlock) -> dict[str, Any]:
    match item:
        case types.TextContent():
            return {"type": "text", "text": item.text}
        case types.ImageContent() if not _is_base64(item.data):
            return _left_out(f"an image ({item.mime_type})")
        case types.AudioContent() if not _is_base64(item.data):
            return _left_out(f"audio ({item.mime_type})")
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
            if not _is_base64(resource.blob):
                return _left_out(f"the resource {str(resource.uri)!r}")
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


def _is_base64(data: str) -> bool:
    try:
        binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _left_out(what: str) -> dict[str, Any]:
    # A provider refuses a whole conversation over one bad block; the model reads why it is missing.
    return {"type": "text", "text": f"[The server sent {what} that is not valid base64; it was left out.]"}


def describe_invalid_result(exc: ValidationError | RuntimeError) -> str:
    """Say briefly why the SDK refused a ``tools/call`` answer: where, and what was there.

    The SDK checks each answer against the MCP types (a ``ValidationError`` listing
    every member of a union that did not match) and against the tool's output schema
    (a ``RuntimeError`` whose first line says what failed).
    """
    if not isinstance(exc, ValidationError):
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    errors = exc.errors(include_url=False, include_context=False)
    # Only the branch of the answer that is a CallToolResult matters, not the other result kinds tried.
    mine = [e for e in errors if e["loc"][:1] == ("CallToolResult",)]
    found = [(tuple(e["loc"][1:]), e) for e in mine] if mine else [(tuple(e["loc"]), e) for e in errors]
    prefix = _common_prefix([loc for loc, _ in found])
    # A union is tried member by member: keep the one member whose `type` matched, if there is one.
    members: dict[int | str, list[tuple[tuple[int | str, ...], ErrorDetails]]] = {}
    for loc, error in found:
        if len(loc) > len(prefix):
            members.setdefault(loc[len(prefix)], []).append((prefix + loc[len(prefix) + 1 :], error))
    meant = [
        group
        for group in members.values()
        if len(members) > 1 and not any(loc == (*prefix, "type") for loc, _ in group)
    ]
    if len(meant) == 1:
        found = meant[0]
        prefix = _common_prefix([loc for loc, _ in found])
    where = ".".join(str(part) for part in prefix) or "the result"
    if len(found) == 1:
        [(_, error)] = found
        return f"{where}: {error['msg']} (got {_short(error['input'])})"
    # A missing field's input is the object that lacks it: the value found at `where`.
    value = next((e["input"] for _, e in found if e["type"] == "missing"), found[0][1]["input"])
    return f"{where} matches none of the shapes MCP allows there (got {_short(value)})"


def _common_prefix(locs: list[tuple[int | str, ...]]) -> tuple[int | str, ...]:
    prefix = locs[0]
    for loc in locs[1:]:
        while loc[: len(prefix)] != prefix:
            prefix = prefix[:-1]
    return prefix


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def limit_result(
    blocks: list[dict[str, Any]], structured: Any, *, max_chars: int
) -> tuple[list[dict[str, Any]], Any]:
    """Keep a result within ``max_chars`` characters, with a note saying what was cut.

    Text and media share the budget: a base64 character counts like a text character.
    Text beyond the limit is cut (the model never gets it whole); media that would
    exceed the budget is replaced by a note naming it; structured content (the
    artifact, kept in the graph's state) larger than the limit is dropped.
    """
    total = 0
    for block in blocks:
        total += len(block["text"]) if block.get("type") == "text" else len(block.get("base64") or "")
    size = None if structured is None else _json_size(structured)
    if total <= max_chars and (size is None or size <= max_chars):
        return blocks, structured
    notes: list[str] = []
    if total > max_chars:
        budget = max_chars
        kept: list[dict[str, Any]] = []
        text_total = text_shown = 0
        for block in blocks:
            if block.get("type") == "text":
                text: str = block["text"]
                text_total += len(text)
                if budget > 0:
                    kept.append({**block, "text": text[:budget]} if len(text) > budget else block)
                    shown = min(len(text), budget)
                    text_shown += shown
                    budget -= shown
                continue
            data = block.get("base64")
            if data is None or len(data) <= budget:
                kept.append(block)
                budget -= len(data or "")
                continue
            what = _media_name(block)
            kept.append(
                {"type": "text", "text": f"[{what} ({len(data):,} characters of base64) was left out.]"}
            )
        blocks = kept
        if text_shown < text_total:
            notes.append(f"{text_shown:,} of its {text_total:,} characters of text are shown")
        left_out = total - text_total - sum(len(b.get("base64") or "") for b in kept)
        if left_out:
            notes.append(f"{left_out:,} characters of media were left out")
    if size is not None and size > max_chars:
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


def _media_name(block: dict[str, Any]) -> str:
    kind = block.get("type")
    mime = block.get("mime_type")
    extras: dict[str, Any] = block.get("extras") or {}
    uri = extras.get("uri")
    if kind == "image":
        return f"An image ({mime})" if mime else "An image"
    if kind == "audio":
        return f"Audio ({mime})" if mime else "Audio"
    return f"The resource {uri!r}" if uri else "A file"
