"""The ``mcpbridge`` command line: argument parsing and the reasons it exits 2 (``mcpbridge.cli``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcpbridge.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve"], "name a graph to serve"),
        (["serve", "nope"], "name it as module:attr"),
        (["serve", "--config", "langgraph.json", "nope"], "graph id 'nope' is not in"),
        (["serve", "tests.serve.graphs:memo", "--checkpointer", "redis://x"], "unknown checkpointer"),
        (
            ["serve", "tests.serve.graphs:memo", "--auth", "examples.serve_auth:verify"],
            "--auth is for --transport http",
        ),
        (
            ["serve", "--remote", "http://127.0.0.1:1", "--checkpointer", "sqlite:x.db"],
            "does not apply to --remote",
        ),
        (["serve", "tests.serve.graphs:memo", "--transport", "http", "--auth", "remote"], "needs --remote"),
        (
            ["serve", "tests.serve.graphs:memo", "--transport", "http", "--auth", "examples.auth:USERS"],
            "is a dict",
        ),
    ],
)
def test_bad_command_lines_exit_2_with_the_reason(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


async def verify_nobody(token: str) -> None:
    """A bearer-token verifier that knows no token."""
    return None


def test_an_auth_verifier_named_on_the_command_line_is_loaded() -> None:
    from mcpbridge.cli import _verifier  # pyright: ignore[reportPrivateUsage]

    assert _verifier(f"{__name__}:verify_nobody") is verify_nobody


def test_the_parser_defaults() -> None:
    args = build_parser().parse_args(["serve", "pkg.mod:graph"])
    assert args.command == "serve" and args.graphs == ["pkg.mod:graph"]
    assert (args.transport, args.host, args.port, args.path) == ("stdio", "127.0.0.1", 8000, "/mcp")
    assert (args.config, args.remote, args.name, args.log_level) == (None, None, "mcpbridge", "warning")


def test_config_and_remote_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", "--config", "langgraph.json", "--remote", "http://x"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
