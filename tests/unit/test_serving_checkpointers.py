"""Checkpointer options of served graphs (``mcpbridge.serving.checkpointers``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mcpbridge import ConfigError
from mcpbridge.serving import open_checkpointer
from mcpbridge.serving.checkpointers import (
    STATE_DIR_ENV,
    CheckpointerSpec,
    default_checkpointer,
    parse_checkpointer,
    require_checkpointer,
    state_directory,
)

pytestmark = pytest.mark.anyio


def test_checkpointer_options() -> None:
    assert parse_checkpointer("memory").kind == "memory"
    assert parse_checkpointer("sqlite:threads.db").target == "threads.db"
    assert parse_checkpointer("sqlite:///tmp/threads.db").target == "/tmp/threads.db"
    assert parse_checkpointer("postgres://u:p@localhost/db").kind == "postgres"
    with pytest.raises(ConfigError, match="unknown checkpointer 'redis://x'; use memory, sqlite:PATH"):
        parse_checkpointer("redis://x")
    with pytest.raises(ConfigError, match="needs a file path"):
        parse_checkpointer("sqlite:")


async def test_a_missing_checkpointer_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = parse_checkpointer("postgres://user:secret@127.0.0.1:1/db")
    for module in ("langgraph.checkpoint.postgres", "langgraph.checkpoint.postgres.aio"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed: importing it fails
    with pytest.raises(ConfigError, match=r"pip install 'mcpbridge\[postgres\]'"):
        require_checkpointer(spec)
    with pytest.raises(ConfigError, match="langgraph-checkpoint-postgres"):
        async with open_checkpointer(spec):
            pass


def test_over_stdio_threads_default_to_sqlite_in_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    spec = default_checkpointer("stdio")
    assert spec == CheckpointerSpec("sqlite", str(tmp_path / "state" / "threads.sqlite"))
    assert (tmp_path / "state").is_dir()
    assert default_checkpointer("http") == CheckpointerSpec("memory")


def test_the_state_directory_follows_xdg_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    assert state_directory() == tmp_path / "mcpbridge"
