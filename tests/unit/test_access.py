"""The user a run serves: reading it, rules over it and tool filters (``mcpbridge._access``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from langgraph.store.memory import InMemoryStore

from mcpbridge.scoping import ToolFilter, UserContext, has_any_permission, has_permission, user_in

ANONYMOUS = UserContext()


def user(identity: str = "alice", *permissions: str, **fields: Any) -> UserContext:
    return UserContext.from_user({"identity": identity, "permissions": list(permissions), **fields})


class DotDict:
    """Like langgraph_api's ``DotDict``: an auth handler's dict, its keys also as attributes."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        for key, value in data.items():
            setattr(self, key, value)

    def dict(self) -> dict[str, Any]:
        return dict(self._data)


class ProxyUser:
    """Like langgraph_api's ``ProxyUser``: what ``runtime.user`` is under custom auth.

    It has ``identity`` and the ``BaseUser`` properties, proxies other attributes
    (``permissions``, ``org``) to the wrapped user, and is a read-only mapping of
    ``identity``, ``is_authenticated``, ``display_name`` and the wrapped user's fields.
    """

    def __init__(self, wrapped: DotDict) -> None:
        self._user = wrapped

    @property
    def identity(self) -> str:
        return self._user.identity  # pyright: ignore[reportAttributeAccessIssue]

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.identity

    def dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "is_authenticated": True,
            "display_name": self.display_name,
            **self._user.dict(),
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self._user, name)

    def __getitem__(self, key: str) -> Any:
        return self.dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.dict())

    def keys(self) -> Any:
        return self.dict().keys()

    def items(self) -> Any:
        return self.dict().items()


@dataclass
class PlainUser:
    """A user object with attributes only (no mapping interface)."""

    identity: str
    permissions: list[str] = field(default_factory=list[str])


# --- UserContext.from_user -------------------------------------------------------------------------


def test_no_user_is_anonymous() -> None:
    store = InMemoryStore()
    context = UserContext.from_user(None, store)
    assert context.identity is None
    assert not context.authenticated
    assert context.permissions == frozenset()
    assert context.store is store
    assert context.value("identity") is None


def test_a_mapping_user() -> None:
    context = UserContext.from_user({"identity": "alice", "permissions": ["read", "write"], "org": "acme"})
    assert context.identity == "alice"
    assert context.authenticated
    assert context.permissions == frozenset({"read", "write"})
    assert context.value("org") == "acme"
    assert context.value("identity") == "alice"
    assert context.fields["org"] == "acme"


def test_a_proxy_user_as_the_agent_server_passes_it() -> None:
    wrapped = DotDict({"identity": "bob", "permissions": ["mcp:github"], "org": "acme", "tier": 3})
    context = UserContext.from_user(ProxyUser(wrapped))
    assert context.identity == "bob"
    assert context.permissions == frozenset({"mcp:github"})
    assert context.value("org") == "acme"
    assert context.value("tier") == "3"  # non-string scalars are rendered as text
    assert context.value("display_name") == "bob"


def test_an_object_user_without_a_mapping_interface() -> None:
    context = UserContext.from_user(PlainUser("carol", ["admin"]))
    assert context.identity == "carol"
    assert context.permissions == frozenset({"admin"})
    assert context.fields["identity"] == "carol"


def test_non_string_identity_and_permissions_become_text() -> None:
    context = UserContext.from_user({"identity": 42, "permissions": [1, "two"]})
    assert context.identity == "42"
    assert context.permissions == frozenset({"1", "two"})


def test_missing_and_structured_fields_have_no_text_value() -> None:
    context = user("alice", "p", groups=["a", "b"], profile={"x": 1}, nothing=None)
    assert context.value("org") is None
    assert context.value("groups") is None  # a list cannot fill a template
    assert context.value("profile") is None
    assert context.value("nothing") is None
    assert context.value("permissions") is None


def test_the_store_is_neither_shown_nor_compared() -> None:
    a = UserContext.from_user({"identity": "alice"}, InMemoryStore())
    b = UserContext.from_user({"identity": "alice"}, InMemoryStore())
    assert a == b
    assert "InMemoryStore" not in repr(a)


# --- rules -----------------------------------------------------------------------------------------


def test_has_permission_needs_every_permission() -> None:
    rule = has_permission("read", "write")
    assert rule(user("alice", "read", "write", "admin"))
    assert not rule(user("alice", "read"))
    assert not rule(user("alice"))


def test_has_any_permission_needs_one() -> None:
    rule = has_any_permission("read", "write")
    assert rule(user("alice", "write"))
    assert not rule(user("alice", "admin"))
    assert not rule(user("alice"))


def test_user_in() -> None:
    rule = user_in("alice", "bob")
    assert rule(user("alice"))
    assert rule(user("bob"))
    assert not rule(user("carol"))
    assert not rule(ANONYMOUS)


def test_anonymous_runs_never_pass_permission_rules() -> None:
    # An anonymous context with permissions (as an odd runtime might give) still passes nothing.
    anonymous_with_permissions = UserContext(identity=None, permissions=frozenset({"read"}))
    for rule in (has_permission("read"), has_any_permission("read"), has_permission()):
        assert not rule(ANONYMOUS)
        assert not rule(anonymous_with_permissions)


def test_rules_are_named_after_what_they_check() -> None:
    assert "has_permission('read', 'write')" in has_permission("read", "write").__qualname__
    assert "has_any_permission('x')" in has_any_permission("x").__qualname__
    assert "user_in('alice')" in user_in("alice").__qualname__


# --- ToolFilter ------------------------------------------------------------------------------------


def test_tool_filter_allows_everything_by_default() -> None:
    assert ToolFilter().allows("anything")


def test_tool_filter_allow_and_deny_globs() -> None:
    tools = ToolFilter(allow=["github_*", "search"], deny=["*_delete_*"])
    assert tools.allows("github_list_repos")
    assert tools.allows("search")
    assert not tools.allows("github_delete_repo")  # deny wins over allow
    assert not tools.allows("searching")  # a glob matches the whole name
    assert not tools.allows("files_read")


def test_tool_filter_is_case_sensitive() -> None:
    assert not ToolFilter(allow=["github_*"]).allows("GitHub_list")
    assert ToolFilter(deny=["*Delete*"]).allows("repo_delete")
