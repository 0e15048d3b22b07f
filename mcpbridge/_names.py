"""Provider-safe tool names, and conflicts between servers resolved in the open.

Model providers accept tool names matching ``^[a-zA-Z0-9_-]{1,64}$``. Names are
made safe deterministically and readably; a name two tools would share is
prefixed with its server's name, or rejected, never silently overwritten.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mcpbridge.errors import ToolNameConflictError

MAX_NAME_LENGTH = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")

ConflictPolicy = Literal["prefix", "error"]


def safe_name(name: str) -> str:
    """Return a provider-safe version of ``name``.

    Unicode is folded to ASCII where it has an equivalent, every other run of
    unsafe characters becomes ``_``, and names over 64 characters are cut with
    a short hash of the original so that distinct long names stay distinct.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE.sub("_", ascii_name).strip("_") or "tool"
    return _fit(cleaned, name, always_hash=False)


def _fit(cleaned: str, original: str, *, always_hash: bool) -> str:
    if len(cleaned) <= MAX_NAME_LENGTH and not always_hash:
        return cleaned
    digest = _digest(original)
    return f"{cleaned[: MAX_NAME_LENGTH - len(digest) - 1]}_{digest}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def join(prefix: str, name: str) -> str:
    """Join a prefix and a safe name, keeping within the length limit."""
    joined = f"{prefix}_{name}"
    if len(joined) <= MAX_NAME_LENGTH:
        return joined
    digest = _digest(joined)
    return f"{joined[: MAX_NAME_LENGTH - len(digest) - 1]}_{digest}"


@dataclass(frozen=True, slots=True)
class NamedTool:
    """A tool of one server and the name it is offered under."""

    server: str
    mcp_name: str
    name: str


def assign_names(
    candidates: Sequence[tuple[str, str, str | None]], *, on_conflict: ConflictPolicy = "prefix"
) -> list[NamedTool]:
    """Give every ``(server, mcp_name, prefix)`` a unique provider-safe name.

    Names are resolved from the whole set at once, so the outcome does not
    depend on which server answered first.

    Raises:
        ToolNameConflictError: Two tools share a name and ``on_conflict`` is ``"error"``,
            or prefixing cannot separate them.
    """
    names = [
        join(prefix, safe_name(mcp_name)) if prefix else safe_name(mcp_name)
        for _, mcp_name, prefix in candidates
    ]
    # One server offering two names that clean to one: a name that was already safe keeps it,
    # the others get a hash of their original.
    same_server: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
    for index, (server, _, _) in enumerate(candidates):
        same_server[(server, names[index])].append(index)
    for (server, name), members in same_server.items():
        if len(members) > 1:
            for i in members:
                if candidates[i][1] != name:
                    names[i] = _fit(name, f"{server}/{candidates[i][1]}", always_hash=True)
    # Servers offering the same name: prefix each with its server's name, or refuse.
    groups: defaultdict[str, list[int]] = defaultdict(list)
    for index, name in enumerate(names):
        groups[name].append(index)
    for name, members in groups.items():
        if len(members) < 2:
            continue
        if on_conflict == "error":
            offered = ", ".join(f"{candidates[i][1]!r} from {candidates[i][0]!r}" for i in members)
            raise ToolNameConflictError(
                f"tool name {name!r} is offered by more than one server ({offered}); "
                "set a `prefix` on one of the servers, drop the tool with `exclude_tools`, "
                "or use on_name_conflict='prefix'",
                server=candidates[members[0]][0],
                field="prefix",
            )
        for i in members:
            names[i] = join(safe_name(candidates[i][0]), name)
    if len(set(names)) != len(names):
        clash = sorted({n for n in names if names.count(n) > 1})
        raise ToolNameConflictError(
            f"tool names {clash} still clash after prefixing with server names; "
            "give the servers distinct `prefix` values"
        )
    return [
        NamedTool(server=server, mcp_name=mcp_name, name=name)
        for (server, mcp_name, _), name in zip(candidates, names, strict=True)
    ]
