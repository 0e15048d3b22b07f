"""The authenticated user of a run, and the rules and tool filter that read it.

`UserContext` is read from the factory's ``ServerRuntime``: the user's identity,
permissions and every other field the Agent Server's auth handler returned, plus
the deployment's store. Rules (`has_permission`, ...) decide which server entries
a user gets; `ToolFilter` narrows the tools. Users import them from `mcpbridge.scoping`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from langgraph.store.base import BaseStore

__all__ = ["Rule", "ToolFilter", "UserContext", "has_any_permission", "has_permission", "user_in"]


@dataclass(frozen=True, slots=True)
class UserContext:
    """Who a run serves, for selecting servers, credentials and tools.

    Attributes:
        identity: The authenticated user's identity; ``None`` without custom auth.
        permissions: The user's permissions.
        fields: Every field the auth handler returned (``identity``, ``permissions``, ``org``, ...).
        store: The deployment's store, where per-user credentials and servers live.
    """

    identity: str | None = None
    permissions: frozenset[str] = frozenset()
    fields: Mapping[str, Any] = field(default_factory=dict[str, Any])
    store: BaseStore | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_user(cls, user: Any, store: BaseStore | None = None) -> UserContext:
        """Read an Agent Server user (``runtime.user``: a `BaseUser` or a mapping); ``None`` is anonymous."""
        if user is None:
            return cls(store=store)
        fields: dict[str, Any] = {}
        if hasattr(user, "items"):
            fields.update({str(k): v for k, v in user.items()})
        identity = getattr(user, "identity", None) or fields.get("identity")
        permissions: Any = getattr(user, "permissions", None) or fields.get("permissions") or ()
        if isinstance(permissions, str):
            permissions = (permissions,)  # one permission, not its letters
        fields.setdefault("identity", identity)
        return cls(
            identity=None if identity is None else str(identity),
            permissions=frozenset(str(p) for p in permissions),
            fields=fields,
            store=store,
        )

    def describe(self) -> str:
        """``user 'alice'``, or ``an anonymous run``, for messages."""
        return f"user {self.identity!r}" if self.identity is not None else "an anonymous run"

    @property
    def authenticated(self) -> bool:
        """Whether the run has an authenticated user."""
        return self.identity is not None

    def value(self, name: str) -> str | None:
        """A field as text, for templates (``None`` when the user does not have it)."""
        if name == "identity":
            return self.identity
        value = self.fields.get(name)
        return None if value is None or isinstance(value, (Mapping, list, tuple, set)) else str(value)


Rule: TypeAlias = Callable[[UserContext], bool]
"""Decides from the user whether a server entry applies to a run."""


def has_permission(*permissions: str) -> Rule:
    """A rule: the user holds every one of ``permissions``."""
    wanted = frozenset(permissions)

    def rule(user: UserContext) -> bool:
        return user.authenticated and wanted <= user.permissions

    rule.__qualname__ = f"has_permission({', '.join(map(repr, permissions))})"
    return rule


def has_any_permission(*permissions: str) -> Rule:
    """A rule: the user holds at least one of ``permissions``."""
    wanted = frozenset(permissions)

    def rule(user: UserContext) -> bool:
        return user.authenticated and bool(wanted & user.permissions)

    rule.__qualname__ = f"has_any_permission({', '.join(map(repr, permissions))})"
    return rule


def user_in(*identities: str) -> Rule:
    """A rule: the user is one of ``identities``."""
    wanted = frozenset(identities)

    def rule(user: UserContext) -> bool:
        return user.identity in wanted

    rule.__qualname__ = f"user_in({', '.join(map(repr, identities))})"
    return rule


@dataclass(frozen=True, slots=True)
class ToolFilter:
    """Glob patterns over tool names (as the model sees them), applied after listing.

    A tool is kept when it matches some ``allow`` pattern and no ``deny`` pattern.

    Example:
        ```python
        ToolFilter(allow=["github_*"], deny=["*_delete_*"])
        ```
    """

    allow: Sequence[str] = ("*",)
    deny: Sequence[str] = ()

    def allows(self, name: str) -> bool:
        """Whether the tool ``name`` is kept."""
        if not any(fnmatch.fnmatchcase(name, p) for p in self.allow):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.deny)
