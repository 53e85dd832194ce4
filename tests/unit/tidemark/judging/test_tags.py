"""A judgement as registry tags and metrics, named alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tidemark.judging.promotion import decide, gather_evidence
from tidemark.judging.tags import decision_tags, evidence_metrics, evidence_tags, metric_tags
from tidemark.modelling.metrics import Metrics
from tidemark.project.spec import ErrorKind


def metrics(mre: float, n: int = 60) -> Metrics:
    return Metrics(mae=mre * 3, rmse=mre * 4, judged=mre, n=n)


def test_tags_and_metrics_use_the_same_names() -> None:
    species = pd.Series(["salmon", "walleye", "salmon", "walleye"])
    evidence = gather_evidence(species, np.array([0.1, 0.2, 0.3, 0.4]), np.full(4, 0.5))
    figures = evidence_metrics(evidence)
    tags = evidence_tags(evidence)
    assert set(figures) == set(tags)
    assert tags["heldout_n"] == "4"
    assert tags["heldout_n.salmon"] == "2"
    assert float(tags["p_value"]) == figures["p_value"]
    assert float(tags["candidate_mean_relative_error.walleye"]) == pytest.approx(0.3)
    assert figures["champion_mean_relative_error.salmon"] == pytest.approx(0.5)
    alone = evidence_tags(gather_evidence(species, np.full(4, 0.1), None, {"pike": 3}))
    assert alone["p_value"] == "none"
    assert alone["not_judged"] == "pike (3 rows)"
    assert "champion_mean_relative_error.salmon" not in alone


def test_per_segment_errors_are_named_after_the_error_judged() -> None:
    segments = pd.Series(["north", "south"])
    evidence = gather_evidence(
        segments, np.array([1.5, 2.5]), np.array([2.0, 3.0]), kind=ErrorKind.ABSOLUTE
    )
    tags = evidence_tags(evidence)
    assert float(tags["candidate_mean_absolute_error.south"]) == pytest.approx(2.5)
    assert float(tags["champion_mean_absolute_error.north"]) == pytest.approx(2.0)
    assert not any("relative" in name for name in tags)


def test_metric_tags_are_named_like_the_metrics() -> None:
    assert metric_tags("champion", None) == {
        "champion_mae": "none",
        "champion_rmse": "none",
        "champion_mean_relative_error": "none",
    }
    tags = metric_tags("candidate", metrics(0.05))
    assert set(tags) <= set(metrics(0.05).as_dict("candidate_"))
    assert float(tags["candidate_mean_relative_error"]) == 0.05
    assert float(tags["candidate_mae"]) == pytest.approx(0.15)
    ruling = decide(metrics(0.05), None, margin=0.05, alpha=0.05)
    assert decision_tags(ruling) == {"decision": "promoted", "decision_reason": ruling.reason}
