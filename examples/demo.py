"""The mcpbridge demo: one agent, one MCP server reached over stdio and over HTTP.

Run it from the repository root::

    python -m examples.demo

It starts the example MCP server (``python -m mcpbridge.testing.echo``) twice: over
streamable HTTP on a free local port (the server named ``remote``) and over stdio
(``local``). A `Bridge` connects to both, ``create_agent`` builds an agent over
their tools, and a few scripted turns run on one thread as user ``alice``, printing
tool calls, progress, results (with the identity the server received in
``_meta``) and answers as they stream.

The model is the offline `OfflineChatModel` (no provider or key needed) unless
``MCPBRIDGE_MODEL`` names a real one, such as ``MCPBRIDGE_MODEL=openai:gpt-5-mini``
with ``langchain-openai`` installed and ``OPENAI_API_KEY`` set.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any, cast

import anyio
from anyio.abc import Process
from langchain.agents import create_agent  # pyright: ignore[reportUnknownVariableType]
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph.state import CompiledStateGraph

from mcpbridge import Bridge, HttpServer, MCPBridgeError, MCPTool, StdioServer
from mcpbridge.events import PROGRESS_EVENT
from mcpbridge.server import DEFAULT_META_PREFIX
from mcpbridge.testing import MODEL_ENV, OfflineChatModel, load_chat_model

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVER_MODULE = "mcpbridge.testing.echo"
READY_TIMEOUT = 15.0
"""Seconds the HTTP server may take to start listening."""
STOP_TIMEOUT = 5.0
"""Seconds the HTTP server may take to exit after SIGTERM before it is killed."""

USER = "alice"
TURNS = (
    "Hello! What can you do?",
    "Who am I? Call remote_whoami and local_whoami.",
    'Call remote_count with {"to": 3} and local_add with {"a": 2, "b": 40}.',
    'Call local_add with {"a": "two", "b": 40}.',  # a failing call: "two" is not a number
)


class DemoError(RuntimeError):
    """The demo cannot run; the message says why."""


class ServerStartError(DemoError):
    """The HTTP echo server did not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return cast(int, sock.getsockname()[1])


