"""The penguins' project through the flows on the real MLflow, Prefect and FerretDB.

The stack runs a project of its own: the penguin-mass project under another name (its own
registered model, experiment and collection), in a projects folder of the test's. ``tidemark
train --if-no-production`` bootstraps it from the project's bootstrap CSV (Adelie and
Chinstrap); then Gentoo, which the bootstrap never saw, are joined into its store, and a retrain
about Gentoo trains on them, judges the candidate against production on held-out penguins of
every species and promotes it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.retrain import retrain
from infra.local.components import prefect_env
from infra.local.stack import Stack
from tests.integration.projects import example
from tidemark.config import SECTIONS, Settings, get_settings
from tidemark.judging.tags import per_segment
from tidemark.orchestration import prefect_api
from tidemark.project.catalog import stack_catalog
from tidemark.project.contracts import Contracts, Scored
from tidemark.project.spec import Project, save_project
from tidemark.registry import writer as registry
from tidemark.store import TrainingStore

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def penguins(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The stack's settings with a projects folder holding one penguin-mass variant; the
    environment says the same, for the flows and the CLI."""
    folder = tmp_path_factory.mktemp("projects")
    variant = example("penguin-mass").variant(f"penguin-flows-{uuid.uuid4().hex[:6]}")
    save_project(variant, folder / f"{variant.name}.yaml")
    settings = stack.settings.override(projects_dir=str(folder))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.as_env(*SECTIONS).items():
            patch.setenv(key, value)
        get_settings.cache_clear()
        with prefect_api(settings.orchestration):
            yield settings
    get_settings.cache_clear()


def _project(settings: Settings) -> tuple[Project, Settings]:
    catalog = stack_catalog(settings.projects)
    return catalog.default, catalog.settings(settings)


def _gentoo() -> pd.DataFrame:
    """The weighed Gentoo of palmerpenguins' CSV, in the project's columns."""
    text = resources.files("palmerpenguins").joinpath("data/penguins.csv").read_text()
    frame = pd.read_csv(io.StringIO(text), na_values=["NA"], keep_default_na=False)
    frame = frame.dropna(subset=["body_mass_g"]).drop(columns="year")
    return frame.loc[frame["species"] == "Gentoo"].reset_index(drop=True)


def _scored(contracts: Contracts, frame: pd.DataFrame, prefix: str) -> list[Scored]:
    """Each row as a joined record: predicted exactly (the store keeps what the joiner wrote;
    a retrain reads only features, target and times), a second apart from ``START``."""
    project, names = contracts.project, contracts.names
    records = []
    for i, row in enumerate(frame.to_dict("records")):
        at = START + timedelta(seconds=i)
        key = f"{prefix}-{i}"
        fields = {f.name: row[f.name] for f in project.features if pd.notna(row.get(f.name))}
        value = float(row[project.target.name])
        prediction = {
            project.key: key,
            **fields,
            project.times.input: at.isoformat(),
            names.predicted: value,
            "model_name": project.name,
            "model_version": "1",
            "predicted_at": at.isoformat(),
        }
        if names.known is not None:
            prediction[names.known] = True
        truth = {
            project.key: key,
            **{name: fields[name] for name in project.truth_fields},
            project.target.name: value,
            project.times.truth: (at + timedelta(seconds=30)).isoformat(),
        }
        records.append(
            contracts.join(
                contracts.decode_prediction(json.dumps(prediction)),
                contracts.decode_truth(json.dumps(truth)),
                at + timedelta(seconds=30),
            )
        )
    return records


def test_the_bootstrap_trains_the_project_from_its_csv(penguins: Settings, stack: Stack) -> None:
    project, own = _project(penguins)
    env = os.environ | penguins.as_env(*SECTIONS) | prefect_env(penguins, stack.state)
    command = [sys.executable, "-m", "tidemark", "train", "--if-no-production"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{project.name} v1: promoted" in " ".join(done.stdout.split()), done.stdout
    assert own.registry.model_name == project.name
    assert registry.production_version(own.registry) == "1"
    v1 = registry.version_info(own.registry, "1")
    assert v1.tags["trigger_reason"] == "bootstrap"
    # 219 Adelie and Chinstrap: the latest fifth of each held out (31 and 14, raised to 15).
    assert (v1.tags[per_segment("heldout_n", "Adelie")], v1.tags["heldout_n"]) == ("31", "46")
    assert float(v1.tags["candidate_mean_relative_error"]) < 0.1
    reference = registry.load_reference(own.registry, "1")
    assert set(reference["species"]) == {"Adelie", "Chinstrap"}
    assert {"island", "sex", "flipper_length_mm", "body_mass_g"} <= set(reference.columns)
    model = registry.client(own.registry).get_registered_model(project.name)
    assert "body_mass_g (g)" in model.description
    # Once production exists the bootstrap is a no-op, what `make up` runs on every start.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "skipped" in again.stdout, again.stdout


def test_a_retrain_about_a_new_species_learns_it_and_is_promoted(penguins: Settings) -> None:
    project, own = _project(penguins)
    contracts = Contracts(project)
    known = pd.read_csv(project.bootstrap or "")
    with TrainingStore(own.store, contracts) as store:
        assert store.upsert_many(_scored(contracts, known, "known")) == len(known)
        assert store.upsert_many(_scored(contracts, _gentoo(), "gentoo")) == len(_gentoo())
    outcome = retrain(
        project=project.name,
        reason="error",
        window_start=START,
        window_end=START + timedelta(hours=1),
        metric="mean_relative_error",
        metric_value=0.27,
        threshold=0.1,
        segments=["Gentoo"],
    )
    assert (outcome.model_name, outcome.version, outcome.decision) == (
        project.name,
        "2",
        "promoted",
    )
    assert set(outcome.heldout_n_by_segment) == {"Adelie", "Chinstrap", "Gentoo"}
    assert outcome.champion_error_by_segment is not None
    ours = outcome.candidate_error_by_segment["Gentoo"]
    theirs = outcome.champion_error_by_segment["Gentoo"]
    assert ours < 0.1 < theirs, (ours, theirs)
    assert registry.production_version(own.registry) == "2"
    v2 = registry.version_info(own.registry, "2")
    assert v2.tags["trigger_segments"] == "Gentoo"
    assert v2.tags["champion_version"] == "1"
    assert "Gentoo" in set(registry.load_reference(own.registry, "2")["species"])
    # The run is Prefect's, with the project among its parameters.
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[uuid.UUID(v2.tags["flow_run_id"])])
            )
        )
    assert [r.parameters.get("project") for r in runs] == [project.name]


def test_the_bootstrap_csv_is_where_the_project_says(penguins: Settings) -> None:
    project, _ = _project(penguins)
    assert project.bootstrap is not None
    assert Path(project.bootstrap).samefile(
        Path(__file__).resolve().parents[3] / "examples" / "penguins" / "bootstrap.csv"
    )
