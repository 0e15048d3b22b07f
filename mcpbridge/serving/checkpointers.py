"""Where served threads are kept: in memory, in a SQLite file, or in Postgres.

``memory`` keeps threads for the life of the process; ``sqlite:PATH`` keeps them
in a file, and ``postgres://...`` needs ``mcpbridge[postgres]``. Both are imported
only when asked for, and a missing package is a `ConfigError` that names the extra
to install. `default_checkpointer` is what ``mcpbridge serve`` uses when none is
given: over stdio a SQLite file in the user's state directory, since clients may
start a new server process per call.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from mcpbridge.errors import ConfigError

__all__ = [
    "STATE_DIR_ENV",
    "CheckpointerSpec",
    "default_checkpointer",
    "open_checkpointer",
    "parse_checkpointer",
    "require_checkpointer",
    "state_directory",
]

STATE_DIR_ENV = "MCPBRIDGE_STATE_DIR"
"""The environment variable that overrides `state_directory`."""

logger = logging.getLogger("mcpbridge")

_SCHEMES = "memory, sqlite:PATH (e.g. sqlite:threads.db) or postgres://user:password@host:5432/db"


@dataclass(frozen=True, slots=True)
class CheckpointerSpec:
    """A parsed checkpointer option.

    Attributes:
        kind: ``memory``, ``sqlite`` or ``postgres``.
        target: The SQLite path or the Postgres URL (empty for memory).
    """

    kind: Literal["memory", "sqlite", "postgres"]
    target: str = ""


def parse_checkpointer(spec: str) -> CheckpointerSpec:
    """Parse ``memory``, ``sqlite:PATH`` or ``postgres://...``.

    Raises:
        ConfigError: The scheme is unknown or the path is empty.
    """
    text = spec.strip()
    if text in ("", "memory", "memory:"):
        return CheckpointerSpec("memory")
    scheme, sep, rest = text.partition(":")
    if sep and scheme == "sqlite":
        path = rest.removeprefix("//")  # sqlite:///abs/path and sqlite:relative/path alike
        if not path:
            raise ConfigError(
                "checkpointer 'sqlite:' needs a file path, such as sqlite:threads.db", field="checkpointer"
            )
        return CheckpointerSpec("sqlite", path)
    if sep and scheme in ("postgres", "postgresql"):
        return CheckpointerSpec("postgres", text)
    raise ConfigError(f"unknown checkpointer {spec!r}; use {_SCHEMES}", field="checkpointer")


def state_directory() -> Path:
    """The mcpbridge directory in the user's state directory (``$MCPBRIDGE_STATE_DIR`` overrides it).

    ``$XDG_STATE_HOME/mcpbridge`` (``~/.local/state/mcpbridge``) on Linux,
    ``~/Library/Application Support/mcpbridge`` on macOS, ``%LOCALAPPDATA%/mcpbridge`` on Windows.
    """
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return Path(override)
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "mcpbridge"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "mcpbridge"
    return Path(os.environ.get("XDG_STATE_HOME") or home / ".local" / "state") / "mcpbridge"


def default_checkpointer(transport: Literal["stdio", "http"]) -> CheckpointerSpec:
    """The checkpointer of ``mcpbridge serve`` without ``--checkpointer``.

    Over stdio, ``sqlite:`` ``threads.sqlite`` in `state_directory` (created), so threads outlive
    the process of each call; over HTTP, memory (the server outlives its calls).
    """
    if transport == "http":
        return CheckpointerSpec("memory")
    directory = state_directory()
    directory.mkdir(parents=True, exist_ok=True)
    return CheckpointerSpec("sqlite", str(directory / "threads.sqlite"))


_PACKAGES = {
    "sqlite": ("langgraph.checkpoint.sqlite", "langgraph-checkpoint-sqlite"),
    "postgres": (
        "langgraph.checkpoint.postgres",
        "langgraph-checkpoint-postgres",
    ),
}


def require_checkpointer(spec: CheckpointerSpec) -> None:
    """Check, without importing it, that the package ``spec`` needs is installed.

    Raises:
        ConfigError: It is not; the message names the extra to install.
    """
    if spec.kind == "memory":
        return
    module, package = _PACKAGES[spec.kind]
    try:
        found = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        found = None
    if found is None:
        raise _missing(spec.kind, package)


@asynccontextmanager
async def open_checkpointer(
    spec: str | CheckpointerSpec | BaseCheckpointSaver[Any] | None,
) -> AsyncGenerator[BaseCheckpointSaver[Any], None]:
    """Open the checkpointer ``spec`` names, and close it on exit.

    A `BaseCheckpointSaver` is used as given (its owner closes it); ``None`` means memory.

    Raises:
        ConfigError: The spec is invalid, or its package is not installed.
    """
    if isinstance(spec, BaseCheckpointSaver):
        yield spec
        return
    parsed = parse_checkpointer(spec or "memory") if not isinstance(spec, CheckpointerSpec) else spec
    if parsed.kind == "memory":
        yield InMemorySaver()
    elif parsed.kind == "sqlite":
        try:
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
        except ImportError:
            raise _missing("sqlite", "langgraph-checkpoint-sqlite") from None
        async with AsyncSqliteSaver.from_conn_string(parsed.target) as saver:
            yield saver
    else:
        async with _postgres_saver(parsed.target) as saver:
            yield saver


@asynccontextmanager
async def _postgres_saver(url: str) -> AsyncGenerator[BaseCheckpointSaver[Any], None]:
    """A Postgres checkpointer, its tables set up (or migrated) by one replica at a time."""
    try:
        from langgraph.checkpoint.postgres.aio import (  # pyright: ignore[reportMissingImports]
            AsyncPostgresSaver,  # pyright: ignore[reportUnknownVariableType]
        )
        from psycopg import AsyncConnection  # pyright: ignore[reportMissingImports]
    except ImportError:
        raise _missing("postgres", "langgraph-checkpoint-postgres") from None
    async with AsyncPostgresSaver.from_conn_string(url) as saver:  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        # Replicas starting together would race on CREATE TABLE: one sets up at a time.
        async with await AsyncConnection.connect(url, autocommit=True) as setup_lock:
            try:
                with anyio.fail_after(_SETUP_WAIT):
                    # Polled, not pg_advisory_lock: a statement waiting for it holds a snapshot,
                    # which the CREATE INDEX CONCURRENTLY of the replica setting up waits for.
                    while True:
                        if await _try_lock(setup_lock):
                            break
                        await anyio.sleep(0.2)
            except TimeoutError:
                logger.error(
                    "another process has held advisory lock %d (setting up the checkpointer's tables) "
                    "for %.0fs; look it up in pg_locks",
                    _SETUP_LOCK,
                    _SETUP_WAIT,
                )
                raise
            await saver.setup()  # pyright: ignore[reportUnknownMemberType]
            # Now, not when the server notices the connection closed: the next replica goes on at once.
            await setup_lock.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
        yield saver  # pyright: ignore[reportUnknownArgumentType]


async def _try_lock(conn: Any) -> bool:
    row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (_SETUP_LOCK,))).fetchone()
    return bool(row and row[0])


_SETUP_LOCK = int.from_bytes(b"mcpb-set", "big", signed=True)
"""The advisory lock under which a replica creates or migrates the checkpointer's tables."""
_SETUP_WAIT = 300.0
"""Seconds a replica waits for another to set the tables up."""


def _missing(extra: str, package: str) -> ConfigError:
    return ConfigError(
        f"the {extra} checkpointer needs the {package} package; install it with "
        f"pip install 'mcpbridge[{extra}]'",
        field="checkpointer",
    )
