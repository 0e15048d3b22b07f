"""MCP tools as LangChain tools that know the run they serve.

Each `MCPTool` shows the model the server's ``inputSchema`` and receives the
``ToolRuntime`` as an injected argument the model never sees. Every call
validates the arguments, forwards the run's identity in ``_meta``, streams the
server's progress to the graph's ``custom`` stream, and turns every failure
into an error ``ToolMessage`` the model can read.

Progress is coalesced: in any second, at most ``max_progress_per_second`` events
of one call reach the stream; the latest one held back is written when the call
ends, so the final state is never lost.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, Protocol

import mcp_types as types
from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.tools import FILTERED_ARGS, BaseTool, ToolException
from langgraph.prebuilt import ToolRuntime
from langgraph.runtime import Runtime
from langgraph.types import StreamWriter
from mcp.shared.dispatcher import ProgressFnT
from pydantic import BaseModel, ConfigDict, PrivateAttr, create_model

from mcpbridge._callbacks import no_listeners, traced_tool_call
from mcpbridge._compat import resolve_arun_hints, set_injected_args_keys
from mcpbridge._content import limit_result, to_content_blocks
from mcpbridge._input import call_with_input
from mcpbridge._schema import ArgumentsValidator
from mcpbridge.errors import MCPBridgeError, UsageError
from mcpbridge.events import PROGRESS_EVENT
from mcpbridge.identity import IdentityMeta

__all__ = ["MCPTool"]

logger = logging.getLogger("mcpbridge")


class ToolCaller(Protocol):
    """Whatever performs ``tools/call`` for a tool (a connected server)."""

    name: str

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        meta: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        progress_callback: ProgressFnT | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Call the tool ``name`` on the server (``headers`` go on the HTTP request, where there is one)."""
        ...


_SILENT_WRITER: Final = next(
    (f.default for f in dataclasses.fields(Runtime) if f.name == "stream_writer"), dataclasses.MISSING
)
"""The stream writer of a runtime that streams nothing (LangGraph's default): no progress is asked for."""


@dataclass(frozen=True, slots=True)
class _Wiring:
    """What a tool's calls need beyond its fields: server, identity, validator, the runtime's key.

    ``input_rounds``: the caller turns a server's input requests into interrupts (`call_with_input`).
    """

    caller: ToolCaller
    identity: IdentityMeta
    validator: ArgumentsValidator
    runtime_key: str
    input_rounds: bool


@cache
def _runtime_schema(key: str) -> type[BaseModel]:
    # ToolNode finds the injected ToolRuntime argument through the tool's input schema.
    fields: dict[str, Any] = {key: (ToolRuntime, None)}
    return create_model(
        f"MCPToolRuntime_{key}", __config__=ConfigDict(arbitrary_types_allowed=True), **fields
    )


