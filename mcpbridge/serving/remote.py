"""Serving the assistants of a running Agent Server, through ``langgraph-sdk``.

Every MCP request becomes Agent Server requests made with the caller's own
``Authorization`` header, so the Agent Server's auth decides what each caller
sees and may run: ``tools/list`` searches the assistants, ``tools/call``
creates or continues a thread and streams a run (``updates`` and ``custom``
become progress). The MCP front keeps no state; cancelling a call cancels the run.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import httpx
import mcp_types as types
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from mcp import MCPError

from mcpbridge._names import safe_name
from mcpbridge.serving.backend import NO_INPUT, Caller, ClientInput
from mcpbridge.serving.interface import (
    RunOutcome,
    ToolInterface,
    describe_error,
    error_result,
    interface_for,
)
from mcpbridge.serving.progress import ProgressReporter
from mcpbridge.serving.questions import questions_of
from mcpbridge.serving.resuming import call_input, follow_up, resume_answers
from mcpbridge.serving.users import ServedUser

__all__ = ["RemoteAssistants", "RemoteTokenCheck"]

logger = logging.getLogger("mcpbridge")

_PAGE = 100
_CANCEL_TIMEOUT = 10.0


class RemoteAssistants:
    """Runs the assistants of an Agent Server for MCP calls.

    Args:
        url: The Agent Server's base URL, such as ``http://127.0.0.1:2024``.
        assistants: Serve only these (assistant ids, graph ids or names); all when empty.
        headers: Headers sent with every request (the caller's ``Authorization`` is added per call).
        timeout: Seconds for each Agent Server request other than run streams.

    Example:
        ```python
        backend = RemoteAssistants("http://127.0.0.1:2024", assistants=["agent"])
        ```
    """

    def __init__(
        self,
        url: str,
        *,
        assistants: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.assistants = tuple(assistants)
        self.headers = dict(headers or {})
        self.timeout = timeout

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[_OpenAssistants, None]:
        """Open the Agent Server client."""
        timeout = (self.timeout, None, self.timeout, self.timeout)  # no read timeout: streams last as runs do
        async with get_client(url=self.url, api_key=None, headers=self.headers, timeout=timeout) as client:
            yield _OpenAssistants(self, client)


class _OpenAssistants:
    def __init__(self, config: RemoteAssistants, client: LangGraphClient) -> None:
        self._config = config
        self._client = client
        self._interfaces: dict[tuple[str, str], ToolInterface] = {}

    async def _assistants(self, headers: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """The caller's assistants by tool name (the first of two with the same name wins)."""
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            page = await self._client.assistants.search(limit=_PAGE, offset=offset, headers=headers)
            for raw in page:
                assistant = cast(dict[str, Any], raw)
                wanted = self._config.assistants
                keys = {assistant.get("assistant_id"), assistant.get("graph_id"), assistant.get("name")}
                if wanted and not keys & set(wanted):
                    continue
                name = safe_name(str(assistant.get("name") or assistant.get("graph_id")))
                found.setdefault(name, assistant)
            if len(page) < _PAGE:
                return found
            offset += _PAGE

    async def _interface(self, assistant: Mapping[str, Any], headers: Mapping[str, str]) -> ToolInterface:
        key = (str(assistant["assistant_id"]), str(assistant.get("version", "")))
        interface = self._interfaces.get(key)
        if interface is None:
            schemas = await self._client.assistants.get_schemas(key[0], headers=headers)
            interface = self._interfaces[key] = interface_for(cast(Any, schemas).get("input_schema"))
        return interface

    async def list_tools(self, caller: Caller) -> list[types.Tool]:
        headers = _headers(caller)
        try:
            assistants = await self._assistants(headers)
            tools: list[types.Tool] = []
            for name, assistant in assistants.items():
                interface = await self._interface(assistant, headers)
                description = str(assistant.get("description") or "") or interface.describe(name)
                tools.append(interface.tool(name, description, title=str(assistant.get("name") or name)))
        except Exception as exc:
            raise MCPError(code=types.INTERNAL_ERROR, message=self._problem(exc)) from exc
        return tools

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any],
        caller: Caller,
        progress: ProgressReporter,
        *,
        client: ClientInput = NO_INPUT,
    ) -> types.CallToolResult | types.InputRequiredResult:
        headers = _headers(caller)
        try:
            assistant = (await self._assistants(headers)).get(name)
            if assistant is None:
                raise MCPError(code=types.INVALID_PARAMS, message=f"unknown tool {name!r}")
            interface = await self._interface(assistant, headers)
        except MCPError:
            raise
        except Exception as exc:
            return error_result(self._problem(exc))
        identity = caller.user.identity if caller.user is not None else None
        found = call_input(interface, arguments, client, name, identity)
        if isinstance(found, str):
            return error_result(found)
        parsed, pending = found
        threads = self._client.threads
        run_input: dict[str, Any] = {"input": parsed.input}
        try:
            if parsed.thread_id is None:
                thread_id = str((await threads.create(headers=headers))["thread_id"])
            else:
                thread_id = parsed.thread_id
                thread = await threads.get(thread_id, headers=headers)
                if pending is not None or parsed.resuming:
                    state = cast(Mapping[str, Any], await threads.get_state(thread_id, headers=headers))
                    waiting = RunOutcome(
                        thread_id,
                        pending.run_id if pending is not None else "",
                        cast(Mapping[str, Any], state.get("values") or {}),
                        questions=questions_of(cast(Sequence[Any], state.get("interrupts") or [])),
                        checkpoint_id=_checkpoint_id(state),
                    )
                    answers = resume_answers(interface, waiting, parsed.resume, pending, client)
                    if not isinstance(answers, dict):
                        return answers
                    run_input = {"command": {"resume": answers}}
                elif thread.get("interrupts"):  # not the status: a cancelled run leaves "interrupted" too
                    return error_result(
                        f"Thread {thread_id} waits for input (an interrupt) and takes no new message until "
                        f"it is resumed (the {interface.resume_key} argument); leave out thread_id to start "
                        "a new conversation."
                    )
        except MCPError:
            raise
        except Exception as exc:
            return error_result(
                self._problem(exc, thread_id=parsed.thread_id, named=parsed.thread_id is not None)
            )
        assistant_id = str(assistant["assistant_id"])
        while True:
            outcome = await self._run(assistant_id, run_input, thread_id, headers, progress)
            if isinstance(outcome, types.CallToolResult):
                return outcome
            answered = await follow_up(interface, outcome, client, name, identity)
            if not isinstance(answered, dict):
                return answered
            run_input = {"command": {"resume": answered}}

    async def _run(
        self,
        assistant_id: str,
        run_input: Mapping[str, Any],
        thread_id: str,
        headers: Mapping[str, str],
        progress: ProgressReporter,
    ) -> RunOutcome | types.CallToolResult:
        """How the run went, or the error result of a run that failed."""
        run_ids: list[str] = []
        values: Mapping[str, Any] | None = None
        interrupts: list[Any] = []
        try:
            async for part in self._client.runs.stream(
                thread_id,
                assistant_id,
                input=run_input.get("input"),
                command=run_input.get("command"),
                stream_mode=["updates", "custom", "values"],
                on_disconnect="cancel",
                on_run_created=lambda meta: run_ids.append(str(meta["run_id"])),
                headers=headers,
            ):
                data: Any = cast(Any, part).data
                if part.event == "values":
                    values = cast(Mapping[str, Any], data)
                elif part.event == "updates":
                    if isinstance(data, Mapping) and "__interrupt__" in data:
                        found = cast(Sequence[Any], cast(Mapping[str, Any], data)["__interrupt__"])
                        interrupts.extend(
                            cast(Mapping[str, Any], i).get("value") if isinstance(i, Mapping) else i
                            for i in found
                        )
                    await progress.update(data)
                elif part.event == "custom":
                    await progress.custom(data)
                elif part.event == "error":
                    return error_result(f"The run failed (thread {thread_id}): {_error_text(data)}")
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_TIMEOUT):
                for run_id in run_ids:
                    await self._cancel(thread_id, run_id, headers)
            raise
        except Exception as exc:
            return error_result(self._problem(exc, thread_id=thread_id))
        run_id = run_ids[0] if run_ids else ""
        if not interrupts:
            return RunOutcome(thread_id, run_id, values)
        try:  # the ids and checkpoint the thread waits at, which a resume names
            state = cast(Mapping[str, Any], await self._client.threads.get_state(thread_id, headers=headers))
        except Exception as exc:
            return error_result(self._problem(exc, thread_id=thread_id))
        waiting = cast(Sequence[Any], state.get("interrupts") or [])
        return RunOutcome(
            thread_id,
            run_id,
            values,
            [cast(Mapping[str, Any], i).get("value") if isinstance(i, Mapping) else i for i in waiting],
            questions=questions_of(waiting),
            checkpoint_id=_checkpoint_id(state),
        )

    async def _cancel(self, thread_id: str, run_id: str, headers: Mapping[str, str]) -> None:
        """Cancel a run and wait until it stops (so its thread takes a next run); gone already is fine."""
        try:
            await self._client.runs.cancel(thread_id, run_id, wait=True, headers=headers)
        except Exception as exc:  # the closed stream cancelled it first (404), or the server is gone
            logger.debug("cancelling run %s of thread %s: %s", run_id, thread_id, describe_error(exc))

    def _problem(self, exc: BaseException, *, thread_id: str | None = None, named: bool = False) -> str:
        """What the caller is told; ``named``: the caller gave ``thread_id`` (forbidden looks unknown)."""
        url = self._config.url
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if named and status == 403:
            status = 404  # another user's thread looks exactly like one that does not exist
        if status in (401, 403):
            return f"The Agent Server at {url} refused the request (HTTP {status}); check your bearer token."
        if status == 404 and thread_id is not None:
            return (
                f"There is no thread {thread_id} you can use. Leave out thread_id to start a new "
                "conversation, or pass the thread_id an earlier result of this tool gave you."
            )
        if status == 409 and thread_id is not None:
            return f"Thread {thread_id} is busy with another run; wait for it to end, then call again."
        if isinstance(exc, httpx.TransportError):
            return f"Cannot reach the Agent Server at {url} ({describe_error(exc)}); check that it runs."
        return f"The Agent Server at {url} failed the request: {describe_error(exc)}"


