"""The outcome of a retrain run, read back from the MLflow server by its flow run id."""

from __future__ import annotations

import uuid

import mlflow
from mlflow import MlflowClient
from sklearn.pipeline import Pipeline

from infra.local.stack import Stack
from monitoring.outcome import find_outcome
from tidemark.judging.decisions import Decision


def test_the_version_a_run_registered_states_its_decision_and_achievable_errors(
    stack: Stack, salmon_model: tuple[str, Pipeline]
) -> None:
    settings = stack.settings.override(registry_model_name=f"outcome-{uuid.uuid4().hex[:6]}")
    client = MlflowClient(settings.registry.tracking_uri)
    mlflow.set_tracking_uri(settings.registry.tracking_uri)
    mlflow.set_experiment("monitoring-tests")
    rejected, promoted = str(uuid.uuid4()), str(uuid.uuid4())
    tags = [
        {
            "flow_run_id": rejected,
            "decision": "rejected",
            "candidate_mean_relative_error.walleye": "0.095",
            "candidate_mean_relative_error.salmon": "0.03",
        },
        {"flow_run_id": promoted, "decision": "promoted"},
    ]
    for version_tags in tags:
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                salmon_model[1],
                name="model",
                registered_model_name=settings.registry.model_name,
                pip_requirements=["scikit-learn"],
            )
        for key, value in version_tags.items():
            client.set_model_version_tag(
                settings.registry.model_name, str(info.registered_model_version), key, value
            )

    outcome = find_outcome(settings, rejected)
    assert outcome is not None
    assert outcome.decision is Decision.REJECTED
    assert outcome.achievable == {"walleye": 0.095, "salmon": 0.03}
    other = find_outcome(settings, promoted)
    assert other is not None
    assert other.decision is Decision.PROMOTED
    assert find_outcome(settings, str(uuid.uuid4())) is None  # it registered nothing
