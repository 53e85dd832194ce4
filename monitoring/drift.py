"""Drift of a window's fish sizes from the production model's training data, with Evidently.

Drift here means the fish of a species the model knows have changed (a season, growth, another
catch ground), not that the species mix has: the model answers per species, so a window of one
species judged against training data of two is not drift, and a species the model never saw is
its own incident (``unseen``, :mod:`monitoring.policy`). Each window is therefore compared with
a reference of the same mix: the training data of the species the window holds, sampled in the
window's proportions. Fish of species the reference lacks are left out of the test.

Each size feature gets a Kolmogorov-Smirnov test. A column drifts when its p-value is below
``settings.monitor.drift_p_value`` and the window drifts when at least
``settings.monitor.drift_share`` of the columns do. The p-value is deliberately strict (0.001
rather than the usual 0.05): a window is tested every minute, and at 0.05 a stationary stream
would raise a false alarm every few windows, while a real shift of the fish gives p-values far
below 0.001 even on 30 fish. Distance-based tests (Wasserstein) are no better here: their noise
on a window of a few dozen fish exceeds their usual threshold.

Each species' reference is sampled down to ``settings.monitor.reference_rows`` rows once, when
the production version changes, which keeps a check at a few tenths of a second.
"""

from __future__ import annotations

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
        self.p_value = p_value
        self.drift_share = drift_share
        self.max_reference_rows = max_reference_rows
        self.seed = seed
        self._by_species: dict[str, pd.DataFrame] = {}
        for species, rows in reference.loc[:, list(FEATURES)].groupby(SPECIES, sort=True):
            if len(rows) > max_reference_rows:
                rows = rows.sample(max_reference_rows, random_state=seed)
            self._by_species[str(species)] = rows.reset_index(drop=True)
        self.reference_rows = sum(len(rows) for rows in self._by_species.values())

    @property
    def species(self) -> frozenset[str]:
        """The species the reference holds."""
        return frozenset(self._by_species)

    def comparable(self, current: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``current`` whose species the reference holds: those a check tests."""
        return current.loc[current[SPECIES].astype(str).isin(self._by_species)]

    def matched_reference(self, current: pd.DataFrame) -> pd.DataFrame:
        """Reference rows in the proportions of the species of ``current`` (comparable rows):
        as many as the scarcest species' reference allows, at most ``max_reference_rows``."""
        counts = current[SPECIES].astype(str).value_counts()
        scale = min(
            self.max_reference_rows / len(current),
            *(len(self._by_species[s]) / n for s, n in counts.items()),
        )
        return pd.concat(
            [
                self._by_species[s].sample(
                    max(1, min(round(n * scale), len(self._by_species[s]))),
                    random_state=self.seed,
                )
                for s, n in counts.sort_index().items()
            ],
            ignore_index=True,
        )

    def check(self, current: pd.DataFrame, timestamp: datetime | None = None) -> DriftResult:
        """Test the sizes of the comparable fish of ``current`` against a reference of the same
        species mix; ``ValueError`` when no fish of ``current`` is comparable.

        ``timestamp`` stamps the Evidently snapshot (the window's end, for the workspace).
        """
        fish = self.comparable(current).loc[:, list(FEATURES)].reset_index(drop=True)
        if fish.empty:
            raise ValueError("no rows of a species the reference holds to test for drift")
        preset = DataDriftPreset(
            columns=list(SIZE_FEATURES),
            num_method="ks",
            num_threshold=self.p_value,
            drift_share=self.drift_share,
        )
        snapshot = Report([preset]).run(
            current_data=Dataset.from_pandas(fish, _DEFINITION),
            reference_data=Dataset.from_pandas(self.matched_reference(fish), _DEFINITION),
            timestamp=timestamp,
        )
        p_values: dict[str, float] = {}
        for metric in snapshot.dict()["metrics"]:
            column = metric["config"].get("column")
            if metric["config"]["type"].endswith("ValueDrift") and column in SIZE_FEATURES:
                p_values[column] = float(metric["value"])
        drifted = tuple(c for c in SIZE_FEATURES if p_values.get(c, 1.0) < self.p_value)
        share = len(drifted) / len(SIZE_FEATURES)
        return DriftResult(
            share=share,
            drifted_columns=drifted,
            p_values=p_values,
            detected=share >= self.drift_share,
            snapshot=snapshot,
        )
