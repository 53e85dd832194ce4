"""The timeline picture is drawn into a PNG file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from demo.timeline import draw_timeline
from tests.unit.monitoring.scored import T0, scored
from tidemark.schemas import RetrainReason, RetrainRequest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_a_png_of_the_error_with_versions_and_a_retrain(tmp_path: Path) -> None:
    records = (
        [scored(s, rel_error=0.05, version="1") for s in range(0, 120)]
        + [scored(s, rel_error=0.22, version="1", species="walleye") for s in range(120, 200)]
        + [scored(s, rel_error=0.06, version="2", species="walleye") for s in range(200, 300)]
    )
    request = RetrainRequest(
        reason=RetrainReason.ERROR,
        window_start=T0 + timedelta(seconds=120),
        window_end=T0 + timedelta(seconds=180),
        metric="mean_relative_error",
        metric_value=0.22,
        threshold=0.10,
        model_version="1",
        requested_at=T0 + timedelta(seconds=190),
    )
    path = draw_timeline(
        records, [request], threshold=0.10, window_s=60, path=tmp_path / "out" / "loop.png"
    )
    assert path == tmp_path / "out" / "loop.png"
    content = path.read_bytes()
    assert content.startswith(PNG_SIGNATURE)
    assert len(content) > 20_000


def test_nothing_to_draw_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no scored records"):
        draw_timeline([], [], threshold=0.1, window_s=60, path=tmp_path / "x.png")