@asynccontextmanager
async def http_echo_server() -> AsyncGenerator[str]:
    """Run the echo server over streamable HTTP as a subprocess; yield its URL, stop it on exit."""
    with tempfile.TemporaryFile("w+b") as log:
        port = free_port()
        process = await anyio.open_process(
            [sys.executable, "-m", SERVER_MODULE, "--http", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            await wait_until_listening(process, port, log)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            with anyio.CancelScope(shield=True):
                await stop(process)


async def wait_until_listening(process: Process, port: int, log: IO[bytes]) -> None:
    """Return once ``port`` accepts connections; fail if the server exits or is too slow."""
    with anyio.move_on_after(READY_TIMEOUT):
        while process.returncode is None:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.05)  # poll again: the server is still starting
                continue
            await stream.aclose()
            return
    problem = (
        f"exited with code {process.returncode}"
        if process.returncode is not None
        else f"did not listen on port {port} within {READY_TIMEOUT:g}s"
    )
    log.seek(0)
    tail = log.read().decode(errors="replace")[-2000:].strip()
    raise ServerStartError(
        f"the HTTP echo server {problem}" + (f"; its output ends with:\n{tail}" if tail else "")
    )


async def stop(process: Process) -> None:
    """Stop the server: SIGTERM, then SIGKILL if it has not exited within ``STOP_TIMEOUT``."""
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(STOP_TIMEOUT):
            await process.wait()
        if process.returncode is None:
            process.kill()
    await process.aclose()


def one_line(value: Any, limit: int = 160) -> str:
    """``value`` as compact text on one line, cut at ``limit`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def show_message(message: BaseMessage, tools: Mapping[str, MCPTool]) -> None:
    """Print one message an agent node produced; for ``whoami``, the identity in the server's ``_meta``."""
    if isinstance(message, AIMessage):
        for call in message.tool_calls:
            print(f"  -> calls {call['name']} {one_line(call['args'])}  [{call['id']}]")
        if message.text:
            print("  assistant: " + message.text.replace("\n", "\n             "))
    elif isinstance(message, ToolMessage):
        name = message.name or "?"
        if message.status == "error":
            print(f"  <- {name} failed: {one_line(message.text)}")
            return
        tool = tools.get(name)
        artifact: Any = message.artifact
        if tool is not None and tool.mcp_name == "whoami" and isinstance(artifact, Mapping):
            meta = cast(Mapping[str, Any], artifact)
            identity = {k: v for k, v in meta.items() if k.startswith(DEFAULT_META_PREFIX)}
            print(f"  <- {name}: server {tool.server!r} received this identity in _meta:")
            for key, value in sorted(identity.items()):
                print(f"       {key} = {value}")
        else:
            print(f"  <- {name}: {one_line(message.text)}")


def show_chunk(mode: str, chunk: Any, tools: Mapping[str, MCPTool]) -> None:
    """Print one ``(mode, chunk)`` of ``stream_mode=["updates", "custom"]``."""
    if not isinstance(chunk, Mapping):
        return
    data = cast(Mapping[str, Any], chunk)
    if mode == "custom":
        if data.get("type") == PROGRESS_EVENT:
            show_progress(data)
        return
    for update in data.values():  # {node name: the state update it made}
        if isinstance(update, Mapping):
            messages: Any = cast(Mapping[str, Any], update).get("messages") or []
            for message in cast(list[BaseMessage], messages):
                show_message(message, tools)


def show_progress(event: Mapping[str, Any]) -> None:
    """Print one ``mcp_progress`` event from the custom stream."""
    total = event.get("total")
    amount = f"{event.get('progress'):g}" + (f"/{total:g}" if isinstance(total, int | float) else "")
    message = event.get("message")
    print(f"  .. {event.get('tool')} progress {amount}" + (f": {message}" if message else ""))


async def main() -> None:
    """Start the servers, connect the bridge, and run the scripted turns."""
    started = time.perf_counter()
    try:
        model = load_chat_model()
    except (ImportError, ValueError) as exc:  # an unknown provider, or its package is missing
        raise DemoError(f"cannot load the model {MODEL_ENV} names: {exc}") from exc
    label = (
        "OfflineChatModel (offline, deterministic)"
        if isinstance(model, OfflineChatModel)
        else model_name(model)
    )
    print(f"mcpbridge demo; model: {label}")
    if isinstance(model, OfflineChatModel):
        print(f"  (set {MODEL_ENV}=provider:model to use a real model)")

    async with http_echo_server() as url:
        print(f"Started the echo server over streamable HTTP at {url}")
        servers = [
            StdioServer(name="local", command=sys.executable, args=["-m", SERVER_MODULE], cwd=REPO_ROOT),
            HttpServer(name="remote", url=url),
        ]
        async with Bridge(servers) as bridge:
            tools = {tool.name: tool for tool in bridge.tools}
            for server in bridge.connected:
                print(f"Connected to {server!r} (MCP protocol {bridge.protocol_version(server)})")
            print(f"Tools: {', '.join(tools)}")

            agent: CompiledStateGraph[Any, Any, Any, Any] = create_agent(
                model, tools=bridge.tools, checkpointer=InMemorySaver()
            )
            thread_id = "demo-thread"
            for number, text in enumerate(TURNS, start=1):
                config: RunnableConfig = {
                    "run_id": uuid.uuid4(),
                    "configurable": {"thread_id": thread_id, "langgraph_auth_user_id": USER},
                }
                print(f"\n== Turn {number} (thread {thread_id}, user {USER})")
                print(f"  user: {text}")
                stream = agent.astream(  # pyright: ignore[reportUnknownMemberType]
                    {"messages": [HumanMessage(text)]}, config, stream_mode=["updates", "custom"]
                )
                async for mode, chunk in stream:
                    show_chunk(mode, chunk, tools)
    print(f"\nDone in {time.perf_counter() - started:.1f}s; both servers are stopped.")
    print("On the Agent Server, with a server protected by OAuth: python -m examples.serve_demo")


def model_name(model: Any) -> str:
    """A readable name of a chat model."""
    for attribute in ("model_name", "model"):
        value = getattr(model, attribute, None)
        if isinstance(value, str):
            return f"{type(model).__name__} ({value})"
    return type(model).__name__


if __name__ == "__main__":
    try:
        anyio.run(main)
    except (MCPBridgeError, DemoError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
