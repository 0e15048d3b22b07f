"""Bearer-token auth for ``mcpbridge serve``: the tokens of ``examples/auth.py``, checked by a verifier.

Serve the example agent over HTTP so that each caller runs it as their own user::

    mcpbridge serve agent=examples.agent:make_graph --transport http --auth examples.serve_auth:verify

``alice-token`` runs it as alice (``local_*`` and ``remote_*`` tools), ``bob-token``
as bob (``local_*`` only); any other request is answered 401. A verifier is any
async function from a token to a user (a mapping with ``identity`` and
``permissions``, or a ``BaseUser``) or ``None``. These tokens are for
demonstration only: a real verifier checks a signed token (JWT, OAuth introspection).
"""

from __future__ import annotations

from typing import Any

from examples.auth import USERS


async def verify(token: str) -> dict[str, Any] | None:
    """The user of ``token``, or ``None`` to refuse it."""
    user = USERS.get(token)
    return dict(user) if user is not None else None
