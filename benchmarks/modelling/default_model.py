"""The default model on the second example's data, and its fast form against its pipeline.

    .venv/bin/python benchmarks/modelling/default_model.py

Two parts, printed as tables and written to benchmarks/results/modelling_default_model.json:

- **quality** on the Palmer penguins (tests/model/penguin-mass.toml, palmerpenguins' CSV):
  each species' noise floor (the pooled model's held-out mean relative error, five-fold
  cross-validation stratified by species, seed 0), beside the same folds predicted by the
  shared law (as if the species were never seen) and by a model without segment; then a model
  trained without Gentoo, on Gentoo (the never-seen segment of the second example), and how
  many Gentoo rows a retrain needs: the error on the last 60 Gentoo of models trained on the
  others and the first k Gentoo.
- **speed**: for the fish (the default scenario) and the penguins, one item and a batch of
  500 predicted by the fitted pipeline (the baseline: what serving does without the fast form)
  and by the fast form, with the largest relative difference between their answers.

The machine may be shared: timings are medians of repeated calls, to be compared within a run.
"""

from __future__ import annotations

import io
import json
import platform
import statistics
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from tidemark.modelling.fast import FastForm
from tidemark.modelling.training import evaluate, judged_errors, predict, train
from tidemark.project.spec import Project, load_project
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "modelling_default_model.json"
PENGUIN_PROJECT = ROOT / "tests" / "model" / "penguin-mass.toml"
FISH_PROJECT = ROOT / "projects" / "fish-weight.toml"
NEVER_SEEN = "Gentoo"
BATCH = 500
# Gentoo rows added to the others' for the learning curve; the last HELD_OUT Gentoo judge it.
GENTOO_ROWS = (0, 5, 10, 20, 40, 63)
HELD_OUT = 60


def penguins() -> pd.DataFrame:
    """palmerpenguins' weighed penguins, read from the installed wheel."""
    text = resources.files("palmerpenguins").joinpath("data/penguins.csv").read_text()
    frame = pd.read_csv(io.StringIO(text), na_values=["NA"], keep_default_na=False)
    return frame.dropna(subset=["body_mass_g"]).reset_index(drop=True)


def cross_validated(project: Project, data: pd.DataFrame, unseen: bool) -> dict[str, float]:
    """Each species' held-out mean relative error over five stratified folds."""
    errors = pd.Series(np.nan, index=data.index)
    for training, held in StratifiedKFold(5, shuffle=True, random_state=0).split(
        data, data.species
    ):
        model = train(project, data.iloc[training], seed=0).model
        rows = data.iloc[held].assign(species="never-seen") if unseen else data.iloc[held]
        errors.iloc[held] = judged_errors(project, model, rows)
    return {str(s): float(e.mean()) for s, e in errors.groupby(data.species)}


def quality(project: Project, data: pd.DataFrame) -> dict[str, Any]:
    """Noise floors, the shared law's and an unpooled model's errors, the never-seen case."""
    floors = cross_validated(project, data, unseen=False)
    shared = cross_validated(project, data, unseen=True)
    unpooled = cross_validated(project.model_copy(update={"segment": None}), data, False)
    model = train(project, data[data.species != NEVER_SEEN], seed=0).model
    gentoo = data[data.species == NEVER_SEEN]
    predicted = predict(project, model, gentoo)
    others = {
        str(s): evaluate(project, model, rows).judged
        for s, rows in data[data.species != NEVER_SEEN].groupby("species")
    }
    curve = {}
    first, last = gentoo.iloc[:-HELD_OUT], gentoo.iloc[-HELD_OUT:]
    for count in GENTOO_ROWS:
        rows = pd.concat([data[data.species != NEVER_SEEN], first.head(count)])
        curve[count] = evaluate(project, train(project, rows, seed=0).model, last).judged
    return {
        "rows": {str(s): int(n) for s, n in data.species.value_counts().items()},
        "noise_floor": floors,
        "shared_law": shared,
        "without_segment": unpooled,
        "never_seen": {
            "species": NEVER_SEEN,
            "mean_relative_error": evaluate(project, model, gentoo).judged,
            "bias": float(np.mean(predicted.values) / gentoo.body_mass_g.mean() - 1),
            "flagged_unknown": bool(not predicted.segment_known.any()),
            "others_in_sample": others,
        },
        "gentoo_learning_curve": {
            "held_out_rows": HELD_OUT,
            "mean_relative_error_by_gentoo_rows": curve,
        },
    }


