"""The model server knows no domain: every field it validates, answers, documents and counts
comes from a project file, so no word of the fish example appears in serving/."""

from __future__ import annotations

import re
from pathlib import Path

SERVING = Path(__file__).resolve().parents[3] / "serving"
# The words of the fish example (examples/fish, projects/fish-weight.toml).
EXAMPLE_WORDS = re.compile(r"fish|species|length_cm|weight_kg", re.IGNORECASE)


def test_no_file_of_the_server_speaks_of_the_fish() -> None:
    found = [
        f"{path.relative_to(SERVING.parent)}:{number}: {line.strip()}"
        for path in sorted(SERVING.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if EXAMPLE_WORDS.search(line)
    ]
    assert list(SERVING.rglob("*.py")), SERVING
    assert found == []
