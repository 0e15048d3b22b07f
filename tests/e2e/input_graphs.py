"""An Agent Server graph whose MCP server asks for input, in both protocol eras.

Named ``inquiring`` in the ``langgraph.json`` that ``tests/e2e/test_input_requests.py``
writes. Its runs connect (each run anew, ``pool=False``) to the inquiring example server
over streamable HTTP at ``INQUIRING_URL`` twice: as ``modern`` (2026-07-28, whose
elicitations become interrupts) and as ``legacy`` (2025-11-25, whose elicitations the
deployment's handler answers: a form with the run's user as the name, a URL declined).
Both may sample the agent's own model (the offline one), within the policy's budget.
``holding`` (pooled) reaches the server in the 2025-11-25 era only, and holds its calls
open for the user's answer (``InputPolicy(hold_calls=...)``).
"""

from __future__ import annotations

import os
from typing import Any

from langgraph_sdk.runtime import ServerRuntime

from mcpbridge import HttpServer, ServerConfig, agent_factory
from mcpbridge.interrupts import ElicitationAnswer, ElicitationRequest, InputPolicy
from mcpbridge.sampling import Sampling
from mcpbridge.testing import OfflineChatModel

URL_ENV = "INQUIRING_URL"
"""The inquiring example server's streamable HTTP endpoint."""


async def answer(request: ElicitationRequest) -> ElicitationAnswer:
    """A form gets the run's user as its name; a URL is declined (nobody is there to open it)."""
    if request.mode == "form":
        return ElicitationAnswer("accept", {"name": request.user or "guest"})
    return ElicitationAnswer("decline")


def servers(runtime: ServerRuntime[Any]) -> list[ServerConfig]:
    """The inquiring server twice, in each era, at the URL of the Agent Server's environment."""
    url = os.environ[URL_ENV]
    return [
        HttpServer(name="modern", url=url, prefix="modern", protocol="auto", connect_timeout=10),
        HttpServer(name="legacy", url=url, prefix="legacy", protocol="legacy", connect_timeout=10),
    ]


policy = InputPolicy(
    elicitation=answer,
    sampling=Sampling(servers=["modern", "legacy"], model=None, max_tokens=50, daily_tokens=10_000),
)

inquiring = agent_factory(servers, OfflineChatModel(), input_policy=policy, pool=False)


def held_servers(runtime: ServerRuntime[Any]) -> list[ServerConfig]:
    """The inquiring server in the 2025-11-25 era only, its calls long enough for a person."""
    url = os.environ[URL_ENV]
    return [
        HttpServer(
            name="held", url=url, prefix="held", protocol="legacy", connect_timeout=10, call_timeout=300
        )
    ]


holding = agent_factory(held_servers, OfflineChatModel(), input_policy=InputPolicy(hold_calls=120))
"""Named ``holding``: a 2025 server's elicitation held open for the user's answer (pooled sessions)."""
