"""Answers no valid server sends: each becomes a message the model can read, and the run goes on."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import pytest
from langchain_core.messages import ToolMessage

from mcpbridge import Bridge
from tests.support.servers.hostile import NOT_BASE64

from .graphs import call, run_config, run_tool_calls, text_of, thread_of, tool_graph
from .support import ChildProcesses, ExampleServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

INVALID_RESULTS: dict[str, dict[str, Any]] = {
    "show_hologram": {},
    "forecast": {"city": "Oslo"},
}
"""The hostile tools whose answer the SDK's client refuses, with their arguments."""

UNKNOWN_TYPE = "'hologram'"
"""The content type `show_hologram` answers with, as a message names it."""
BROKEN_SCHEMA = "Invalid structured content returned by tool forecast: 'warm' is not of type 'number'"


async def run_calls(
    server: ExampleServer, calls: Sequence[tuple[str, Mapping[str, Any]]], *, reconnect: int = 1
) -> list[ToolMessage]:
    """Make ``calls`` (tool, arguments) one after the other in one run of one Bridge; their messages.

    The first call must reach the server: what it answers is what the test is about.
    """
    config = run_config()
    messages: list[ToolMessage] = []
    with anyio.fail_after(60):
        async with Bridge([server.config(reconnect=reconnect)]) as bridge:
            graph = tool_graph(bridge.tools)
            for n, (tool, args) in enumerate(calls):
                with anyio.fail_after(20):
                    answers = await run_tool_calls(graph, [call(tool, f"call-{n}", **args)], config)
                messages.append(answers[f"call-{n}"])
    tool = calls[0][0]
    assert server.records.entries(tool=tool, thread_id=thread_of(config)), f"{tool} never ran"
    return messages


async def call_then_add(
    server: ExampleServer, tool: str, args: Mapping[str, Any], *, reconnect: int = 1
) -> tuple[ToolMessage, ToolMessage]:
    """In one run, call the hostile ``tool``, then the hostile ``add``; both messages."""
    first, then = await run_calls(
        server, [(tool, args), ("add", {"a": "still ", "b": "here"})], reconnect=reconnect
    )
    return first, then


def decodes(data: str) -> bool:
    try:
        base64.b64decode(data, validate=True)
    except binascii.Error:
        return False
    return True


async def test_an_image_that_is_not_base64_is_left_out_with_a_note(
    hostile: ExampleServer, children: ChildProcesses
) -> None:
    """A provider refuses a whole conversation over one undecodable image: the model gets a note instead."""
    image, then = await call_then_add(hostile, "bad_image", {})
    children.assert_none_left()
    assert image.status == "success"
    blocks = [b for b in image.content if isinstance(b, dict)]
    assert blocks[0] == {"type": "text", "text": "a picture of the moon"}
    assert all(decodes(str(b["base64"])) for b in blocks if "base64" in b), blocks
    assert NOT_BASE64 not in str(image.content)
    note = text_of(image).removeprefix("a picture of the moon")
    assert "image/png" in note and "base64" in note, note
    assert then.status == "success" and text_of(then) == "still here"


@pytest.mark.parametrize("tool", sorted(INVALID_RESULTS))
async def test_a_refused_answer_is_a_brief_error_and_the_session_stays_open(
    hostile: ExampleServer, tool: str, children: ChildProcesses
) -> None:
    """The SDK's client refuses the answer; the model reads why, briefly, and the same session goes on.

    With ``reconnect=0`` the next call succeeds only if the refusal did not end the session.
    """
    refused, then = await call_then_add(hostile, tool, INVALID_RESULTS[tool], reconnect=0)
    children.assert_none_left()
    text = text_of(refused)
    assert refused.status == "error"
    assert refused.artifact is None
    assert f"MCP server 'hostile' answered tool {tool!r} with an invalid result" in text, text
    assert (UNKNOWN_TYPE if tool == "show_hologram" else BROKEN_SCHEMA) in text
    assert len(text) < 1000, f"{len(text)} characters: {text}"
    # Not a pydantic dump, and not the server's stderr, as if it had died.
    assert "errors.pydantic.dev" not in text and "stderr" not in text
    assert then.status == "success", text_of(then)
    assert text_of(then) == "still here"
    [refused_entry] = hostile.records.entries(tool=tool)
    [add_entry] = hostile.records.entries(tool="add")
    assert add_entry["pid"] == refused_entry["pid"]
