"""Evidently reports of windows: HTML pages on disk and runs in an Evidently workspace.

A window that fires gets two reports, both stamped with the window's end (event time): the
drift of its features against the production model's training data, and the error of the
model's predictions (Evidently's regression preset: MAE, RMSE, MAPE, error plots). Both go into
the workspace's ``tidemark`` project, which ``evidently ui --workspace DIR`` shows, and into
``state_dir/reports`` as self-contained pages.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Regression, Report
from evidently.presets import RegressionPreset
from evidently.ui.workspace import Workspace

from monitoring.drift import DriftResult
from tidemark.config import Settings
from tidemark.model import SIZE_FEATURES, SPECIES, TARGET
from tidemark.schemas import Scored

PROJECT = "tidemark"
PREDICTION = "predicted_weight_kg"
_ERROR_DEFINITION = DataDefinition(
    numerical_columns=list(SIZE_FEATURES),
    categorical_columns=[SPECIES],
    regression=[Regression(target=TARGET, prediction=PREDICTION)],
)


def workspace_dir(settings: Settings) -> Path:
    """Where the Evidently workspace lives (``evidently ui --workspace`` this)."""
    return settings.evidently_workspace or settings.state_dir / "evidently"


def html_dir(settings: Settings) -> Path:
    """Where the HTML pages of the reports are written."""
    return settings.state_dir / "reports"


def error_snapshot(records: Sequence[Scored], timestamp: datetime) -> Any:
    """Evidently's regression report on scored records (at least one)."""
    frame = pd.DataFrame(
        {
            SPECIES: [r.species for r in records],
            "length_cm": [r.length_cm for r in records],
            "height_cm": [r.height_cm for r in records],
            TARGET: [r.weight_kg for r in records],
            PREDICTION: [r.predicted_weight_kg for r in records],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return Report([RegressionPreset()]).run(
            current_data=Dataset.from_pandas(frame, _ERROR_DEFINITION), timestamp=timestamp
        )


@dataclass(frozen=True)
class SavedReport:
    """Where one window's reports went."""

    pages: tuple[Path, ...]
    workspace: Path


class ReportStore:
    """Saves window reports as HTML pages and as runs of the workspace's ``tidemark`` project."""

    def __init__(self, settings: Settings) -> None:
        self.html_dir = html_dir(settings)
        self.workspace_dir = workspace_dir(settings)
        self.workspace_dir.mkdir(parents=True, exist_ok=True)
        self._workspace = Workspace.create(str(self.workspace_dir))
        found = self._workspace.search_project(PROJECT)
        self._project = (
            found[0]
            if found
            else self._workspace.create_project(
                PROJECT, "Windows of fish.scored: prediction error and feature drift"
            )
        )

    def save(
        self,
        *,
        label: str,
        window_end: datetime,
        records: Sequence[Scored],
        drift: DriftResult | None,
    ) -> SavedReport:
        """Save the error report of ``records`` and, when given, the drift report."""
        stamp = window_end.strftime("%Y%m%dT%H%M%SZ")
        snapshots: list[tuple[str, str, Any]] = [
            ("error", "prediction error", error_snapshot(records, window_end))
        ]
        if drift is not None:
            snapshots.append(("drift", "feature drift", drift.snapshot))
        pages = []
        for kind, title, snapshot in snapshots:
            name = f"{label}: {title}"
            snapshot.set_name(name)
            self._workspace.add_run(self._project.id, snapshot, name=name)
            page = self.html_dir / f"{stamp}-{label.replace(' ', '-')}-{kind}.html"
            page.parent.mkdir(parents=True, exist_ok=True)
            snapshot.save_html(str(page))
            pages.append(page)
        return SavedReport(pages=tuple(pages), workspace=self.workspace_dir)
