"""The README's table of benchmark targets is the one ``bench/results/latest.json`` gives."""

from __future__ import annotations

import json
from pathlib import Path

from bench import table
from bench.results import LATEST, validate

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_shows_the_targets_of_the_committed_results() -> None:
    data = json.loads(LATEST.read_text(encoding="utf-8"))
    assert validate(data) == []
    text = README.read_text(encoding="utf-8")
    begin, end = text.index(table.TARGETS_BEGIN), text.index(table.TARGETS_END)
    shown = text[begin : end + len(table.TARGETS_END)]
    assert shown == table.targets(data), "refresh it with `python -m bench.table --targets`"
    assert data["runs"] >= 3, "latest.json comes from `python -m bench --runs 3` or more"
    assert not data["quick"]
