"""The interrupts mcpbridge raises in a graph, the values that resume them, and the input policy.

A server that needs input during a tool call (a 2026-07-28 ``input_required``
result) pauses the run with an interrupt whose value is a mapping of ``type``
`INPUT_REQUEST`; resume it with ``Command(resume={key: {"action": ..., "content": ...}})``.

A 2025-11-25 server asks while its call is open (``elicitation/create``,
``sampling/createMessage``, ``roots/list``); an `InputPolicy` answers those: elicitation
is declined unless the deployment gives a handler, sampling follows its `Sampling`
settings, roots come from the server's configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from mcpbridge.errors import ConfigError

if TYPE_CHECKING:
    from mcpbridge.sampling import Sampling

__all__ = [
    "INPUT_REQUEST",
    "INPUT_SECRET_ENV",
    "ElicitationAnswer",
    "ElicitationHandler",
    "ElicitationRequest",
    "InputPolicy",
]

INPUT_REQUEST: Final = "mcp_input_request"
"""The ``type`` of the interrupt a server's input request raises (``server``, ``tool``, ``requests``, ...)."""

INPUT_SECRET_ENV: Final = "MCPBRIDGE_INPUT_SECRET"
"""The environment variable with the secret that seals the exchange's state in the checkpoint."""


@dataclass(frozen=True, slots=True)
class ElicitationRequest:
    """A server's elicitation during an open call (2025-11-25), as an `ElicitationHandler` gets it.

    Attributes:
        server: The server's name in the bridge.
        tool: The tool's name on the server; ``None`` when calls of several tools were open
            on the session (a 2025 server's request does not say which call it serves).
        user: The run's user (its identity), if the run has one.
        mode: ``"form"`` (answer with content matching ``schema``) or ``"url"`` (the user
            opens ``url``; answer ``accept`` once they agreed to).
        message: The server's question.
        schema: The JSON schema the content must match (form mode).
        url: The URL to open (URL mode). Log none of it: it may carry a one-time token.
    """

    server: str
    tool: str | None
    user: str | None
    mode: Literal["form", "url"]
    message: str
    schema: Mapping[str, Any] | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class ElicitationAnswer:
    """What an `ElicitationHandler` answers: ``accept`` with content, ``decline`` or ``cancel``.

    Content that does not match the request's schema is not sent: the request is declined.
    """

    action: Literal["accept", "decline", "cancel"]
    content: Mapping[str, str | int | float | bool | list[str] | None] | None = None


class ElicitationHandler(Protocol):
    """A deployment's answer to a 2025-11-25 server's elicitation during a call."""

    async def __call__(self, request: ElicitationRequest, /) -> ElicitationAnswer:
        """Answer ``request`` (an exception declines it)."""
        ...


@dataclass(frozen=True, slots=True)
class InputPolicy:
    """How a deployment answers the requests servers make during a call, without a human.

    Args:
        elicitation: Answers a 2025-11-25 server's ``elicitation/create``; ``None`` declines
            every one. (A 2026-07-28 server's elicitation becomes an interrupt either way.)
        sampling: Which servers may sample a model, with which model and within which limits
            (see `mcpbridge.sampling.Sampling`); ``None`` declines every sampling request.
        timeout: Seconds the handler may take; past it the request is cancelled.
        hold_calls: Seconds a 2025-11-25 server's call may stay open waiting for its user's
            answer (``None``: never; the policy answers). With it, an elicitation that comes
            while a run's one call is open on a pooled session pauses the run with an
            `INPUT_REQUEST` interrupt, the call kept open; resuming the thread answers it.
            Best effort: the resume must reach the same process and event loop within the
            hold (see the input requests guide). Past it the request is cancelled.

    A declined request is said in the tool's result, so the model knows why the
    server did without the answer.

    Example:
        ```python
        async def answer(request: ElicitationRequest) -> ElicitationAnswer:
            if request.mode == "form" and request.server == "rooms":
                return ElicitationAnswer("accept", {"name": request.user or "guest"})
            return ElicitationAnswer("decline")


        make_graph = agent_factory(servers, model, input_policy=InputPolicy(elicitation=answer))
        ```
    """

    elicitation: ElicitationHandler | None = None
    sampling: Sampling | None = None
    timeout: float = 30.0
    hold_calls: float | None = None

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            msg = f"InputPolicy(timeout=...) must be positive, not {self.timeout!r}"
            raise ConfigError(msg, field="timeout")
        hold = self.hold_calls
        if hold is not None and (isinstance(hold, bool) or not hold > 0 or hold == float("inf")):
            msg = f"InputPolicy(hold_calls=...) must be a positive number of seconds or None, not {hold!r}"
            raise ConfigError(msg, field="hold_calls")
