"""Checkpointer options of served graphs (``mcpbridge.serving.checkpointers``)."""

from __future__ import annotations

import pytest

from mcpbridge import ConfigError
from mcpbridge.serving import open_checkpointer
from mcpbridge.serving.checkpointers import parse_checkpointer, require_checkpointer

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


async def test_a_missing_checkpointer_package_names_the_extra() -> None:
    spec = parse_checkpointer("postgres://user:secret@127.0.0.1:1/db")
    try:
        import langgraph.checkpoint.postgres  # noqa: F401  # pyright: ignore[reportMissingImports, reportUnusedImport]
    except ImportError:
        pass
    else:
        pytest.skip("langgraph-checkpoint-postgres is installed")
    with pytest.raises(ConfigError, match=r"pip install 'mcpbridge\[postgres\]'"):
        require_checkpointer(spec)
    with pytest.raises(ConfigError, match="langgraph-checkpoint-postgres"):
        async with open_checkpointer(spec):
            pass