def _checkpoint_id(state: Mapping[str, Any]) -> str:
    checkpoint: Any = state.get("checkpoint")
    return (
        str(cast(Mapping[str, Any], checkpoint).get("checkpoint_id", ""))
        if isinstance(checkpoint, Mapping)
        else ""
    )


def _headers(caller: Caller) -> dict[str, str]:
    return {"Authorization": caller.authorization} if caller.authorization else {}


def _error_text(data: Any) -> str:
    if isinstance(data, Mapping):
        error = cast(Mapping[str, Any], data)
        kind, message = error.get("error"), error.get("message")
        return f"{kind}: {message}" if kind and message else str(message or kind or "unknown error")
    return str(data)


class RemoteTokenCheck:
    """A `UserVerifier` that asks the Agent Server whether it accepts a bearer token.

    A token the Agent Server answers 401 or 403 is refused here too (HTTP 401
    before anything runs); an accepted one is remembered for ``ttl`` seconds. The
    user is known to the Agent Server only, so here it is a stand-in whose
    identity is a digest of the token.

    Args:
        url: The Agent Server's base URL.
        ttl: Seconds an accepted token is trusted without asking again.
    """

    def __init__(self, url: str, *, ttl: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.ttl = ttl
        self._accepted: dict[str, float] = {}

    async def __call__(self, token: str) -> ServedUser | None:
        """Ask the Agent Server (``POST /assistants/search``) with ``token``."""
        digest = hashlib.sha256(token.encode()).hexdigest()[:16]
        now = time.monotonic()
        if self._accepted.get(digest, 0.0) > now:
            return ServedUser(f"token-{digest}")
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=self.url, timeout=10.0) as http:
            response = await http.post("/assistants/search", json={"limit": 1}, headers=headers)
        if response.status_code in (401, 403):
            return None
        response.raise_for_status()
        if len(self._accepted) > 1024:
            self._accepted = {k: v for k, v in self._accepted.items() if v > now}
        self._accepted[digest] = now + self.ttl
        return ServedUser(f"token-{digest}")
