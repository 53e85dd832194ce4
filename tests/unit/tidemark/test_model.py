"""Training, evaluation, validation, fingerprints and the skops round trip of the weight model."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tidemark.model import (
    FEATURES,
    TARGET,
    DataError,
    Metrics,
    TrainingDataError,
    data_fingerprint,
    evaluate,
    known_species,
    predict,
    train,
)


def exact_law(length: float, height: float) -> float:
    """A noise-free allometric law the model can represent exactly."""
    return 0.01 * length**2 * height


@pytest.fixture(scope="module")
def exact() -> pd.DataFrame:
    sizes = itertools.product(np.linspace(8, 25, 8), np.linspace(3, 8, 6))
    rows = [("perch", length, height, exact_law(length, height)) for length, height in sizes]
    return pd.DataFrame(rows, columns=[*FEATURES, TARGET])


def test_metrics_on_a_hand_checked_example(exact: pd.DataFrame) -> None:
    model = train(exact, seed=0).model
    # The model predicts 5 kg and 20 kg; the scale says 4 kg and 25 kg.
    truth = pd.DataFrame(
        {"species": ["perch", "perch"], "length_cm": [10.0, 20.0], "height_cm": [5.0, 5.0]}
    ).assign(weight_kg=[4.0, 25.0])
    metrics = evaluate(model, truth)
    assert metrics.n == 2
    assert metrics.mae == pytest.approx((1 + 5) / 2, rel=1e-3)
    assert metrics.rmse == pytest.approx(np.sqrt((1 + 25) / 2), rel=1e-3)
    assert metrics.mean_relative_error == pytest.approx((1 / 4 + 5 / 25) / 2, rel=1e-3)


def test_training_metrics_of_an_exact_law_are_near_zero(exact: pd.DataFrame) -> None:
    result = train(exact, seed=0)
    assert result.metrics.n == len(exact)
    assert result.metrics.mean_relative_error < 1e-3
    assert result.fingerprint == data_fingerprint(exact)
    assert known_species(result.model) == frozenset({"perch"})


def test_metrics_as_dict_for_mlflow() -> None:
    metrics = Metrics(mae=1.0, rmse=2.0, mean_relative_error=0.1, n=3)
    assert metrics.as_dict("test_") == {
        "test_mae": 1.0,
        "test_rmse": 2.0,
        "test_mean_relative_error": 0.1,
        "test_n": 3.0,
    }


def test_unknown_species_is_predicted_and_flagged(exact: pd.DataFrame) -> None:
    model = train(exact, seed=0).model
    fish = pd.DataFrame(
        {"species": ["perch", "zander"], "length_cm": [10.0] * 2, "height_cm": [5.0] * 2}
    )
    predictions = predict(model, fish)
    assert predictions.species_known.tolist() == [True, False]
    assert np.all(np.isfinite(predictions.weight_kg) & (predictions.weight_kg > 0))


def test_predict_on_no_rows(exact: pd.DataFrame) -> None:
    predictions = predict(train(exact, seed=0).model, exact.iloc[:0])
    assert predictions.weight_kg.shape == predictions.species_known.shape == (0,)


def test_predict_refuses_bad_features_and_absurd_sizes(exact: pd.DataFrame) -> None:
    model = train(exact, seed=0).model
    bad = exact.head(3).assign(length_cm=[10.0, np.nan, -1.0])
    with pytest.raises(DataError, match=r"length_cm .* 2 rows, at index \[1, 2\]"):
        predict(model, bad)
    with pytest.raises(DataError, match="no usable weight at rows \\[0\\]"):
        predict(model, exact.head(1).assign(length_cm=1e300))


def with_value(df: pd.DataFrame, column: str, value: object) -> pd.DataFrame:
    bad = df.copy()
    bad[column] = bad[column].astype(object)
    bad.loc[5, column] = value
    return bad


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("length_cm", np.nan),
        ("length_cm", np.inf),
        ("height_cm", 0.0),
        ("weight_kg", -2.0),
        ("weight_kg", "heavy"),
        ("species", None),
        ("species", ""),
        ("species", "Perch"),
    ],
)
def test_bad_values_are_named(exact: pd.DataFrame, column: str, value: object) -> None:
    with pytest.raises(TrainingDataError, match=f"{column} is .* in 1 rows, at index \\[5\\]"):
        train(with_value(exact, column, value), seed=0)


def test_missing_columns_empty_and_small_data(exact: pd.DataFrame) -> None:
    with pytest.raises(TrainingDataError, match="lacks the columns \\['height_cm'\\]"):
        train(exact.drop(columns="height_cm"), seed=0)
    with pytest.raises(TrainingDataError, match="empty"):
        train(exact.iloc[:0], seed=0)
    with pytest.raises(TrainingDataError, match="19 rows, fewer than the minimum of 20"):
        train(exact.head(19), seed=0)
    assert train(exact.head(5), seed=0, min_rows=5).metrics.n == 5


def test_fingerprint_ignores_order_index_ids_and_number_types(exact: pd.DataFrame) -> None:
    reference = data_fingerprint(exact)
    assert len(reference) == 64
    shuffled = exact.sample(frac=1.0, random_state=1).assign(fish_id="x")
    assert data_fingerprint(shuffled) == reference
    whole = exact.assign(length_cm=exact.length_cm.round())
    assert data_fingerprint(whole) == data_fingerprint(whole.astype({"length_cm": "float32"}))


def test_fingerprint_changes_with_the_data(exact: pd.DataFrame) -> None:
    reference = data_fingerprint(exact)
    changed = exact.copy()
    changed.loc[0, TARGET] += 1e-9
    assert data_fingerprint(changed) != reference
    assert data_fingerprint(pd.concat([exact, exact.head(1)])) != reference
    assert data_fingerprint(exact.assign(species="pike")) != reference


def test_skops_round_trip_through_mlflow(
    exact: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.exceptions
    import mlflow.pyfunc
    import mlflow.sklearn
    import skops.io
    import yaml

    model = train(exact, seed=0).model
    path = tmp_path / "model"
    # Explicit requirements skip MLflow's inference, which re-imports the model in a subprocess.
    mlflow.sklearn.save_model(
        model, path, serialization_format="skops", pip_requirements=["scikit-learn", "skops"]
    )
    flavor = yaml.safe_load((path / "MLmodel").read_text())["flavors"]["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert skops.io.get_untrusted_types(file=path / "model.skops") == []

    # MLflow's own loaders deserialise nothing in a Tidemark process...
    with pytest.raises(mlflow.exceptions.MlflowException, match="PICKLE_DESERIALIZATION"):
        mlflow.sklearn.load_model(str(path))
    # ...while anyone who trusts the artifact (this test made it) can load it with MLflow alone.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    fish = exact.assign(species=["perch", "zander"] * (len(exact) // 2))
    expected = predict(model, fish)
    loaded = mlflow.sklearn.load_model(str(path))
    assert np.array_equal(predict(loaded, fish).weight_kg, expected.weight_kg)
    assert np.array_equal(predict(loaded, fish).species_known, expected.species_known)
    assert known_species(loaded) == known_species(model)
    pyfunc = mlflow.pyfunc.load_model(str(path))
    assert np.array_equal(
        np.asarray(pyfunc.predict(fish.loc[:, list(FEATURES)])), expected.weight_kg
    )
