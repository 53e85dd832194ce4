"""What a version says about itself: run names, trigger tags and the Markdown description."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tidemark.judging.decisions import Decision, Ruling
from tidemark.judging.promotion import gather_evidence
from tidemark.modelling.metrics import Metrics
from tidemark.project.spec import load_project
from tidemark.registry.notes import Trigger, describe_version, model_description


def test_run_names_tell_the_trigger() -> None:
    error = Trigger(reason="error", metric="mean_relative_error", metric_value=0.2134,
                    threshold=0.1)  # fmt: skip
    assert error.run_name("7") == "retrain v7 · error 0.21 > 0.10"
    assert Trigger(reason="manual").run_name(None) == "retrain · manual"
    assert Trigger(reason="bootstrap").run_name(None) == "bootstrap"
    assert Trigger(reason="drift", metric_value=0.67, segments=("pike",)).run_name("2") == (
        "retrain v2 · drift 0.67 (pike)"
    )


def test_trigger_tags_hold_only_what_is_known() -> None:
    assert Trigger(reason="manual").tags() == {}
    tags = Trigger(reason="error", metric="mean_relative_error", metric_value=0.2,
                   threshold=0.1, segments=("salmon", "pike")).tags()  # fmt: skip
    assert tags == {
        "trigger_metric": "mean_relative_error",
        "trigger_metric_value": "0.2",
        "trigger_threshold": "0.1",
        "trigger_segments": "salmon, pike",
    }


def test_the_description_states_trigger_evidence_and_decision() -> None:
    species = pd.Series(["salmon"] * 20 + ["walleye"] * 20)
    candidate = np.linspace(0.01, 0.1, 40)
    evidence = gather_evidence(species, candidate, candidate * 3, {"pike": 4})
    text = describe_version(
        trigger=Trigger(reason="error", metric_value=0.21, threshold=0.1),
        verdict=Ruling(Decision.PROMOTED, "candidate wins"),
        evidence=evidence,
        candidate=Metrics(mae=0.1, rmse=0.2, judged=0.055, n=40),
        champion=Metrics(mae=0.3, rmse=0.4, judged=0.165, n=40),
        champion_version="3",
        margin=0.05,
        alpha=0.05,
        training_rows={"salmon": 80, "walleye": 80, "pike": 4},
        source="mongodb://db/tidemark.training_data",
    )
    assert text.startswith("**Decision: promoted.** candidate wins.")
    assert "**Trigger:** error 0.21 > 0.10" in text
    assert "40 held-out items (salmon 20, walleye 20)" in text
    assert evidence.test is not None
    assert f"p = {evidence.test.p_value:.3g} (alpha 0.05)" in text
    assert "164 records (salmon 80, walleye 80, pike 4)" in text
    assert "too few to judge:** pike (4 rows)" in text
    assert "| candidate error | champion v3 error |" in text
    assert "| **all** | 40 | 0.0550 | 0.1650 |" in text
    salmon = evidence.candidate_error_by_segment["salmon"]
    assert f"| salmon | 20 | {salmon:.4f} | {salmon * 3:.4f} |" in text


def test_the_model_description_is_the_projects() -> None:
    repo = Path(__file__).resolve().parents[3]
    text = model_description(load_project(repo / "projects" / "penguin-mass.toml"))
    assert text.startswith("Predicts body_mass_g (g) from species, island, bill_length_mm")
    assert "`species_known: false`" in text
    assert "error per species" in text
    assert "fish" not in text
