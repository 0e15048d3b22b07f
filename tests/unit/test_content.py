from __future__ import annotations

import json
from typing import Any

import mcp_types as types
import pytest
from langchain_core.messages import ToolMessage
from pydantic import TypeAdapter, ValidationError

from mcpbridge import Bridge, MemoryServer
from mcpbridge._content import describe_invalid_result, to_content_blocks

from ._helpers import LowLevel, Protocol, call, tool

PNG = "iVBORw0KGgo="
WAV = "UklGRg=="


def blocks(*content: types.ContentBlock, structured: Any = None) -> list[dict[str, Any]]:
    return to_content_blocks(types.CallToolResult(content=list(content), structured_content=structured))


def test_text() -> None:
    assert blocks(types.TextContent(text="hello")) == [{"type": "text", "text": "hello"}]


def test_image_and_audio() -> None:
    assert blocks(
        types.ImageContent(data=PNG, mime_type="image/png"),
        types.AudioContent(data=WAV, mime_type="audio/wav"),
    ) == [
        {"type": "image", "base64": PNG, "mime_type": "image/png"},
        {"type": "audio", "base64": WAV, "mime_type": "audio/wav"},
    ]


def test_embedded_text_resource() -> None:
    resource = types.TextResourceContents(uri="file:///notes.md", text="# Notes", mime_type="text/markdown")
    assert blocks(types.EmbeddedResource(resource=resource)) == [
        {
            "type": "text",
            "text": "# Notes",
            "extras": {"uri": "file:///notes.md", "mime_type": "text/markdown"},
        }
    ]


@pytest.mark.parametrize("mime", ["application/pdf", None])
def test_embedded_blob_resource(mime: str | None) -> None:
    resource = types.BlobResourceContents(uri="file:///a.pdf", blob="JVBERi0=", mime_type=mime)
    expected: dict[str, Any] = {"type": "file", "base64": "JVBERi0=", "extras": {"uri": "file:///a.pdf"}}
    if mime:
        expected["mime_type"] = mime
    assert blocks(types.EmbeddedResource(resource=resource)) == [expected]


@pytest.mark.parametrize("mime", ["text/csv", None])
def test_resource_link(mime: str | None) -> None:
    link = types.ResourceLink(name="report", uri="https://example.com/r.csv", mime_type=mime)
    expected: dict[str, Any] = {
        "type": "file",
        "url": "https://example.com/r.csv",
        "extras": {"name": "report"},
    }
    if mime:
        expected["mime_type"] = mime
    assert blocks(link) == [expected]


def test_order_is_kept() -> None:
    result = blocks(
        types.TextContent(text="a"),
        types.ImageContent(data=PNG, mime_type="image/png"),
        types.TextContent(text="b"),
    )
    assert [b["type"] for b in result] == ["text", "image", "text"]


def test_structured_content_only_becomes_json_text() -> None:
    assert blocks(structured={"city": "Zürich", "temp": 21}) == [
        {"type": "text", "text": '{"city": "Zürich", "temp": 21}'}
    ]


def test_structured_content_does_not_duplicate_existing_content() -> None:
    assert blocks(types.TextContent(text="21 degrees"), structured={"temp": 21}) == [
        {"type": "text", "text": "21 degrees"}
    ]


def test_empty_result() -> None:
    assert blocks() == []