class MCPTool(BaseTool):
    """A tool of an MCP server, callable by a LangGraph agent with the run's identity.

    Made by `Bridge`; the model sees ``name``, ``description`` and the server's
    input schema. ``metadata`` holds ``mcp_server`` and ``mcp_tool`` (the name
    on the server).

    Example:
        ```python
        async with Bridge([StdioServer(name="files", command="files-mcp")]) as bridge:
            agent = create_agent(model, tools=bridge.tools)
        ```
    """

    args_schema: dict[str, Any]  # pyright: ignore[reportIncompatibleVariableOverride, reportGeneralTypeIssues]
    response_format: str = "content_and_artifact"  # pyright: ignore[reportIncompatibleVariableOverride]
    handle_tool_error: bool = True  # pyright: ignore[reportIncompatibleVariableOverride]

    server: str
    """The server's name."""
    mcp_name: str
    """The tool's name on the server."""
    max_result_chars: int = 100_000
    """The most characters of a result the model gets (text and base64 media); the rest is cut."""
    max_progress_per_second: float = 10.0
    """The most progress events of one call written to the ``custom`` stream per second (coalesced)."""
    registered: bool = False
    """Whether a user registered the server: its identity tokens get a ``registered/`` audience."""

    _wiring: _Wiring = PrivateAttr()

    def __init__(
        self,
        *,
        caller: ToolCaller,
        identity: IdentityMeta,
        validator: ArgumentsValidator,
        **data: Any,
    ) -> None:
        super().__init__(**data)
        properties: Mapping[str, Any] = self.args_schema.get("properties") or {}
        key, n = "runtime", 0
        while key in properties:  # a server tool may take an argument called `runtime`
            n += 1
            key = f"mcpbridge_runtime_{n}"
        self._wiring = _Wiring(caller, identity, validator, key, bool(getattr(caller, "input_rounds", False)))

    def _wired(self) -> _Wiring:
        # Read from the private values directly: pydantic's lookup of a private attribute
        # raises and catches an AttributeError on the way, microseconds on every call.
        private: dict[str, _Wiring] = self.__pydantic_private__  # pyright: ignore[reportAssignmentType]
        return private["_wiring"]

    @property
    def _runtime_key(self) -> str:
        """The name of the injected ``ToolRuntime`` argument."""
        return self._wired().runtime_key

    def get_input_schema(self, config: Any = None) -> type[BaseModel]:
        """The injected-argument schema ToolNode reads; the model sees `tool_call_schema`."""
        return _runtime_schema(self._runtime_key)

    def _run(self, /, *args: Any, **kwargs: Any) -> Any:
        raise _AsyncOnlyError(f"MCP tool {self.name!r} is async only; call it with `ainvoke`")

    async def ainvoke(
        self, input: str | dict[str, Any] | ToolCall, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        """Call the tool; a tool call (as `ToolNode` makes it) gives a `ToolMessage`.

        A tool call takes a path of its own: when no callback handler listens (no
        tracing, no event stream), it skips LangChain's callback machinery; when one
        does, the handlers are told of the call's start and end as `BaseTool.arun`
        tells them (`mcpbridge._callbacks.traced_tool_call`), without its per-call
        inspection of the tool. The result is the same message either way. Measured
        (``python -m bench.fastpath``): see `mcpbridge._compat`.
        """
        if (
            kwargs
            or self.handle_tool_error is not True
            or not isinstance(input, dict)
            or input.get("type") != "tool_call"
            or input.get("id") is None
        ):
            return await super().ainvoke(input, config, **kwargs)
        call: ToolCall = input  # pyright: ignore[reportAssignmentType] - a dict of type "tool_call"
        if no_listeners(self, config):
            return await self._answer(call, config)
        wiring = self._wired()
        hidden = wiring.runtime_key
        inputs = {k: v for k, v in call["args"].items() if k != hidden and k not in FILTERED_ARGS}
        return await traced_tool_call(self, call, config, inputs, self._answer)

    async def _answer(self, call: ToolCall, config: RunnableConfig | None) -> ToolMessage:
        """Run ``call``; a failure the model can read becomes an error message."""
        call_id = call["id"]
        assert call_id is not None  # `ainvoke` answers only tool calls with an id here
        arguments = dict(call["args"])
        wiring = self._wired()
        runtime = arguments.pop(wiring.runtime_key, None)
        try:
            content, artifact = await self._call(
                arguments, runtime, None if runtime is not None else config, wiring
            )
        except ToolException as exc:
            message = exc.args[0] if exc.args else "Tool execution error"
            return ToolMessage(message, tool_call_id=call_id, name=self.name, status="error")
        blocks: list[Any] = content  # the type ToolMessage declares: list[str | dict]
        return ToolMessage(blocks, artifact=artifact, tool_call_id=call_id, name=self.name)

    async def _arun(self, /, *args: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], Any]:
        runtime = kwargs.pop(self._wired().runtime_key, None)
        return await self._call(kwargs, runtime, None)

    async def _call(
        self,
        arguments: dict[str, Any],
        runtime: Any,
        config: RunnableConfig | None,
        wiring: _Wiring | None = None,
    ) -> tuple[list[dict[str, Any]], Any]:
        """Validate, call the server with the run's identity, and shape the result for the model.

        ``config`` is read for the identity only without a ``runtime`` (``None``: the run's config).
        """
        wiring = wiring or self._wired()
        problems = wiring.validator.errors(arguments)
        if problems:
            raise ToolException(
                f"Invalid arguments for tool {self.name!r}: "
                + "; ".join(problems)
                + ". The tool was not called; correct the arguments and call it again."
            )
        if runtime is None:
            config = ensure_config(config)
        meta, headers = wiring.identity.for_runtime(
            runtime, config, server=self.server, registered=self.registered
        )
        progress = self._progress_forwarder(runtime)
        receive = None if progress is None else progress.receive
        try:
            if wiring.input_rounds:
                result = await call_with_input(
                    wiring.caller,
                    server=self.server,
                    tool=self.name,
                    mcp_name=self.mcp_name,
                    signer=wiring.identity.signer,
                    arguments=arguments,
                    runtime=runtime,
                    config=config,
                    meta=meta,
                    headers=headers,
                    progress=receive,
                )
            else:
                result = await wiring.caller.call_tool(
                    self.mcp_name, arguments, meta=meta, headers=headers, progress_callback=receive
                )
        except MCPBridgeError as exc:
            raise ToolException(str(exc)) from exc
        finally:
            if progress is not None:
                progress.close()
        if isinstance(result, types.InputRequiredResult):
            raise ToolException(f"tool {self.name!r} asked for input this server connection cannot give")
        blocks, structured = limit_result(
            to_content_blocks(result), result.structured_content, max_chars=self.max_result_chars
        )
        if result.is_error:
            text = "\n".join(b["text"] for b in blocks if b.get("type") == "text")
            raise ToolException(text or f"tool {self.name!r} reported an error without a message")
        return blocks, structured

    def _progress_forwarder(self, runtime: Any) -> _ProgressForwarder | None:
        writer: StreamWriter | None = getattr(runtime, "stream_writer", None)
        if writer is None or writer is _SILENT_WRITER:  # nobody would see the progress
            return None
        return _ProgressForwarder(
            writer,
            server=self.server,
            tool=self.name,
            tool_call_id=getattr(runtime, "tool_call_id", None),
            per_second=self.max_progress_per_second,
        )


