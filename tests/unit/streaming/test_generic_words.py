"""The stream runtime, the scorer, the joiner, the monitor and the judging speak of any project:
no example's words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# The fish example's words; the fish live in examples/fish and projects/fish-weight.toml.
WORDS = re.compile(r"fish|species|length_cm|height_cm|weight_kg", re.IGNORECASE)
GENERIC = ("streaming", "tidemark/stream", "monitoring", "tidemark/judging")


def speaking_of_fish(text: str) -> list[str]:
    """The lines of ``text`` that name one of the fish example's words."""
    return [line.strip() for line in text.splitlines() if WORDS.search(line)]


@pytest.mark.parametrize("folder", GENERIC)
def test_no_module_names_the_fish(folder: str) -> None:
    found = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (lines := speaking_of_fish(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_check_finds_a_fish() -> None:
    assert speaking_of_fish("x = 1\nkey = record.fish_id\n") == ["key = record.fish_id"]