def per_call_us(call: Callable[[], Any], repeats: int) -> float:
    """Median wall time of one call, in microseconds, over ``repeats`` calls in 5 rounds."""
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats // 5):
            call()
        rounds.append((time.perf_counter() - started) / (repeats // 5))
    return statistics.median(rounds) * 1e6


def speed(name: str, project: Project, model: Any, rows: pd.DataFrame) -> list[dict[str, Any]]:
    """The pipeline and the fast form on one item and on a batch, and how far apart they are."""
    fast = FastForm.derive(project, model)
    assert fast is not None, f"{name}: no fast form"
    batch = rows.sample(BATCH, replace=len(rows) < BATCH, random_state=0).reset_index(drop=True)
    records = [{k: v for k, v in r.items() if not pd.isna(v)} for r in batch.to_dict("records")]
    expected = predict(project, model, batch).values
    got = fast.predict(batch).values
    one_by_one = np.array([fast.predict_one(r)[0] for r in records])
    difference = float(
        max(np.max(np.abs(got / expected - 1)), np.max(np.abs(one_by_one / expected - 1)))
    )
    one = batch.iloc[[0]]
    timings = {
        ("one item", "pipeline"): per_call_us(lambda: predict(project, model, one), 50),
        ("one item", "fast form"): per_call_us(lambda: fast.predict_one(records[0]), 2_000),
        (f"batch of {BATCH}", "pipeline"): per_call_us(lambda: predict(project, model, batch), 20),
        (f"batch of {BATCH}", "fast form"): per_call_us(lambda: fast.predict(batch), 200),
        (f"batch of {BATCH}", "fast form, records"): per_call_us(
            lambda: fast.predict_rows(records), 200
        ),
    }
    results = []
    for (size, way), us in timings.items():
        baseline = timings[(size, "pipeline")]
        results.append(
            {
                "project": name,
                "call": size,
                "way": way,
                "us_per_call": us,
                "speedup_vs_pipeline": baseline / us,
                "max_relative_difference": difference,
            }
        )
    return results


def main() -> None:
    """Run both parts, print the tables, write the JSON."""
    penguin_project = load_project(PENGUIN_PROJECT)
    data = penguins()
    found = quality(penguin_project, data)
    print("Penguins: held-out mean relative error by species (5-fold CV, seed 0)")
    print(f"{'species':<10} {'rows':>5} {'floor':>7} {'shared law':>11} {'no segment':>11}")
    for species, floor in found["noise_floor"].items():
        print(
            f"{species:<10} {found['rows'][species]:>5} {floor:>7.4f} "
            f"{found['shared_law'][species]:>11.4f} {found['without_segment'][species]:>11.4f}"
        )
    never = found["never_seen"]
    print(
        f"\nTrained without {NEVER_SEEN}: on {NEVER_SEEN} mean relative error "
        f"{never['mean_relative_error']:.4f}, bias {never['bias']:+.3f}, flagged unknown "
        f"{never['flagged_unknown']}; in sample on the others "
        + ", ".join(f"{s} {e:.4f}" for s, e in never["others_in_sample"].items())
    )
    curve = found["gentoo_learning_curve"]["mean_relative_error_by_gentoo_rows"]
    print(
        f"{NEVER_SEEN} rows trained on, and the error on the last {HELD_OUT} of them: "
        + ", ".join(f"{count}: {error:.4f}" for count, error in curve.items())
    )
    fish_project = load_project(FISH_PROJECT)
    fish = generate_frame(load_scenario(fish_project), 7)
    fish_model = train(fish_project, fish, seed=0).model
    held = generate_frame(load_scenario(fish_project), 8)
    held.loc[held.index[::9], "species"] = "pike"
    timings = speed("fish-weight", fish_project, fish_model, held)
    timings += speed(
        "penguin-mass", penguin_project, train(penguin_project, data, seed=0).model, data
    )
    print(
        f"\n{'project':<13} {'call':<13} {'way':<19} {'µs/call':>10} {'speedup':>11} "
        f"{'max rel diff':>13}"
    )
    for row in timings:
        print(
            f"{row['project']:<13} {row['call']:<13} {row['way']:<19} {row['us_per_call']:>10.1f} "
            f"{row['speedup_vs_pipeline']:>11.1f} {row['max_relative_difference']:>13.1e}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "python": platform.python_version(),
                "quality": found,
                "speed": timings,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
