"""How long the monitor's drift check of one window takes, beside Evidently's defaults.

    .venv/bin/python benchmarks/monitoring/drift_check.py

The reference is a model's training data (the growth scenario's 900 spring salmon); windows are
spring salmon (no drift) and autumn salmon, longer and taller (drift), of several sizes.
Three ways are timed in the same run, on the same data:

- ``tidemark, report``: ``monitoring.drift.DriftDetector.check`` (each species' reference
  sampled to 1,000 rows once, K-S on the sizes at p < 0.001 against the window's own species
  mix) with Evidently's drift report for the workspace, as the window's check has it;
- ``tidemark, no report``: the same test without the report, as each segment's check and the
  early warning's have it;
- ``evidently default``: ``Report([DataDriftPreset()])`` with its default tests, the reference
  given as a DataFrame on every check (the baseline: what a first version would write).

It also counts how often each flags drift on stationary windows (false alarms). Prints a table
and writes benchmarks/results/monitoring_drift_check.json.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from benchmarks.fish import FISH, fish_scenario
from monitoring.drift import DriftDetector
from tidemark.simulation.generate import generate_frame

FEATURES = [f.name for f in FISH.features]
RESULTS = Path(__file__).resolve().parents[1] / "results" / "monitoring_drift_check.json"
SIZES = (60, 300, 600)
REPEATS = 5
DEFINITION = DataDefinition(
    numerical_columns=["length_cm", "height_cm"], categorical_columns=["species"]
)


def _default_check(reference: pd.DataFrame, current: pd.DataFrame) -> bool:
    snapshot = Report([DataDriftPreset(columns=FEATURES)]).run(
        current_data=Dataset.from_pandas(current.loc[:, FEATURES], DEFINITION),
        reference_data=Dataset.from_pandas(reference.loc[:, FEATURES], DEFINITION),
    )
    share = snapshot.dict()["metrics"][0]["value"]["share"]
    return bool(share >= 0.5)


# Each way, given the detector, the reference and a window: whether the window drifted.
METHODS: dict[str, Callable[[DriftDetector, pd.DataFrame, pd.DataFrame], bool]] = {
    "tidemark, report": lambda detector, _, window: detector.check(window).detected,
    "tidemark, no report": lambda detector, _, window: (
        detector.check(window, report=False).detected
    ),
    "evidently default": lambda _, reference, window: _default_check(reference, window),
}


def main() -> None:
    """Run the benchmark, print the table, write the JSON."""
    warnings.simplefilter("ignore")
    scenario = fish_scenario("growth")
    reference = generate_frame(scenario, 42, ["spring"])
    spring = generate_frame(scenario, 3, ["spring"])
    autumn = generate_frame(scenario, 3, ["autumn"])
    detector = DriftDetector(reference, FISH, p_value=0.001, drift_share=0.5)
    rows: list[dict[str, Any]] = []
    for size in SIZES:
        for name, drifted in METHODS.items():
            seconds, false_alarms, detected = [], 0, 0
            for repeat in range(REPEATS):
                window = spring.iloc[repeat * 60 : repeat * 60 + size]
                started = time.perf_counter()
                flagged = drifted(detector, reference, window)
                seconds.append(time.perf_counter() - started)
                false_alarms += flagged
                detected += drifted(detector, reference, autumn.iloc[:size])
            rows.append(
                {
                    "method": name,
                    "window_rows": size,
                    "median_s": statistics.median(seconds),
                    "false_alarms": f"{false_alarms}/{REPEATS}",
                    "growth_detected": f"{detected}/{REPEATS}",
                }
            )
    print(f"{'method':<20} {'rows':>5} {'median s':>9} {'false alarms':>13} {'shift found':>12}")
    for row in rows:
        print(
            f"{row['method']:<20} {row['window_rows']:>5} {row['median_s']:>9.3f} "
            f"{row['false_alarms']:>13} {row['growth_detected']:>12}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"machine": platform.platform(), "reference_rows": len(reference), "rows": rows},
            indent=2,
        )
    )
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
