"""Drift of a window's inputs from the production model's training data, with Evidently.

Drift here means the items of a segment the model knows have changed (a season, growth, another
source), not that the segment mix has: the model answers per segment, so a window of one
segment judged against training data of two is not drift, and a segment the model never saw is
its own incident (``unseen``, :mod:`monitoring.policy`). Each window is therefore compared with
a reference of the same mix: the training data of the segments the window holds, sampled in the
window's proportions. Items of segments the reference lacks are left out of the test. A project
without a segment is one segment (``WHOLE``): its window is compared with its training data.

Every feature of the project but the segment is tested: a number with a Kolmogorov-Smirnov
test, a category with Evidently's test for categories (chi-square, or a z-test of proportions
for two values). A column drifts when its p-value is below ``settings.monitor.drift_p_value``
and the window drifts when at least ``settings.monitor.drift_share`` of the columns do. The
p-value is deliberately strict (0.001 rather than the usual 0.05): a window is tested every
minute, and at 0.05 a stationary stream would raise a false alarm every few windows, while a
real shift gives p-values far below 0.001 even on 30 items. Distance-based tests (Wasserstein)
are no better here: their noise on a window of a few dozen items exceeds their usual threshold.

Each segment's reference is sampled down to ``settings.monitor.reference_rows`` rows once, when
the production version changes, which keeps a check at a few tenths of a second.

The p-values come from Evidently's own tests (its ``ks`` and ``chisquare``), called on the
columns as its drift preset calls them; the preset's report, which also draws a distribution
chart per column, is made only for a check whose snapshot goes to the workspace (the window's):
the checks of each segment and of the early warning decide, and nobody looks at their charts,
which were most of a check's time.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations.stattests import get_stattest
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset

from tidemark.judging.scored import WHOLE
from tidemark.project.contracts import Scored
from tidemark.project.spec import Project

# The column that holds each row's segment in the frames the detector groups ("" cannot be a
# project's field name).
SEGMENT = "__segment__"
# Evidently's test of each kind of column: a p-value for any number of rows (its default for
# large samples is a distance, which a p-value threshold does not fit).
NUMBER_TEST, CATEGORY_TEST = "ks", "chisquare"


@dataclass(frozen=True)
class DriftResult:
    """The verdict on one window: which columns drifted, and the Evidently snapshot that shows
    it (None when the check made no report)."""

    share: float
    drifted_columns: tuple[str, ...]
    p_values: dict[str, float]
    detected: bool
    snapshot: Any


@dataclass(frozen=True)
class DriftColumns:
    """The columns of a project that the drift test reads: its features but the segment."""

    numbers: tuple[str, ...]
    categories: tuple[str, ...]
    segment: str | None

    @classmethod
    def of(cls, project: Project) -> DriftColumns:
        """The tested columns of ``project``, in file order."""
        segment = project.segment
        return cls(
            numbers=tuple(f.name for f in project.numbers),
            categories=tuple(f.name for f in project.categories if f.name != segment),
            segment=segment,
        )

    @property
    def tested(self) -> tuple[str, ...]:
        """Every tested column, numbers first."""
        return (*self.numbers, *self.categories)

    def definition(self) -> DataDefinition:
        """Evidently's definition of a frame of the tested columns."""
        return DataDefinition(
            numerical_columns=list(self.numbers), categorical_columns=list(self.categories)
        )

    def with_segment(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The tested columns of ``frame`` (training data or :func:`features_frame`) and each
        row's segment (``WHOLE`` without a segment) in :data:`SEGMENT`."""
        wanted = (*self.tested, *([self.segment] if self.segment else []))
        missing = [c for c in wanted if c not in frame]
        if missing:
            raise ValueError(f"the data lack the columns {missing}")
        rows = frame.loc[:, list(self.tested)].copy()
        rows[SEGMENT] = frame[self.segment].astype(str) if self.segment else WHOLE
        return rows


def features_frame(records: Sequence[Scored], project: Project) -> pd.DataFrame:
    """The model's input columns of scored records (a missing optional feature is None), as the
    drift test reads them."""
    return pd.DataFrame(
        {f.name: [r.prediction.item.fields.get(f.name) for r in records] for f in project.features},
        columns=[f.name for f in project.features],
    )


class DriftDetector:
    """Tests windows against one reference (the training data of one model version)."""

    def __init__(
        self,
        reference: pd.DataFrame,
        project: Project,
        *,
        p_value: float,
        drift_share: float,
        max_reference_rows: int = 1_000,
        seed: int = 0,
    ) -> None:
        self.columns = DriftColumns.of(project)
        if not self.columns.tested:
            raise ValueError(f"{project.name} has no feature but its segment to test for drift")
        rows = self.columns.with_segment(reference)
        if rows.empty:
            raise ValueError("the reference data is empty")
        self.p_value = p_value
        self.drift_share = drift_share
        self.max_reference_rows = max_reference_rows
        self.seed = seed
        self._by_segment: dict[str, pd.DataFrame] = {}
        for segment, group in rows.groupby(SEGMENT, sort=True):
            if len(group) > max_reference_rows:
                group = group.sample(max_reference_rows, random_state=seed)
            self._by_segment[str(segment)] = group.reset_index(drop=True)
        self.reference_rows = sum(len(group) for group in self._by_segment.values())

    @property
    def segments(self) -> frozenset[str]:
        """The segments the reference holds."""
        return frozenset(self._by_segment)

    def comparable(self, current: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``current`` (features, :func:`features_frame`) whose segment the
        reference holds, with their segment: those a check tests."""
        rows = self.columns.with_segment(current)
        return rows.loc[rows[SEGMENT].isin(self._by_segment)]

    def matched_reference(self, current: pd.DataFrame) -> pd.DataFrame:
        """Reference rows in the proportions of the segments of ``current`` (comparable rows):
        as many as the scarcest segment's reference allows, at most ``max_reference_rows``."""
        counts = current[SEGMENT].value_counts()
        scale = min(
            self.max_reference_rows / len(current),
            *(len(self._by_segment[s]) / n for s, n in counts.items()),
        )
        return pd.concat(
            [
                self._by_segment[s].sample(
                    max(1, min(round(n * scale), len(self._by_segment[s]))),
                    random_state=self.seed,
                )
                for s, n in counts.sort_index().items()
            ],
            ignore_index=True,
        )

    def check(
        self, current: pd.DataFrame, timestamp: datetime | None = None, *, report: bool = True
    ) -> DriftResult:
        """Test the comparable items of ``current`` (features, :func:`features_frame`) against
        a reference of the same segment mix; ``ValueError`` when no item of ``current`` is
        comparable, or a column holds no value in one of them.

        With ``report``, the result carries Evidently's drift report of the same data, stamped
        ``timestamp`` (the window's end, for the workspace).
        """
        comparable = self.comparable(current).reset_index(drop=True)
        if comparable.empty:
            raise ValueError("no rows of a segment the reference holds to test for drift")
        reference = self.matched_reference(comparable)
        p_values = self._p_values(comparable, reference)
        drifted = tuple(c for c in self.columns.tested if p_values[c] < self.p_value)
        share = len(drifted) / len(self.columns.tested)
        return DriftResult(
            share=share,
            drifted_columns=drifted,
            p_values=p_values,
            detected=share >= self.drift_share,
            snapshot=self._report(comparable, reference, timestamp) if report else None,
        )

    def _p_values(self, current: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
        """Each tested column's p-value, by Evidently's test of its kind, on its finite values
        (as the preset cleans them)."""
        kinds = [(c, ColumnType.Numerical, NUMBER_TEST) for c in self.columns.numbers]
        kinds += [(c, ColumnType.Categorical, CATEGORY_TEST) for c in self.columns.categories]
        p_values: dict[str, float] = {}
        for column, kind, method in kinds:
            ours, theirs = _values(current[column]), _values(reference[column])
            if ours.empty or theirs.empty:
                side = "window" if ours.empty else "reference"
                raise ValueError(f"the {side} holds no value of {column} to test for drift")
            test = get_stattest(theirs, ours, kind, method)
            with warnings.catch_warnings():
                # A category the reference never holds divides by zero in scipy: a drift, not a
                # fault.
                warnings.simplefilter("ignore", RuntimeWarning)
                result = test(theirs, ours, kind, self.p_value)
            p_values[column] = float(result.drift_score)
        return p_values

    def _report(
        self, current: pd.DataFrame, reference: pd.DataFrame, timestamp: datetime | None
    ) -> Any:
        """Evidently's drift report of the tested columns (its tests and thresholds are the
        ones :meth:`_p_values` applies)."""
        tested = list(self.columns.tested)
        preset = DataDriftPreset(
            columns=tested,
            num_method=NUMBER_TEST,
            num_threshold=self.p_value,
            cat_method=CATEGORY_TEST,
            cat_threshold=self.p_value,
            drift_share=self.drift_share,
        )
        definition = self.columns.definition()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return Report([preset]).run(
                current_data=Dataset.from_pandas(current.loc[:, tested], definition),
                reference_data=Dataset.from_pandas(reference.loc[:, tested], definition),
                timestamp=timestamp,
            )


def _values(column: pd.Series) -> pd.Series:
    """The finite values of a column, as Evidently's drift preset tests them."""
    return column.replace([-np.inf, np.inf], np.nan).dropna()
