"""The tables a project's model reads: checked, normalised, or built from the loop's records.

A frame has one column per feature, named as the project names it, and the target's column
when it is judged or trained on; other columns (the key, times, phases …) are ignored. An
optional feature may be absent from a row (NaN or None) or from the frame altogether. The
model itself always gets :func:`model_input`: the features in the project's order, numbers as
float64, categories as text with NaN for an absent value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from tidemark.project.contracts import Item
from tidemark.project.spec import Case, Feature, FeatureType, Project

_MAX_REPORTED_ROWS = 10


class DataError(ValueError):
    """Data the model cannot use; the message names the columns and rows at fault."""


class TrainingDataError(DataError):
    """Training data that is missing, too small or invalid."""


def check_frame(
    project: Project,
    df: pd.DataFrame,
    *,
    target: bool,
    min_rows: int,
    error: type[DataError] = DataError,
    values: bool = True,
) -> None:
    """Raise ``error`` unless ``df`` has the project's columns, ``min_rows`` rows and values
    the model can use.

    Required features (and the target when ``target``) must be columns; an optional feature
    may be missing. Usable values: a category is text in the project's spelling (trimmed, and
    lower-case when the feature says so); a number is finite, and above zero when the model
    takes its logarithm (a feature or target whose bounds make it positive); only an optional
    feature may be absent. Bounds beyond that are the contracts' business, not the model's.
    """
    required = [f.name for f in project.features if f.required]
    if target:
        required.append(project.target.name)
    missing = [name for name in required if name not in df.columns]
    if missing:
        raise error(f"data lacks the columns {missing} (it has {list(df.columns)})")
    if min_rows > 0 and df.empty:
        raise error("data is empty")
    if values:
        problems = [
            _bad_feature(df, feature) for feature in project.features if feature.name in df.columns
        ]
        if target:
            target_spec = project.target
            problems.append(
                _bad_numbers(df, target_spec.name, optional=False, positive=target_spec.positive)
            )
        if any(problems):
            raise error("data has bad values: " + "; ".join(p for p in problems if p))
    if len(df) < min_rows:
        raise error(f"data has {len(df)} rows, fewer than the minimum of {min_rows}")


def model_input(project: Project, df: pd.DataFrame) -> pd.DataFrame:
    """The frame a model gets: every feature in the project's order, numbers as float64,
    categories as text, NaN for an absent value (an optional feature's missing column too)."""
    columns: dict[str, Any] = {}
    for feature in project.features:
        if feature.name not in df.columns:
            kind = np.float64 if feature.type is FeatureType.NUMBER else object
            columns[feature.name] = np.full(len(df), np.nan, dtype=kind)
        elif feature.type is FeatureType.NUMBER:
            columns[feature.name] = pd.to_numeric(df[feature.name]).to_numpy(np.float64)
        else:
            column = df[feature.name].astype(object)
            columns[feature.name] = column.where(column.notna(), np.nan).to_numpy(object)
    return pd.DataFrame(columns, index=df.index)


def frame_of(
    project: Project, records: Iterable[Item | Mapping[str, Any]], *, target: bool = False
) -> pd.DataFrame:
    """A frame of the features (and the target when ``target``) of the loop's items or of
    dict records keyed by the project's names (an API request's, a stored document's).

    An absent or None value becomes NaN; rows keep the records' order, indexed from 0.
    """
    rows = [record.fields if isinstance(record, Item) else record for record in records]
    columns: dict[str, Any] = {}
    for feature in project.features:
        cells = [row.get(feature.name) for row in rows]
        if feature.type is FeatureType.NUMBER:
            columns[feature.name] = _numbers(cells)
        else:
            columns[feature.name] = np.array(
                [np.nan if cell is None else cell for cell in cells], dtype=object
            )
    if target:
        columns[project.target.name] = _numbers([row.get(project.target.name) for row in rows])
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))


def rows_at(index: pd.Index, mask: npt.NDArray[np.bool_]) -> str:
    """The index labels where ``mask`` holds, the first few of them, as ``[3, 7, ...]``."""
    labels = cast(list[Any], index[mask].tolist())
    shown = ", ".join(map(str, labels[:_MAX_REPORTED_ROWS]))
    return f"[{shown}{', ...' if len(labels) > _MAX_REPORTED_ROWS else ''}]"


def _numbers(cells: list[Any]) -> npt.NDArray[np.float64]:
    return np.array([np.nan if cell is None else cell for cell in cells], dtype=np.float64)


def _bad_feature(df: pd.DataFrame, feature: Feature) -> str:
    if feature.type is FeatureType.NUMBER:
        return _bad_numbers(
            df, feature.name, optional=not feature.required, positive=feature.positive
        )
    column = df[feature.name]
    absent = column.isna().to_numpy(np.bool_)
    spelled = column.map(lambda value: _well_spelled(feature, value)).to_numpy(np.bool_)
    bad = ~spelled & (~absent | feature.required)
    spelling = "lower-case and trimmed" if feature.case is Case.LOWER else "trimmed"
    what = f"empty, not text or not {spelling}"
    return _report(df, feature.name, bad, what if not feature.required else f"missing, {what}")


def _bad_numbers(df: pd.DataFrame, name: str, *, optional: bool, positive: bool) -> str:
    column = df[name]
    absent = column.isna().to_numpy(np.bool_)
    with np.errstate(invalid="ignore"):
        number = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(number)
        if positive:
            bad |= number <= 0
    if optional:
        bad &= ~absent
    what = "not a number, infinite" + (" or not positive" if positive else "")
    return _report(df, name, bad, what if optional else f"missing, {what}")


def _well_spelled(feature: Feature, value: Any) -> bool:
    return isinstance(value, str) and value != "" and value == feature.spell(value)


def _report(df: pd.DataFrame, name: str, bad: npt.NDArray[np.bool_], what: str) -> str:
    if not bad.any():
        return ""
    return f"{name} is {what} in {int(bad.sum())} rows, at index {rows_at(df.index, bad)}"
