"""The timeline picture is drawn into a PNG file."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from demo.timeline import draw_timeline, shadow_marks
from tests.unit.monitoring.scored import T0, retrain_request, scored
from tidemark.project.contracts import Scored
from tidemark.schemas import ModelDecision, ModelEvent, ShadowVerdict

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


def _shadowed(record: Scored, version: str) -> Scored:
    return replace(
        record,
        prediction=replace(
            record.prediction, challenger_version=version, challenger_value=record.truth
        ),
        challenger_abs_error=0.0,
        challenger_rel_error=0.0,
    )


def _decision(seconds: float, kind: ModelEvent) -> ModelDecision:
    return ModelDecision(
        kind=kind,
        model_name="fish-weight",
        champion_version="1",
        challenger_version="2",
        verdict=ShadowVerdict.PROMOTE,
        n=240,
        reason="better on live fish",
        decided_by="monitor",
        decided_at=T0 + timedelta(seconds=seconds),
    )


def test_shadow_evaluation_is_marked_where_it_happened(tmp_path: Path) -> None:
    records = [scored(s, version="1") for s in range(0, 60)]
    records += [_shadowed(scored(s, version="1"), "2") for s in range(60, 180)]
    records += [scored(s, version="2") for s in range(180, 240)]
    decisions = [_decision(179, ModelEvent.PROMOTION), _decision(900, ModelEvent.ROLLBACK)]
    marks = shadow_marks(records, decisions)
    # The rollback was decided after the last fish drawn: not marked.
    assert marks == [
        (T0 + timedelta(seconds=60), "v2 in shadow"),
        (T0 + timedelta(seconds=179), "promotion: v2 vs v1, n 240"),
    ]
    path = draw_timeline(
        records, [], decisions=decisions, threshold=0.1, window_s=60, path=tmp_path / "s.png"
    )
    assert path.read_bytes().startswith(PNG_SIGNATURE)
