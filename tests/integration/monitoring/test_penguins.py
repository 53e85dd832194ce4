"""The monitor runs another project unchanged: the penguins, on the real stack.

A model of the penguin project's own, trained on the real Adelie and Chinstrap of its bootstrap,
is in production with its training data as the drift reference. Scored penguins go to the
project's own scored topic: a window of the two species it knows, then one where Gentoo, which
it never saw, arrive. The monitor of that project (its contracts, its segment, its features, its
target's relative error) opens the incident ``unseen:Gentoo`` and starts one retrain run of the
project for the Gentoo alone; the two known species raise nothing.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from infra.local.stack import Stack
from monitoring.judgement import WindowJudgement
from monitoring.policy import GateState, IncidentKey, IncidentKind
from tests.integration.monitoring.fish import window_aligned_start
from tests.integration.monitoring.test_monitor import retrain_flow_runs, run_monitor
from tests.integration.projects import REPO, example
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.modelling.training import predict, train
from tidemark.project.catalog import project_settings
from tidemark.project.contracts import Contracts, Prediction, Scored, Truth
from tidemark.project.spec import parse_project
from tidemark.registry.writer import REFERENCE_DIR, REFERENCE_FILE
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario

pytestmark = pytest.mark.integration

# Items per 2-second window: more than min_window_count (30) of each segment judged, and more
# Gentoo than a retrain needs to train and judge on them alone (60 with the default settings).
PER_WINDOW = 90
UNSEEN = IncidentKey(IncidentKind.UNSEEN, "Gentoo")


@pytest.fixture
def penguins(stack: Stack, tmp_path: Path) -> tuple[Settings, Contracts, Any]:
    """A penguin project of this test's own (its topics, registered model and group), its
    settings with 2-second windows, and a production model of the two known species."""
    tag = uuid.uuid4().hex[:6]
    project = parse_project(
        example("penguin-mass").model_dump(mode="json")
        | {"name": f"penguins-{tag}", "scenarios": str(REPO / "examples/penguins/scenarios")},
        "the penguins of a monitoring test",
    )
    settings = project_settings(project, stack.settings).override(
        monitor_group_id=f"monitor-{tag}",
        monitor_window_s=2.0,
        monitor_allowed_lateness_s=0.5,
        stack_state_dir=tmp_path,
    )
    kafka_io.ensure_topics(settings.kafka)
    rows = pd.read_csv(REPO / "examples" / "penguins" / "bootstrap.csv").dropna()
    fitted = train(project, rows, seed=0)
    reference = tmp_path / REFERENCE_FILE
    rows.to_parquet(reference)
    mlflow.set_tracking_uri(settings.registry.tracking_uri)
    mlflow.set_experiment(project.name)
    with mlflow.start_run():
        mlflow.log_artifact(str(reference), artifact_path=REFERENCE_DIR)
        info = mlflow.sklearn.log_model(
            fitted.model,
            name="model",
            registered_model_name=settings.registry.model_name,
            pip_requirements=["scikit-learn"],
        )
    MlflowClient(settings.registry.tracking_uri).set_registered_model_alias(
        settings.registry.model_name,
        settings.registry.production_alias,
        str(info.registered_model_version),
    )
    return settings, Contracts(project), fitted.model


def scored_penguins(
    contracts: Contracts, settings: Settings, model: Any, frame: pd.DataFrame, windows: int = 0
) -> list[Scored]:
    """The rows of ``frame`` scored by ``model`` (production, v1), one window's worth per
    ``PER_WINDOW`` rows, from ``windows`` windows after an hour ago on."""
    project = contracts.project
    predicted = predict(project, model, frame)
    first = window_aligned_start(settings) + windows * timedelta(seconds=settings.monitor.window_s)
    step = timedelta(seconds=settings.monitor.window_s / PER_WINDOW)
    records = []
    for i, (row, value, known) in enumerate(
        zip(frame.to_dict("records"), predicted.values, predicted.segment_known, strict=True)
    ):
        at = first + i * step
        fields = {f.name: row[f.name] for f in project.features if pd.notna(row[f.name])}
        item = contracts.item(
            contracts.input.model_validate(
                {project.key: f"p-{uuid.uuid4().hex[:10]}", project.times.input: at, **fields}
            ).__dict__
        )
        prediction = Prediction(item, float(value), bool(known), project.name, "1", at)
        truth = Truth(item.key, float(row[project.target.name]), at + timedelta(seconds=1), {})
        records.append(contracts.join(prediction, truth, at + timedelta(seconds=2)))
    return records


def test_the_monitor_of_the_penguins_opens_an_incident_for_the_species_it_never_saw(
    penguins: tuple[Settings, Contracts, Any], retrain_deployment: str
) -> None:
    settings, contracts, model = penguins
    project = contracts.project
    scenario = load_scenario(project, "gentoo-arrives")
    known = generate_frame(scenario, seed=3, phases=["adelie-and-chinstrap"]).head(PER_WINDOW)
    later = generate_frame(scenario, seed=3, phases=["gentoo-arrives"])
    gentoo = later[later[project.segment] == "Gentoo"].head(PER_WINDOW)
    # One more of the known ones, two windows later: its time closes the Gentoo's window.
    records = scored_penguins(contracts, settings, model, pd.concat([known, gentoo]))
    records += scored_penguins(contracts, settings, model, known.head(1), windows=3)
    producer = kafka_io.producer(settings.kafka)
    for record in records:
        producer.send(
            settings.kafka.topics.scored,
            key=record.key.encode(),
            value=contracts.encode_scored(record),
        )
    producer.flush(30)
    producer.close()
    before = {r.id for r in retrain_flow_runs(settings, retrain_deployment)}

    def both_judged(judged: list[WindowJudgement]) -> bool:
        return sum(j.window.overall.count for j in judged) >= 2 * PER_WINDOW

    verdicts = run_monitor(settings, both_judged, contracts=contracts)

    first, arrival = verdicts[0], verdicts[-1]
    assert first.alarms == ()
    # The Adelie are judged on their window (the fewer Chinstrap pool theirs), and known.
    assert "Adelie" in {e.segment for e in first.evidence}
    assert all(e.segment in {"Adelie", "Chinstrap"} and not e.unseen for e in first.evidence)
    assert first.drift is not None
    assert not first.drift.detected, first.drift.p_values
    assert arrival.gate_of(UNSEEN) is not None
    assert arrival.gate_of(UNSEEN).state is GateState.FIRED  # type: ignore[union-attr]
    assert [str(g.alarm.incident) for g in arrival.alarms] == ["unseen:Gentoo"]
    [run] = [r for r in retrain_flow_runs(settings, retrain_deployment) if r.id not in before]
    assert UNSEEN.tag in run.tags
    assert f"model:{project.name}" in run.tags
    assert run.parameters["project"] == project.name
    assert run.parameters["segments"] == ["Gentoo"]
    assert arrival.request is not None
    assert arrival.request.metric == "mean_relative_error"