@pytest.mark.anyio
async def test_mixed_content_and_structured_artifact_through_the_bridge(protocol: Protocol) -> None:
    async def handler(params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(
            content=[
                types.TextContent(text="chart ready"),
                types.ImageContent(data=PNG, mime_type="image/png"),
                types.EmbeddedResource(resource=types.TextResourceContents(uri="mem://data", text="1,2,3")),
                types.ResourceLink(name="full", uri="https://example.com/full.csv"),
            ],
            structured_content={"points": 3},
        )

    server = LowLevel([tool("chart")], handler)
    async with Bridge([MemoryServer(name="m", server=server.server(), protocol=protocol)]) as bridge:
        message = await call(bridge.tools[0], {})
    assert isinstance(message, ToolMessage)
    assert message.status == "success"
    assert message.artifact == {"points": 3}
    assert message.content == [
        {"type": "text", "text": "chart ready"},
        {"type": "image", "base64": PNG, "mime_type": "image/png"},
        {"type": "text", "text": "1,2,3", "extras": {"uri": "mem://data", "mime_type": None}},
        {"type": "file", "url": "https://example.com/full.csv", "extras": {"name": "full"}},
    ]


def test_limit_result_cuts_text_across_blocks_and_says_so() -> None:
    from mcpbridge._content import limit_result

    blocks = [
        {"type": "text", "text": "a" * 60},
        {"type": "image", "base64": "AAAA"},
        {"type": "text", "text": "b" * 60},
    ]
    kept, structured = limit_result(blocks, {"small": 1}, max_chars=100)
    texts = [b["text"] for b in kept if b["type"] == "text"]
    assert texts[0] == "a" * 60 and texts[1] == "b" * 36  # the image's 4 base64 characters count too
    assert "96 of its 120 characters of text" in texts[-1]
    assert any(b["type"] == "image" for b in kept)
    assert structured == {"small": 1}


def test_limit_result_leaves_small_results_alone_and_drops_big_structured_content() -> None:
    from mcpbridge._content import limit_result

    blocks = [{"type": "text", "text": "short"}]
    assert limit_result(list(blocks), {"k": "v"}, max_chars=100) == (blocks, {"k": "v"})
    kept, structured = limit_result(list(blocks), {"k": "v" * 500}, max_chars=100)
    assert structured is None
    assert kept[0] == blocks[0] and "structured content (" in kept[-1]["text"]


@pytest.mark.parametrize(
    "data", ["not base64!", "iVBORw0KGgo", "aGk=aGk=", "    "], ids=["chars", "padding", "inner-pad", "blank"]
)
def test_image_audio_and_blobs_that_are_not_base64_are_left_out_with_a_note(data: str) -> None:
    resource = types.BlobResourceContents(uri="file:///x.bin", blob=data)
    out = blocks(
        types.TextContent(text="caption"),
        types.ImageContent(data=data, mime_type="image/png"),
        types.AudioContent(data=data, mime_type="audio/wav"),
        types.EmbeddedResource(resource=resource),
    )
    assert out == [
        {"type": "text", "text": "caption"},
        {
            "type": "text",
            "text": "[The server sent an image (image/png) that is not valid base64; it was left out.]",
        },
        {
            "type": "text",
            "text": "[The server sent audio (audio/wav) that is not valid base64; it was left out.]",
        },
        {
            "type": "text",
            "text": "[The server sent the resource 'file:///x.bin' that is not valid base64; "
            "it was left out.]",
        },
    ]


def test_an_unknown_content_type_is_described_by_where_and_what() -> None:
    adapter = TypeAdapter(types.CallToolResult | types.InputRequiredResult)
    with pytest.raises(ValidationError) as refused:
        adapter.validate_python(
            {"content": [{"type": "text", "text": "ok"}, {"type": "hologram", "frames": 24}]}
        )
    text = describe_invalid_result(refused.value)
    assert (
        text
        == "content.1 matches none of the shapes MCP allows there (got {'type': 'hologram', 'frames': 24})"
    )


def test_one_invalid_field_is_described_with_its_value() -> None:
    with pytest.raises(ValidationError) as refused:
        types.CallToolResult.model_validate({"content": [{"type": "text", "text": 42}]})
    assert describe_invalid_result(refused.value) == "content.0.text: Input should be a valid string (got 42)"


def test_a_long_value_is_shortened_and_an_output_schema_error_keeps_its_first_line() -> None:
    with pytest.raises(ValidationError) as refused:
        types.CallToolResult.model_validate({"content": [{"type": "text", "text": ["x" * 1000]}]})
    assert len(describe_invalid_result(refused.value)) < 300
    schema_error = RuntimeError(
        "Invalid structured content returned by tool t: 'warm' is not of type 'number'\n\nMore"
    )
    assert describe_invalid_result(schema_error) == (
        "Invalid structured content returned by tool t: 'warm' is not of type 'number'"
    )


@pytest.mark.parametrize(
    "value",
    [
        {"k": "v"},
        "é\n\x01",
        [1.5, float("inf"), None, True, -0.0],
        {"a": {"b": [1, 2]}, "c": 1e16},
        {"d": object()},
    ],
)
def test_structured_content_is_measured_as_its_json_text(value: object) -> None:
    from mcpbridge._content import _json_size  # pyright: ignore[reportPrivateUsage]

    assert _json_size(value) == len(json.dumps(value, ensure_ascii=False, default=str))
