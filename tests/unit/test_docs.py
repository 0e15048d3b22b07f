"""The README and the guides: relative links resolve, and the README keeps its two set-up commands.

Fast checks without mkdocs; CI also builds the site with ``mkdocs build --strict``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

DEMO_COMMAND = (
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/python -m examples.serve_demo'
)
TEST_COMMAND = 'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/pytest'

_FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def fences(text: str) -> list[tuple[str, str]]:
    """The (language, body) of every fenced code block."""
    return [(m["lang"], m["body"]) for m in _FENCE.finditer(text)]


def prose(text: str) -> str:
    """The text without code blocks and inline code, where link syntax means a link."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def relative_links(text: str) -> list[str]:
    """Link targets that point into the repository (no scheme, not only an anchor)."""
    targets = [m["target"] for m in _LINK.finditer(prose(text))]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I) and not t.startswith("#")]


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_existing_files(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    missing = [
        target
        for target in relative_links(text)
        if not (page.parent / target.split("#", 1)[0]).resolve().exists()
    ]
    assert missing == [], f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_link_check_sees_links_and_skips_code() -> None:
    text = "See [a](docs/a.md#x), [b](https://b.example), [c](#c).\n`[d](d.md)`\n```md\n[e](e.md)\n```\n"
    assert relative_links(text) == ["docs/a.md#x"]


def test_guides_exist() -> None:
    assert (ROOT / "mkdocs.yml").is_file()
    assert (DOCS / "index.md").is_file()
    assert README.read_text(encoding="utf-8").count("](docs/") >= 10, "the README links into the guides"


def test_readme_has_exactly_the_two_set_up_commands() -> None:
    text = README.read_text(encoding="utf-8")
    bash = [body.strip() for lang, body in fences(text) if lang in ("bash", "sh", "shell", "console")]
    set_up = [body for body in bash if "python3 -m venv" in body or ".venv/bin/pip" in body]
    assert set_up == [DEMO_COMMAND, TEST_COMMAND]
    assert text.count("python3 -m venv") == 2


def test_ci_runs_the_readme_test_command() -> None:
    assert f"({TEST_COMMAND})" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
