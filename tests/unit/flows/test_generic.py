"""The flows take every name from a project: no word of the fish example is in flows/."""

from __future__ import annotations

import re
from pathlib import Path

FLOWS = Path(__file__).resolve().parents[3] / "flows"
# The fish example's words (examples/fish, projects/fish-weight.toml).
EXAMPLE_WORDS = re.compile(r"fish|species|length_cm|weight_kg", re.IGNORECASE)


def test_no_flow_speaks_of_the_fish_example() -> None:
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(FLOWS.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if EXAMPLE_WORDS.search(line)
    ]
    assert not found, "\n".join(found)
