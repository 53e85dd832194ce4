"""Build a project's model, train it, predict with it and judge it: the API the loop uses.

The model is the project's: the platform's default (:mod:`tidemark.modelling.default`) or the
estimator its ``model.factory`` returns (:mod:`tidemark.modelling.factory`). Every function
takes the project and a frame of it (:mod:`tidemark.modelling.frames`) and checks the frame
first, so bad data is refused with the columns and rows at fault rather than failing deep in
scikit-learn.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tidemark.modelling.default import build_default, known_segments
from tidemark.modelling.factory import user_estimator
from tidemark.modelling.fingerprint import data_fingerprint
from tidemark.modelling.frames import (
    DataError,
    TrainingDataError,
    check_frame,
    model_input,
    rows_at,
)
from tidemark.modelling.metrics import Metrics
from tidemark.modelling.predictions import Predictions, no_usable_value, unusable
from tidemark.modelling.storage import check_storable
from tidemark.project.spec import ErrorKind, Project

MIN_TRAINING_ROWS = 20


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A fitted model, its metrics on the training data, the data's fingerprint and segments.

    ``segments`` are the segments of the training data (empty without a segment): the ones a
    user's model knows, to be stored with the version; a default model also reads them from
    its encoder (:func:`tidemark.modelling.default.known_segments`).
    """

    model: Any
    metrics: Metrics
    fingerprint: str
    segments: frozenset[str]


def build_estimator(project: Project, seed: int = 0) -> Any:
    """An unfitted model of ``project``: its ``model.factory``'s, else the platform's default.

    ``seed`` seeds the default model; a user's model sets its own. Raises ``FactoryError``
    when the factory cannot give an estimator.
    """
    if project.model.factory is not None:
        return user_estimator(project)
    return build_default(project, seed)


def train(
    project: Project, df: pd.DataFrame, *, seed: int, min_rows: int = MIN_TRAINING_ROWS
) -> TrainResult:
    """Fit a new model on the features and the target of ``df`` (other columns are ignored).

    Raises ``TrainingDataError`` when columns are missing, rows are too few or values are bad
    (a row without a target among them: drop those first), ``FactoryError`` when the user's
    model cannot be built and ``UntrustedModelError`` when it could not be stored and loaded
    without running code.
    """
    check_frame(project, df, target=True, min_rows=min_rows, error=TrainingDataError)
    model = build_estimator(project, seed)
    model.fit(model_input(project, df), df[project.target.name].to_numpy(np.float64))
    if project.model.factory is not None:
        check_storable(model)
    segments = frozenset[str]()
    if project.segment is not None:
        segments = frozenset(str(s) for s in df[project.segment].unique())
    return TrainResult(
        model=model,
        metrics=evaluate(project, model, df),
        fingerprint=data_fingerprint(project, df),
        segments=segments,
    )


def predict(
    project: Project, model: Any, df: pd.DataFrame, *, segments: Collection[str] | None = None
) -> Predictions:
    """Predict the target of every row of ``df``, flagging segments the model never saw.

    ``segments`` are the segments the model knows: those its training returned, stored with
    the version; read from the model itself when None, which only a default model allows.
    Raises ``DataError`` for missing columns or bad features, and for rows whose features are
    so far out of range that the prediction is not a usable number.
    """
    check_frame(project, df, target=False, min_rows=0, error=DataError)
    values = _values(project, model, df)
    if project.segment is None:
        return Predictions(values, np.ones(len(df), np.bool_))
    known = known_segments(project, model) if segments is None else segments
    if known is None:
        raise ValueError(
            f"{project.name}: this model does not say which segments it knows; pass the "
            f"segments of its training data (TrainResult.segments)"
        )
    flags = df[project.segment].isin(list(known)).to_numpy(np.bool_)
    return Predictions(values, flags)


def evaluate(project: Project, model: Any, df: pd.DataFrame) -> Metrics:
    """MAE, RMSE and the mean of the judged error of the model on ``df``, and its size."""
    errors = _errors(project, model, df)
    return Metrics(
        mae=float(np.mean(np.abs(errors))),
        rmse=float(np.sqrt(np.mean(errors**2))),
        judged=float(np.mean(_judged(project, errors, df))),
        n=len(df),
        kind=project.target.judged_by,
    )


def judged_errors(project: Project, model: Any, df: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Each row's judged error (``|predicted - actual| / actual`` for a relative one,
    ``|predicted - actual|`` for an absolute one), in the order of ``df``'s rows."""
    return _judged(project, _errors(project, model, df), df)


def _judged(
    project: Project, errors: npt.NDArray[np.float64], df: pd.DataFrame
) -> npt.NDArray[np.float64]:
    judged = np.abs(errors)
    if project.target.judged_by is ErrorKind.RELATIVE:
        judged = judged / df[project.target.name].to_numpy(np.float64)
    return np.asarray(judged, dtype=np.float64)


def _errors(project: Project, model: Any, df: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Predicted minus actual, row by row."""
    check_frame(project, df, target=True, min_rows=1, error=DataError)
    actual = df[project.target.name].to_numpy(np.float64)
    return np.asarray(_values(project, model, df) - actual, dtype=np.float64)


def _values(project: Project, model: Any, df: pd.DataFrame) -> npt.NDArray[np.float64]:
    """The model's predictions for a checked frame; ``DataError`` where one is unusable."""
    if df.empty:
        return np.empty(0, np.float64)
    with np.errstate(over="ignore", under="ignore"):
        values = np.asarray(model.predict(model_input(project, df)), dtype=np.float64)
    if values.size == len(df):
        values = values.reshape(len(df))  # a model may answer with one column
    else:
        raise DataError(f"the model gave {values.shape} predictions for {len(df)} rows")
    bad = unusable(project, values)
    if bad.any():
        raise DataError(no_usable_value(project, rows_at(df.index, bad)))
    return values
