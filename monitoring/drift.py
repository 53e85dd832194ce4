"""Data drift of a window's features against the production model's training data, with Evidently.

Each feature gets a statistical test: Kolmogorov-Smirnov for ``length_cm`` and ``height_cm``,
chi-square for ``species``. A column drifts when its p-value is below
``settings.monitor.drift_p_value`` and the window drifts when at least
``settings.monitor.drift_share`` of the columns do. The p-value is deliberately strict (0.001
rather than the usual 0.05): a window is tested every minute, and at 0.05 a stationary stream
would raise a false alarm every few windows, while a real shift of the fish (a new species, a
season) gives p-values far below 0.001 even on 30 fish. Distance-based tests (Wasserstein)
are no better here: their noise on a window of a few dozen fish exceeds their usual threshold.

The reference is sampled down to ``settings.monitor.reference_rows`` rows once, when the
production version changes, which keeps a check at a few tenths of a second.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from tidemark.model import FEATURES, SIZE_FEATURES, SPECIES
from tidemark.schemas import Scored

_DEFINITION = DataDefinition(numerical_columns=list(SIZE_FEATURES), categorical_columns=[SPECIES])


@dataclass(frozen=True)
class DriftResult:
    """The verdict on one window: which columns drifted, and the Evidently snapshot behind it."""

    share: float
    drifted_columns: tuple[str, ...]
    p_values: dict[str, float]
    detected: bool
    snapshot: Any


def features_frame(records: Sequence[Scored]) -> pd.DataFrame:
    """The model's input columns of scored records, as the drift test reads them."""
    return pd.DataFrame(
        {
            SPECIES: [r.species for r in records],
            "length_cm": [r.length_cm for r in records],
            "height_cm": [r.height_cm for r in records],
        }
    )


class DriftDetector:
    """Tests windows against one reference (the training data of one model version)."""

    def __init__(
        self,
        reference: pd.DataFrame,
        *,
        p_value: float,
        drift_share: float,
        max_reference_rows: int = 1_000,
        seed: int = 0,
    ) -> None:
        missing = [c for c in FEATURES if c not in reference.columns]
        if missing:
            raise ValueError(f"the reference data lacks the columns {missing}")
        if reference.empty:
            raise ValueError("the reference data is empty")
        sample = reference.loc[:, list(FEATURES)]
        if len(sample) > max_reference_rows:
            sample = sample.sample(max_reference_rows, random_state=seed)
        self.reference_rows = len(sample)
        self.p_value = p_value
        self.drift_share = drift_share
        self._reference = Dataset.from_pandas(sample.reset_index(drop=True), _DEFINITION)

    def check(self, current: pd.DataFrame, timestamp: datetime | None = None) -> DriftResult:
        """Test the feature columns of ``current`` (at least one row) against the reference.

        ``timestamp`` stamps the Evidently snapshot (the window's end, for the workspace).
        """
        if current.empty:
            raise ValueError("no rows to test for drift")
        preset = DataDriftPreset(
            columns=list(FEATURES),
            num_method="ks",
            num_threshold=self.p_value,
            cat_method="chisquare",
            cat_threshold=self.p_value,
            drift_share=self.drift_share,
        )
        with warnings.catch_warnings():
            # chi-square divides by zero for a species the reference never had; p is then 0.
            warnings.simplefilter("ignore", RuntimeWarning)
            snapshot = Report([preset]).run(
                current_data=Dataset.from_pandas(
                    current.loc[:, list(FEATURES)].reset_index(drop=True), _DEFINITION
                ),
                reference_data=self._reference,
                timestamp=timestamp,
            )
        p_values: dict[str, float] = {}
        for metric in snapshot.dict()["metrics"]:
            column = metric["config"].get("column")
            if metric["config"]["type"].endswith("ValueDrift") and column in FEATURES:
                p_values[column] = float(metric["value"])
        drifted = tuple(c for c in FEATURES if p_values.get(c, 1.0) < self.p_value)
        share = len(drifted) / len(FEATURES)
        return DriftResult(
            share=share,
            drifted_columns=drifted,
            p_values=p_values,
            detected=share >= self.drift_share,
            snapshot=snapshot,
        )
