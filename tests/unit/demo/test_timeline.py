"""The timeline picture is drawn into a PNG file."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.timeline import draw_timeline
from tests.unit.monitoring.scored import retrain_request, scored

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_a_png_of_the_error_with_versions_and_a_retrain(tmp_path: Path) -> None:
    records = (
        [scored(s, rel_error=0.05, version="1") for s in range(0, 120)]
        + [scored(s, rel_error=0.22, version="1", species="walleye") for s in range(120, 200)]
        + [scored(s, rel_error=0.06, version="2", species="walleye") for s in range(200, 300)]
    )
    path = draw_timeline(
        records,
        [retrain_request(120, metric_value=0.22)],
        threshold=0.10,
        window_s=60,
        path=tmp_path / "out" / "loop.png",
    )
    assert path == tmp_path / "out" / "loop.png"
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE)
    assert len(content) > 20_000


def test_nothing_to_draw_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no scored records"):
        draw_timeline([], [], threshold=0.1, window_s=60, path=tmp_path / "x.png")
