"""An item's explanation: assembled from its records, its version's tags and the history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka.partitioner.default import DefaultPartitioner

from tidemark.config import Settings
from tidemark.explain import (
    ItemStatus,
    Links,
    assemble,
    lineage_of,
    window_of,
)
from tidemark.project.catalog import load_catalog
from tidemark.project.contracts import Prediction
from tidemark.registry.history import HowItCame, ProductionMove
from tidemark.stream.lookup import partition_of

REPO = Path(__file__).parents[3]
CATALOG = load_catalog(REPO / "projects", ["penguin-mass"])
PENGUINS = CATALOG.contracts()
SETTINGS = CATALOG.settings(Settings(monitor_window_s=60, stream_join_window_s=60))
AT = datetime(2026, 12, 2, 14, 5, 17, tzinfo=UTC)
INPUT = (
    b'{"penguin_id":"p-7","species":"Gentoo","island":"Biscoe","bill_length_mm":47.5,'
    b'"bill_depth_mm":15.0,"flipper_length_mm":218.0,"measured_at":"2026-12-02T14:05:17Z"}'
)
TAGS = {
    "training_window_start": "2026-12-01T00:00:00+00:00",
    "training_window_end": "2026-12-02T14:00:00+00:00",
    "row_count": "480",
    "data_fingerprint": "ab" * 32,
    "trigger_reason": "error",
    "trigger_metric": "mean_relative_error",
    "trigger_metric_value": "0.21",
    "trigger_threshold": "0.1",
    "decision": "promoted",
    "decision_reason": "better on held-out items",
    "heldout_n": "120",
    "p_value": "0.0031",
    "candidate_mean_relative_error": "0.052",
    "champion_mean_relative_error": "0.118",
    "champion_version": "3",
    "heldout_n.Gentoo": "40",
    "candidate_mean_relative_error.Gentoo": "0.061",
    "champion_mean_relative_error.Gentoo": "0.29",
    "heldout_n.Adelie": "80",
    "candidate_mean_relative_error.Adelie": "0.047",
    "champion_mean_relative_error.Adelie": "0.05",
    "flow_run_id": "f1f1",
    "shadow_state": "{...}",
}


def prediction(challenger: bool = False) -> Prediction:
    item = PENGUINS.decode_input(INPUT)
    return Prediction(
        item, 5200.0, False, "penguin-mass", "4", AT + timedelta(milliseconds=40),
        "5" if challenger else None, 5050.0 if challenger else None,
    )  # fmt: skip


def test_the_window_that_judged_an_item_is_the_monitors_tumbling_window() -> None:
    assert window_of(AT, 60) == (AT.replace(second=0), AT.replace(minute=6, second=0))
    assert window_of(AT.replace(second=0), 60)[0] == AT.replace(second=0)


class ThreePartitions:
    """The cluster metadata the producer's partitioner reads: one topic of three partitions."""

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2}

    available_partitions_for_topic = partitions_for_topic


def test_a_key_is_looked_for_in_the_partition_kafka_puts_it_in() -> None:
    partitioner, cluster = DefaultPartitioner(), ThreePartitions()
    keys = [f"item-{i}".encode() for i in range(30)]
    chosen = [partitioner.partition("t", None, key, None, None, cluster) for key in keys]
    assert [partition_of(key, 3) for key in keys] == chosen
    assert set(chosen) == {0, 1, 2}


def test_the_lineage_reads_the_evidence_per_segment_and_the_move_before_the_prediction() -> None:
    moves = [
        ProductionMove(version="4", previous="3", at=AT - timedelta(hours=1),
                       how=HowItCame.EVIDENCE, reason="better on held-out items"),
        ProductionMove(version="4", previous="6", at=AT + timedelta(hours=1),
                       how=HowItCame.ROLLBACK, reason="v6 worse live"),
    ]  # fmt: skip
    lineage = lineage_of(
        "4", "run-4", TAGS, moves, predicted_at=AT, links=Links(SETTINGS, experiment_id="7")
    )
    assert lineage.came == moves[0]
    assert (lineage.training_rows, lineage.heldout_n, lineage.p_value) == (480, 120, 0.0031)
    assert lineage.trigger == {
        "reason": "error", "metric": "mean_relative_error", "metric_value": "0.21",
        "threshold": "0.1",
    }  # fmt: skip
    assert lineage.segments["Gentoo"].model_dump() == {
        "n": 40, "candidate_error": 0.061, "champion_error": 0.29,
    }  # fmt: skip
    assert list(lineage.segments) == ["Adelie", "Gentoo"]
    assert lineage.shadow == {}
    tracking = SETTINGS.registry.tracking_uri.rstrip("/")
    assert lineage.mlflow_url == f"{tracking}/#/models/penguin-mass/versions/4"
    assert lineage.run_url == f"{tracking}/#/experiments/7/runs/run-4"
    assert lineage.prefect_url == f"{SETTINGS.orchestration.ui_url}/runs/flow-run/f1f1"


def test_a_scored_item_has_its_truth_errors_window_and_the_challengers_errors() -> None:
    predicted = prediction(challenger=True)
    truth = PENGUINS.decode_truth(
        b'{"penguin_id":"p-7","body_mass_g":5000.0,"weighed_at":"2026-12-02T14:05:40Z"}'
    )
    scored = PENGUINS.join(predicted, truth, AT + timedelta(seconds=30))
    explained = assemble(
        PENGUINS, SETTINGS, prediction=predicted, scored=scored, lineage=None,
        lineage_error="registry down", found=[], now=AT + timedelta(hours=1),
    )  # fmt: skip
    assert explained.status is ItemStatus.SCORED
    assert explained.inputs["island"] == "Biscoe"
    assert "sex" not in explained.inputs  # absent optional feature
    assert (explained.prediction.version, explained.prediction.value) == ("4", 5200.0)
    assert explained.prediction.segment_known is False
    assert explained.challenger is not None
    assert (explained.challenger.version, explained.challenger.abs_error) == ("5", 50.0)
    assert explained.truth is not None
    assert explained.truth.value == 5000.0
    assert explained.truth.judged_error == pytest.approx(0.04)
    assert (explained.truth.window_start, explained.truth.window_end) == (
        AT.replace(second=0), AT.replace(minute=6, second=0),
    )  # fmt: skip
    assert explained.lineage_error == "registry down"


def test_an_item_without_truth_waits_then_says_the_window_passed() -> None:
    predicted = prediction()
    waiting = assemble(
        PENGUINS, SETTINGS, prediction=predicted, scored=None, lineage=None, lineage_error=None,
        found=[], now=AT + timedelta(seconds=59),
    )  # fmt: skip
    assert waiting.status is ItemStatus.WAITING
    assert "waiting for its truth" in waiting.note
    assert (waiting.truth, waiting.challenger) == (None, None)
    late = assemble(
        PENGUINS, SETTINGS, prediction=predicted, scored=None, lineage=None, lineage_error=None,
        found=[], now=AT + timedelta(seconds=61),
    )  # fmt: skip
    assert late.status is ItemStatus.NO_TRUTH
