from __future__ import annotations

import random
import re

import pytest

from mcpbridge import ToolNameConflictError
from mcpbridge._names import assign_names, join, safe_name

PROVIDER_SAFE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

HOSTILE = [
    "search",
    "read file",
    "read.file",
    "read/file:v2",
    "café_crème",
    "Ω≈ç√",
    "日本語のツール",
    "🔥🔥",
    "",
    "   ",
    "___",
    "-dash-",
    "x" * 200,
    "é" * 100,
    "a b" * 50,
    "tab\tnew\nline",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_safe_name_is_provider_safe_and_deterministic(name: str) -> None:
    assert PROVIDER_SAFE.match(safe_name(name))
    assert safe_name(name) == safe_name(name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("search", "search"),
        ("read-file_2", "read-file_2"),
        ("read file", "read_file"),
        ("read.file/v2", "read_file_v2"),
        ("café", "cafe"),
        ("  padded  ", "padded"),
        ("日本語", "tool"),
    ],
)
def test_safe_name_is_readable(name: str, expected: str) -> None:
    assert safe_name(name) == expected


def test_long_names_that_differ_only_at_the_end_stay_distinct() -> None:
    a, b = safe_name("x" * 199 + "a"), safe_name("x" * 199 + "b")
    assert a != b
    assert len(a) == len(b) == 64
    assert a.startswith("x" * 40)


def test_a_64_character_name_is_kept() -> None:
    assert safe_name("y" * 64) == "y" * 64


@pytest.mark.parametrize("prefix", ["p", "a" * 32, "server-with-a-long-name_1"])
@pytest.mark.parametrize("name", ["t", "z" * 64])
def test_join_stays_within_the_limit(prefix: str, name: str) -> None:
    joined = join(prefix, name)
    assert PROVIDER_SAFE.match(joined)
    assert joined.startswith(prefix[:20])


def test_unique_names_are_kept() -> None:
    named = assign_names([("a", "read", None), ("b", "write", None)])
    assert [(n.server, n.mcp_name, n.name) for n in named] == [("a", "read", "read"), ("b", "write", "write")]


def test_server_prefix_is_applied() -> None:
    [named] = assign_names([("files", "read file", "fs")])
    assert named.name == "fs_read_file"


def test_conflict_across_servers_is_prefixed_with_server_names() -> None:
    named = assign_names([("alpha", "search", None), ("beta.v2", "search", None), ("alpha", "other", None)])
    assert [n.name for n in named] == ["alpha_search", "beta_v2_search", "other"]


def test_conflict_across_servers_with_error_policy_raises() -> None:
    with pytest.raises(ToolNameConflictError) as info:
        assign_names([("alpha", "search", None), ("beta", "search", None)], on_conflict="error")
    message = str(info.value)
    assert "'search'" in message
    assert "'alpha'" in message
    assert "'beta'" in message
    assert "prefix" in message
    assert info.value.field == "prefix"


def test_same_server_clean_collision_gets_distinct_hash_suffixes() -> None:
    named = assign_names([("a", "read file", None), ("a", "read_file", None), ("a", "read.file", None)])
    names = [n.name for n in named]
    assert len(set(names)) == 3
    assert names[1] == "read_file"  # already safe: keeps its name
    for name in (names[0], names[2]):
        assert PROVIDER_SAFE.match(name)
        assert re.fullmatch(r"read_file_[0-9a-f]{8}", name)


def test_same_server_collision_is_not_an_error_under_error_policy() -> None:
    named = assign_names([("a", "read file", None), ("a", "read_file", None)], on_conflict="error")
    assert len({n.name for n in named}) == 2


def test_hostile_names_from_two_servers_are_valid_and_unique() -> None:
    candidates = [(server, name, None) for server in ("one", "two") for name in HOSTILE]
    names = [n.name for n in assign_names(candidates)]
    assert len(set(names)) == len(names)
    for name in names:
        assert PROVIDER_SAFE.match(name), name


def test_naming_does_not_depend_on_order() -> None:
    candidates = [(server, name, None) for server in ("one", "two", "three") for name in HOSTILE[:8]]
    expected = {(n.server, n.mcp_name): n.name for n in assign_names(candidates)}
    shuffled = list(candidates)
    random.Random(7).shuffle(shuffled)
    assert {(n.server, n.mcp_name): n.name for n in assign_names(shuffled)} == expected


def test_prefixing_that_cannot_separate_raises_rather_than_overwrites() -> None:
    # `a`'s tool `a_x` and `a`'s prefixed `x` would both be `a_x`.
    with pytest.raises(ToolNameConflictError, match="still clash"):
        assign_names([("a", "x", None), ("b", "x", None), ("a", "a_x", None)])


def test_error_policy_raises_for_cross_server_conflict_mixed_with_same_server_collision() -> None:
    with pytest.raises(ToolNameConflictError):
        assign_names(
            [("a", "search", None), ("a", "search!", None), ("b", "search", None)], on_conflict="error"
        )
