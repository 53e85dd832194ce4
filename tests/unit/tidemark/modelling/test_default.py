"""The default model: the law it can represent, partial pooling, unknown segments and levels,
optional features, the project's shapes, and the skops round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.unit.tidemark.modelling.streams import (
    CARRIERS,
    LANES,
    PER_DEGREE,
    RECIPES,
    bakery,
    loaves,
    parcels,
    sorter,
)
from tidemark.modelling.default import build_default, encoded_levels, known_segments
from tidemark.modelling.storage import TRUSTED_TYPES
from tidemark.modelling.training import evaluate, predict, train

BAKERY = bakery()
SORTER = sorter()


def test_an_exact_power_law_per_segment_is_learnt_exactly() -> None:
    data = loaves(300, noise_sd=0.0)
    result = train(BAKERY, data, seed=0)
    # Not zero: each recipe's deviation from the shared law is shrunk a little, on purpose.
    assert result.metrics.judged < 1e-3
    assert known_segments(BAKERY, result.model) == frozenset(RECIPES)
    assert result.segments == frozenset(RECIPES)


def test_an_exact_linear_law_per_segment_is_learnt_exactly_for_a_target_that_is_not_positive() -> (
    None
):
    data = parcels(300, noise_s=0.0)
    assert (data.delay_s < 0).any()
    result = train(SORTER, data, seed=0)
    assert result.metrics.judged == result.metrics.mae
    # Not zero: each lane's deviation from the shared law is shrunk a little, on purpose.
    assert result.metrics.mae < 5e-3 * data.delay_s.std()
    assert result.metrics.judged_name == "mean_absolute_error"
    # The law is read back: a metre more on the north lane by a courier, a degree warmer.
    base = {"lane": "north", "carrier": "courier", "distance_m": 100.0, "temperature_c": 10.0}
    frame = pd.DataFrame([base, {**base, "distance_m": 101.0}, {**base, "temperature_c": 11.0}])
    delay = predict(SORTER, result.model, frame).values
    assert delay[1] - delay[0] == pytest.approx(LANES["north"][1], abs=1e-3)
    assert delay[2] - delay[0] == pytest.approx(PER_DEGREE, abs=1e-3)
    assert delay[0] == pytest.approx(
        LANES["north"][0] + 100 * LANES["north"][1] + 10 * PER_DEGREE + CARRIERS["courier"],
        abs=0.5,
    )


def test_a_segment_never_seen_gets_the_shared_law_and_is_flagged() -> None:
    model = train(BAKERY, loaves(300, noise_sd=0.05), seed=0).model
    frame = loaves(6).assign(recipe=["rye", "brioche", "rye", "brioche", "rye", "brioche"])
    predictions = predict(BAKERY, model, frame)
    assert predictions.segment_known.tolist() == [True, False] * 3
    assert np.all(np.isfinite(predictions.values) & (predictions.values > 0))
    # The shared law lies within the recipes' own: between the lightest and the heaviest.
    one = loaves(1).drop(columns=["recipe"])
    by_recipe = [predict(BAKERY, model, one.assign(recipe=r)).values[0] for r in RECIPES]
    shared = predict(BAKERY, model, one.assign(recipe="brioche")).values[0]
    assert min(by_recipe) < shared < max(by_recipe)


def test_a_segment_with_few_rows_leans_on_the_shared_law_and_many_rows_get_their_own() -> None:
    # Spelt's exponent on dough differs from the others'; with one loaf it is shrunk toward the
    # shared exponent (1.0), with 800 it is learnt. The doughs spread widely (0.38 in logs), so a
    # handful of loaves already keeps most of spelt's own exponent.
    laws = {**RECIPES, "spelt": (0.2, 1.25, 0.08)}
    many = loaves(2400, seed=1, noise_sd=0.02, recipes=laws)
    others, spelt = many[many.recipe != "spelt"], many[many.recipe == "spelt"]

    def exponent(model: Any) -> float:
        frame = pd.concat([loaves(1)] * 2).assign(recipe="spelt", dough_g=[500.0, 500.0 * np.e])
        values = predict(BAKERY, model, frame).values
        return float(np.log(values[1] / values[0]))

    assert exponent(train(BAKERY, many, seed=0).model) == pytest.approx(1.25, abs=0.02)
    shrunk = exponent(train(BAKERY, pd.concat([others, spelt.head(1)]), seed=0).model)
    assert 1.0 < shrunk < 1.15


def test_unknown_levels_add_nothing_and_absent_values_are_imputed() -> None:
    data = loaves(600, noise_sd=0.03, absent_share=0.2)
    model = train(BAKERY, data, seed=0).model
    assert encoded_levels(model, "oven") == frozenset({"deck", "convection"})
    # An absent glaze is a level of its own, but not one a user may send.
    assert encoded_levels(model, "glaze") == frozenset({"egg", "milk"})
    assert encoded_levels(model, "dough_g") is None
    one = loaves(1).assign(recipe="rye", oven="deck", glaze="egg", proof_min=60.0)
    frames = {
        "known": one,
        "unknown oven": one.assign(oven="wood-fired"),
        "no proof": one.assign(proof_min=np.nan),
        "no glaze": one.assign(glaze=None),
        "no optional column": one.drop(columns=["proof_min", "glaze"]),
    }
    values = {name: predict(BAKERY, model, frame).values[0] for name, frame in frames.items()}
    assert all(np.isfinite(v) and v > 0 for v in values.values())
    assert values["unknown oven"] != values["known"]
    assert values["no glaze"] != values["known"]
    # An absent proof is its median (that of its logarithm, which the model reads).
    logs = np.log(data.proof_min.dropna())
    median = predict(BAKERY, model, one.assign(proof_min=float(np.exp(logs.median())))).values
    assert values["no proof"] == pytest.approx(median[0], rel=1e-9)
    assert values["no optional column"] == pytest.approx(
        predict(BAKERY, model, one.assign(proof_min=np.nan, glaze=None)).values[0], rel=1e-12
    )


def test_an_optional_feature_never_present_in_training_adds_nothing() -> None:
    data = loaves(100, noise_sd=0.05).drop(columns=["proof_min", "glaze"])
    model = train(BAKERY, data, seed=0).model
    one = loaves(1)
    without = predict(BAKERY, model, one.drop(columns=["proof_min", "glaze"])).values[0]
    assert predict(BAKERY, model, one).values[0] == pytest.approx(without, rel=1e-12)


def test_a_project_without_segment_is_the_shared_law() -> None:
    project = bakery(segment=None)
    model = train(project, loaves(300, noise_sd=0.02), seed=0).model
    assert known_segments(project, model) == frozenset()
    frame = loaves(3).assign(recipe=["rye", "never-baked", "spelt"])
    predictions = predict(project, model, frame)
    assert predictions.segment_known.all()
    # The recipe is only a category: it has shared offsets, and no law of its own.
    assert encoded_levels(model, "recipe") == frozenset(RECIPES)


def test_a_segment_without_numeric_features_gets_offsets_alone() -> None:
    project = sorter(
        features=[{"name": "lane", "type": "category"}, {"name": "carrier", "type": "category"}]
    )
    data = parcels(300, noise_s=1.0)
    model = train(project, data, seed=0).model
    assert known_segments(project, model) == frozenset(LANES)
    by_lane = data.groupby("lane").delay_s.mean()
    frame = pd.DataFrame({"lane": list(by_lane.index), "carrier": "post"})
    values = predict(project, model, frame).values
    assert np.argsort(values).tolist() == np.argsort(by_lane.to_numpy()).tolist()


def test_a_user_pipeline_can_be_asked_for_segments_only_when_it_encodes_them() -> None:
    model = train(BAKERY, loaves(60), seed=0).model
    assert known_segments(BAKERY, model) == frozenset(RECIPES)
    assert known_segments(BAKERY, build_default(BAKERY)) is None  # not fitted yet


@pytest.mark.parametrize(
    ("name", "untrusted"),
    [
        ("bakery", ["numpy.dtype"]),
        ("sorter", ["numpy.dtype"]),
        # Without an optional number there is no imputer, and skops' defaults suffice.
        ("bakery, proof required", []),
    ],
)
def test_skops_stores_and_loads_it_with_the_trusted_types(name: str, untrusted: list[str]) -> None:
    import skops.io

    project, data = {
        "bakery": (BAKERY, loaves(200, noise_sd=0.05, absent_share=0.1)),
        "sorter": (SORTER, parcels(200, noise_s=3.0)),
        "bakery, proof required": (
            bakery(features=[{**f.model_dump(), "required": True} for f in BAKERY.features]),
            loaves(200, noise_sd=0.05),
        ),
    }[name]
    model = train(project, data, seed=0).model
    stored = skops.io.dumps(model)
    assert skops.io.get_untrusted_types(data=stored) == untrusted
    assert set(untrusted) <= set(TRUSTED_TYPES)
    loaded = skops.io.loads(stored, trusted=list(TRUSTED_TYPES))
    assert np.array_equal(
        predict(project, loaded, data).values, predict(project, model, data).values
    )
    assert known_segments(project, loaded) == known_segments(project, model)


def test_mlflow_stores_it_with_skops_and_loads_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.sklearn
    import yaml

    data = loaves(200, noise_sd=0.05, absent_share=0.1)
    model = train(BAKERY, data, seed=0).model
    path = tmp_path / "model"
    trusted = list(TRUSTED_TYPES)
    # Explicit requirements skip MLflow's inference, which re-imports the model in a subprocess.
    mlflow.sklearn.save_model(
        model,
        path,
        serialization_format="skops",
        skops_trusted_types=trusted,
        pip_requirements=["scikit-learn", "skops"],
    )
    flavor = yaml.safe_load((path / "MLmodel").read_text())["flavors"]["sklearn"]
    assert flavor["serialization_format"] == "skops"
    # MLflow keeps the trusted types in the model's flavour and loads with them.
    assert flavor["skops_trusted_types"] == trusted
    # This test made the artifact, so it may trust it; no Tidemark process loads one this way.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    loaded = mlflow.sklearn.load_model(str(path))
    expected = predict(BAKERY, model, data).values
    assert np.array_equal(predict(BAKERY, loaded, data).values, expected)
    assert evaluate(BAKERY, loaded, data) == evaluate(BAKERY, model, data)
