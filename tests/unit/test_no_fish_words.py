"""The platform knows no fish: the example's words stay under examples/fish/ and its tests.

Every text file of the platform's folders (sources, configs, templates, Dockerfiles) is read,
and any ``fish``, ``species``, ``length_cm`` or ``weight_kg``, in any case and inside any word
(``fish_id``, ``per_species``), is reported with its file and line. A project file and its
scenarios say what a stream's fields are called; the code takes them from there (issue 23).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidemark.deprecated_names import DEPRECATED_NAMES

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("tidemark", "flows", "serving", "streaming", "monitoring", "infra")
WORDS = re.compile(r"fish|species|length_cm|weight_kg", re.IGNORECASE)
SKIPPED_DIRS = {"__pycache__"}


def text_files(folder: Path) -> Iterator[Path]:
    """Every file under ``folder`` that reads as UTF-8 text, caches left out."""
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or SKIPPED_DIRS & set(path.relative_to(ROOT).parts):
            continue
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        yield path


def allowed(path: Path, text: str) -> str:
    """``text`` without what may name a fish: the old settings names that still work for one
    release (tidemark.deprecated_names), in the module that maps them to the new ones."""
    if path == ROOT / "tidemark" / "deprecated_names.py":
        for old in DEPRECATED_NAMES:
            text = text.replace(f'"{old}"', '""')
    return text


def fish_words(path: Path) -> list[str]:
    """``file:line: text`` of each line of ``path`` that names a fish word."""
    text = allowed(path, path.read_text(encoding="utf-8"))
    return [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), start=1)
        if WORDS.search(line)
    ]


@pytest.mark.parametrize("folder", FOLDERS)
def test_no_fish_word_in_the_platform(folder: str) -> None:
    found = [line for path in text_files(ROOT / folder) for line in fish_words(path)]
    assert found == [], "\n".join(found)


def test_a_fish_word_is_found_in_any_case_and_inside_a_word(tmp_path: Path) -> None:
    assert WORDS.search("per_Species")
    assert WORDS.search("FISH_ID")
    assert WORDS.search("predicted_weight_kg")
    assert not WORDS.search("segment, target, key")


def test_only_old_setting_names_are_allowed_and_their_replacements_are_clean() -> None:
    assert all(not WORDS.search(new) for new in DEPRECATED_NAMES.values())
    text = '"retrain_species_memory": "retrain_segment_memory",  # species'
    cleaned = allowed(ROOT / "tidemark" / "deprecated_names.py", text)
    assert WORDS.search(cleaned)  # the comment still counts
    assert cleaned.startswith('"": ')