_MAX_WINDOW_EVENTS: Final = 1_000_000


class _ProgressForwarder:
    """Writes one call's progress to the ``custom`` stream, at most ``per_second`` events a second.

    A sliding window: a notification is written when fewer than ``k`` were written in the
    last ``k / per_second`` seconds (``k`` is ``per_second``, at least 1), so a short call's
    few steps all show, and a flood shows ``per_second`` a second. One arriving sooner is
    held back, replacing the one held before; the one held when the call ends is written
    by `close`. No timer is needed: the next notification the window admits, or the end
    of the call, writes it.
    """

    __slots__ = (
        "_closed",
        "_context",
        "_held",
        "_last_progress",
        "_per_second",
        "_source",
        "_window",
        "_written",
        "_writer",
    )

    def __init__(
        self, writer: StreamWriter, *, server: str, tool: str, tool_call_id: str | None, per_second: float
    ) -> None:
        self._writer = writer
        # The SDK calls back from its reader task, outside the run's context; the writer needs it.
        self._context = contextvars.copy_context()
        self._source = (server, tool, tool_call_id)
        self._per_second = per_second
        self._window = 0.0
        self._written: deque[float] | None = None  # made at the first notification: most calls send none
        self._last_progress = -math.inf
        self._held: tuple[float, float | None, str | None] | None = None
        self._closed = False

    async def receive(self, progress: float, total: float | None, message: str | None) -> None:
        """The SDK's progress callback: write now, or hold back until the interval has passed."""
        if self._closed:
            # A notification the SDK delivers after the answer: written only if it is news.
            if progress > self._last_progress:
                self._write(progress, total, message)
            return
        now = time.monotonic()
        written = self._written
        if written is None:
            # a huge rate (caps off) too
            count = max(1, math.floor(min(self._per_second, _MAX_WINDOW_EVENTS)))
            self._window = count / self._per_second
            written = self._written = deque(maxlen=count)  # when the last `count` events were written
        if len(written) == written.maxlen and now - written[0] < self._window:
            self._held = (progress, total, message)
            return
        written.append(now)
        self._held = None
        self._write(progress, total, message)

    def close(self) -> None:
        """The call ended: write the notification held back, so the final state reaches the stream."""
        self._closed = True
        held, self._held = self._held, None
        if held is not None:
            self._write(*held)

    def _write(self, progress: float, total: float | None, message: str | None) -> None:
        self._last_progress = max(self._last_progress, progress)
        server, tool, tool_call_id = self._source
        event = {
            "type": PROGRESS_EVENT,
            "server": server,
            "tool": tool,
            "tool_call_id": tool_call_id,
            "progress": progress,
            "total": total,
            "message": message,
        }
        self._context.run(self._writer, event)


class _AsyncOnlyError(UsageError, NotImplementedError):
    """A tool was called synchronously; a `NotImplementedError` too, as LangChain's async-only tools raise."""


# The runtime is an injected argument under its per-tool name; `_arun`'s hints resolve once.
set_injected_args_keys(MCPTool, "_runtime_key")
resolve_arun_hints(MCPTool)
