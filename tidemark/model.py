"""The fish weight model: its features, how it is built and trained, and how it is judged.

Fish weight is allometric, ``W ≈ a·L^b·H^c``, and each species has its own law, so the model is
linear in log space with a law per species shrunk toward a shared one (partial pooling):

    log W = b0 + bL·log L + bH·log H                          the shared law
          + d0[species] + dL[species]·log L + dH[species]·log H   the species' own deviation

fitted as one ridge regression, then an exponential back to kilograms. The shared coefficients
are barely penalised, the species deviations by ``SPECIES_PENALTY``, so a species with few rows
leans on the shared law and one with many rows gets its own. Log sizes are centred on the
training data, so shrinking a species' exponents leaves its typical weight where its own fish
put it. A species the model never saw has no deviation: it gets the shared law and is flagged,
never refused.

The deviations are species one-hot columns times [1, log L, log H] (``PolynomialFeatures`` of
the one-hot and one log size, one block per size). The one-hot columns are scaled by
``_SPECIES_SCALE`` (``transformer_weights``) so that the single ridge ``alpha`` acts on the
deviations as a penalty of ``SPECIES_PENALTY``: a coefficient on a column scaled by ``s`` costs
``alpha / s²`` per unit of effect.

The pipeline holds only stock scikit-learn classes and numpy ufuncs, so MLflow's default skops
serialization stores and loads it without any extra trusted types and without pickle.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    PolynomialFeatures,
    StandardScaler,
)

SPECIES = "species"
SIZE_FEATURES = ("length_cm", "height_cm")
FEATURES = (SPECIES, *SIZE_FEATURES)
TARGET = "weight_kg"
MIN_TRAINING_ROWS = 20
# The penalty on the shared law: next to nothing, only enough to keep the solver away from the
# all-zero columns (products of two one-hot columns) that the interactions create.
RIDGE_ALPHA = 1e-6
# The penalty on a species' deviation from the shared law, in log-weight units squared. A species
# with n fish whose log lengths spread by sd keeps the share n·sd² / (n·sd² + SPECIES_PENALTY)
# of its own exponent: about half at 40 salmon (sd 0.11), nearly all of it at a few hundred.
# Its level needs far fewer fish: the offset appears in both size blocks, so its penalty is half
# of this. Measured on the packaged scenarios: 20 walleye beside 400 salmon predict walleye
# about twice as well as the shared law, and with a thousand fish each, every species sits at
# its noise floor.
SPECIES_PENALTY = 0.5
_SPECIES_SCALE = float(np.sqrt(RIDGE_ALPHA / SPECIES_PENALTY))

_FEATURES_STEP = "features"
_SIZE_BLOCKS = {"by_length": "length_cm", "by_height": "height_cm"}
_SPECIES_ENCODER = "species"
_BLOCK_COLUMNS = "columns"
_MAX_REPORTED_ROWS = 10
_FINGERPRINT_VERSION = "tidemark-fingerprint-v1"


class DataError(ValueError):
    """Data the model cannot use; the message names the columns and rows at fault."""


class TrainingDataError(DataError):
    """Training data that is missing, too small or invalid."""


@dataclass(frozen=True, slots=True)
class Metrics:
    """Error of a model's predictions on a set of fish with known weights."""

    mae: float
    rmse: float
    mean_relative_error: float
    n: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """The metrics as floats for ``mlflow.log_metrics``, names optionally prefixed."""
        return {f"{prefix}{name}": float(value) for name, value in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A fitted model with its metrics on the training data and the data's fingerprint."""

    model: Pipeline
    metrics: Metrics
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Predictions:
    """Predicted weights, and whether the model knew each fish's species."""

    weight_kg: npt.NDArray[np.float64]
    species_known: npt.NDArray[np.bool_]


def build_pipeline(seed: int = 0) -> Pipeline:
    """An unfitted pipeline predicting ``weight_kg`` from the ``FEATURES`` columns."""
    features = ColumnTransformer(
        [(name, _size_block(size), [SPECIES, size]) for name, size in _SIZE_BLOCKS.items()]
    )
    regressor = TransformedTargetRegressor(
        regressor=Ridge(alpha=RIDGE_ALPHA, random_state=seed), func=np.log, inverse_func=np.exp
    )
    return Pipeline([(_FEATURES_STEP, features), ("regressor", regressor)])


def _size_block(size: str) -> Pipeline:
    """[species one-hot, centred log size] and their products: offsets and exponent deviations."""
    log_size = Pipeline(
        [
            ("log", FunctionTransformer(np.log, feature_names_out="one-to-one")),
            ("centre", StandardScaler(with_std=False)),
        ]
    )
    columns = ColumnTransformer(
        [
            (_SPECIES_ENCODER, OneHotEncoder(handle_unknown="ignore"), [SPECIES]),
            ("log_size", log_size, [size]),
        ],
        transformer_weights={_SPECIES_ENCODER: _SPECIES_SCALE},
    )
    crossed = PolynomialFeatures(degree=2, interaction_only=True, include_bias=False)
    return Pipeline([(_BLOCK_COLUMNS, columns), ("crossed", crossed)])


def train(df: pd.DataFrame, *, seed: int, min_rows: int = MIN_TRAINING_ROWS) -> TrainResult:
    """Fit a new model on ``FEATURES`` and ``TARGET`` of ``df`` (other columns are ignored).

    Raises ``TrainingDataError`` when columns are missing, rows are too few or values are bad.
    """
    check_data(df, columns=(*FEATURES, TARGET), min_rows=min_rows, error=TrainingDataError)
    model = build_pipeline(seed).fit(df.loc[:, list(FEATURES)], df[TARGET].to_numpy(np.float64))
    return TrainResult(model=model, metrics=evaluate(model, df), fingerprint=data_fingerprint(df))


def evaluate(model: Pipeline, df: pd.DataFrame) -> Metrics:
    """MAE, RMSE and mean relative error (``mean(|pred - actual| / actual)``) of the model on df."""
    check_data(df, columns=(*FEATURES, TARGET), min_rows=1, error=DataError)
    actual = df[TARGET].to_numpy(np.float64)
    error = predict(model, df).weight_kg - actual
    return Metrics(
        mae=float(np.mean(np.abs(error))),
        rmse=float(np.sqrt(np.mean(error**2))),
        mean_relative_error=float(np.mean(np.abs(error) / actual)),
        n=len(df),
    )


def predict(model: Pipeline, df: pd.DataFrame) -> Predictions:
    """Predict the weight of every row of ``df``, flagging species the model never saw.

    Raises ``DataError`` for missing columns or invalid features, and for rows whose sizes are
    so far out of range that the predicted weight is not a positive finite number.
    """
    check_data(df, columns=FEATURES, min_rows=0, error=DataError)
    known = df[SPECIES].isin(known_species(model)).to_numpy(np.bool_)
    if df.empty:
        return Predictions(weight_kg=np.empty(0, np.float64), species_known=known)
    with np.errstate(over="ignore", under="ignore"):
        weight = np.asarray(model.predict(df.loc[:, list(FEATURES)]), dtype=np.float64)
    unusable = ~np.isfinite(weight) | (weight <= 0)
    if unusable.any():
        raise DataError(
            f"sizes out of any plausible range give no usable weight at rows "
            f"{_rows(df.index, unusable)}"
        )
    return Predictions(weight_kg=weight, species_known=known)


def relative_errors(model: Pipeline, df: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Each fish's ``|predicted - actual| / actual``, in the order of ``df``'s rows."""
    check_data(df, columns=(*FEATURES, TARGET), min_rows=1, error=DataError)
    actual = df[TARGET].to_numpy(np.float64)
    return np.asarray(np.abs(predict(model, df).weight_kg - actual) / actual, dtype=np.float64)


def known_species(model: Pipeline) -> frozenset[str]:
    """The species the fitted model was trained on."""
    block = model.named_steps[_FEATURES_STEP].named_transformers_[next(iter(_SIZE_BLOCKS))]
    encoder = block.named_steps[_BLOCK_COLUMNS].named_transformers_[_SPECIES_ENCODER]
    return frozenset(str(species) for species in encoder.categories_[0])


def data_fingerprint(df: pd.DataFrame) -> str:
    """A sha256 hex digest of the ``FEATURES`` and ``TARGET`` values of ``df``.

    It identifies the multiset of records: it ignores row order, the index and other columns
    (fish ids included), and counts duplicates, so the same joined records read back from the
    store in any order give the same fingerprint. Numbers are hashed as float64 values.
    """
    check_data(df, columns=(*FEATURES, TARGET), min_rows=0, error=DataError, values=False)
    numbers = df.loc[:, [*SIZE_FEATURES, TARGET]].to_numpy(np.float64).tolist()
    # repr of a Python float is its shortest round-trip form, the same on every platform.
    lines = sorted(
        "\x1f".join([str(species), *map(repr, row)])
        for species, row in zip(df[SPECIES].tolist(), numbers, strict=True)
    )
    digest = hashlib.sha256()
    for line in [_FINGERPRINT_VERSION, "\x1f".join((*FEATURES, TARGET)), *lines]:
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def check_data(
    df: pd.DataFrame,
    *,
    columns: tuple[str, ...],
    min_rows: int,
    error: type[DataError] = TrainingDataError,
    values: bool = True,
) -> None:
    """Raise ``error`` unless ``df`` has ``columns``, ``min_rows`` rows and valid values.

    Valid means: species a non-empty lower-case string, every number finite and positive.
    """
    missing = [column for column in columns if column not in df.columns]
    if missing:
        raise error(f"data lacks the columns {missing} (it has {list(df.columns)})")
    if min_rows > 0 and df.empty:
        raise error("data is empty")
    if values:
        problems = [_bad_values(df, column) for column in columns]
        if any(problems):
            raise error("data has bad values: " + "; ".join(p for p in problems if p))
    if len(df) < min_rows:
        raise error(f"data has {len(df)} rows, fewer than the minimum of {min_rows}")


def _bad_values(df: pd.DataFrame, column: str) -> str:
    if column == SPECIES:
        bad = ~df[column].map(_is_species).to_numpy(np.bool_)
        what = "missing, empty, not a string or not lower-case"
    else:
        with np.errstate(invalid="ignore"):
            number = pd.to_numeric(df[column], errors="coerce").to_numpy(np.float64)
            bad = ~np.isfinite(number) | (number <= 0)
        what = "missing, not a number, infinite or not positive"
    if not bad.any():
        return ""
    return f"{column} is {what} in {int(bad.sum())} rows, at index {_rows(df.index, bad)}"


def _is_species(value: Any) -> bool:
    return isinstance(value, str) and value != "" and value == value.strip().lower()


def _rows(index: pd.Index, mask: npt.NDArray[np.bool_]) -> str:
    labels = cast(list[Any], index[mask].tolist())
    shown = ", ".join(map(str, labels[:_MAX_REPORTED_ROWS]))
    return f"[{shown}{', ...' if len(labels) > _MAX_REPORTED_ROWS else ''}]"
