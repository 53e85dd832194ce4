"""The registry loop against the real FerretDB, MLflow and Prefect of the test stack.

The tests tell one story in order (bootstrap, a retrain that is not better, a shift that is
promoted, a rollback, bad windows, a forced promotion, a run through a served deployment), on
a model name and a collection of their own so that other tests of the session do not meet it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from prefect.deployments import run_deployment

from flows.outcome import FlowOutcome
from flows.promote import promote
from flows.retrain import retrain
from flows.rollback import rollback
from flows.train import train
from infra.local.stack import Stack
from tests.integration import joined
from tidemark.config import Settings, get_settings
from tidemark.modelling.frames import TrainingDataError
from tidemark.modelling.training import evaluate
from tidemark.orchestration import RETRAIN_DEPLOYMENT, deployments_ready, prefect_api
from tidemark.registry import writer as registry
from tidemark.simulation.generate import generate_frame
from tidemark.simulation.library import load_scenario
from tidemark.store import TrainingStore

SHIFT_START = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)

FISH = joined.FISH


def _env(settings: Settings) -> dict[str, str]:
    return {
        "TIDEMARK_STORE_URI": settings.store.uri,
        "TIDEMARK_REGISTRY_TRACKING_URI": settings.registry.tracking_uri,
        "TIDEMARK_ORCHESTRATION_API_URL": settings.orchestration.api_url,
        "TIDEMARK_REGISTRY_MODEL_NAME": settings.registry.model_name,
        "TIDEMARK_STORE_COLLECTION": settings.store.collection,
        "TIDEMARK_REGISTRY_EXPERIMENT": settings.registry.experiment,
        "TIDEMARK_RETRAIN_TRANSIENT_RETRY_DELAY_S": "0.5",
    }


@pytest.fixture(scope="module")
def settings(stack: Stack) -> Iterator[Settings]:
    """The stack's settings with this module's own model and collection, also in the env."""
    mine = stack.settings.override(
        registry_model_name="fish-weight-loop",
        store_collection="training_data_loop",
        registry_experiment="registry-loop",
    )
    with pytest.MonkeyPatch.context() as patch:
        for key, value in _env(mine).items():
            patch.setenv(key, value)
        get_settings.cache_clear()
        assert get_settings().registry.model_name == mine.registry.model_name
        with prefect_api(mine.orchestration):
            yield mine
    get_settings.cache_clear()


def store_phase(settings: Settings, phase: str, seed: int, start: datetime, count: int) -> None:
    """Put ``count`` fish of a scenario phase into the store as joined records, a second apart."""
    records = joined.store_phase(
        settings,
        phase,
        seed,
        start,
        count,
        prefix=f"{phase}-{seed}",
        joined_after=timedelta(seconds=30),
    )
    with TrainingStore(settings.store, FISH) as store:
        assert store.upsert_many(records) == 0  # idempotent: a replay adds nothing


def version(settings: Settings, number: str) -> registry.VersionInfo:
    return registry.version_info(settings.registry, number)


def test_bootstrap_puts_version_1_in_production(settings: Settings) -> None:
    outcome = train(seed=42)
    assert (outcome.version, outcome.decision) == ("1", "promoted")
    assert registry.production_version(settings.registry) == "1"
    v1 = version(settings, "1")
    assert v1.stage == "Production"
    assert v1.tags["trigger_reason"] == "bootstrap"
    assert v1.tags["champion_mean_relative_error"] == "none"
    assert float(v1.tags["candidate_mean_relative_error"]) < 0.1
    assert int(v1.tags["row_count"]) == 1200
    assert (v1.tags["heldout_n"], v1.tags["heldout_n.salmon"]) == ("300", "300")
    assert v1.tags["p_value"] == "none"
    assert v1.description.startswith("**Decision: promoted.** no model in production")
    run = registry.client(settings.registry).get_run(v1.run_id)
    assert run.info.run_name == "bootstrap"
    assert run.data.tags["mlflow.source.name"] == registry.RUN_SOURCE
    assert run.data.metrics["heldout_n"] == 300
    model = registry.client(settings.registry).get_registered_model(settings.registry.model_name)
    assert "**The loop.**" in model.description
    assert len(v1.tags["data_fingerprint"]) == 64
    reference = registry.load_reference(settings.registry, "1")
    assert len(reference) == 1200
    assert {"species", "length_cm", "height_cm", "weight_kg"} <= set(reference.columns)
    # A second bootstrap is a no-op once production exists (what `make up` relies on).
    assert train(if_no_production=True).decision == "skipped"


def test_a_retrain_that_is_not_better_is_registered_not_promoted(settings: Settings) -> None:
    store_phase(settings, "salmon", seed=7, start=SHIFT_START - timedelta(hours=2), count=400)
    outcome = retrain(reason="schedule", last_n=400)
    assert (outcome.version, outcome.decision) == ("2", "rejected")
    assert registry.production_version(settings.registry) == "1"
    v2 = version(settings, "2")
    assert v2.tags["decision"] == "rejected"
    assert "not at least 5% below champion v1" in v2.tags["decision_reason"]
    assert v2.tags["trigger_reason"] == "schedule"
    assert v2.tags["champion_mean_relative_error"] != "none"
    assert v2.stage == "None"
    assert outcome.heldout_n_by_segment == {"salmon": 80}
    assert outcome.p_value is not None
    assert float(v2.tags["p_value"]) == pytest.approx(outcome.p_value)
    assert "**Decision: rejected.**" in v2.description
    run = registry.client(settings.registry).get_run(v2.run_id)
    assert run.info.run_name == "retrain v1 · schedule"
    assert run.data.tags["mlflow.source.name"] == registry.RUN_SOURCE
    sources = [d.dataset.source for d in run.inputs.dataset_inputs]
    assert sources
    assert all("training_data_loop" in source for source in sources)


def test_a_retrain_after_a_shift_is_promoted(settings: Settings) -> None:
    store_phase(settings, "walleye", seed=7, start=SHIFT_START, count=300)
    outcome = retrain(
        reason="error", last_n=300, metric="mean_relative_error", metric_value=0.2, threshold=0.1
    )
    assert (outcome.version, outcome.decision) == ("3", "promoted")
    assert outcome.champion is not None
    assert outcome.candidate is not None
    assert outcome.candidate["mean_relative_error"] < outcome.champion["mean_relative_error"]
    # Judged on the most recent fifth of the walleye, with a paired test on the same fish.
    assert outcome.heldout_n == 60
    assert outcome.heldout_n_by_segment == {"walleye": 60}
    assert outcome.p_value is not None
    assert outcome.p_value < 1e-6
    assert outcome.champion_error_by_segment is not None
    assert (
        outcome.candidate_error_by_segment["walleye"] < outcome.champion_error_by_segment["walleye"]
    )
    v3 = version(settings, "3")
    assert float(v3.tags["candidate_mean_relative_error.walleye"]) == pytest.approx(
        outcome.candidate_error_by_segment["walleye"]
    )
    assert "| walleye | 60 |" in v3.description
    run = registry.client(settings.registry).get_run(v3.run_id)
    assert run.info.run_name == "retrain v1 · error 0.20 > 0.10"
    assert run.data.metrics["p_value"] == pytest.approx(outcome.p_value)
    assert "champion_mean_relative_error.walleye" in run.data.metrics
    assert registry.production_version(settings.registry) == "3"
    assert version(settings, "3").stage == "Production"
    assert version(settings, "1").stage == "Archived"
    assert v3.tags["trigger_metric"] == "mean_relative_error"
    assert v3.tags["trigger_threshold"] == "0.1"
    assert registry.production_history(settings.registry) == ["1", "3"]
    assert "walleye" in registry.load_reference(settings.registry, "3")["species"].unique()


def test_rollback_restores_the_previous_production_version(settings: Settings) -> None:
    outcome = rollback()
    assert outcome.production_version == "1"
    assert registry.production_version(settings.registry) == "1"
    assert version(settings, "1").stage == "Production"
    assert version(settings, "3").stage == "Archived"
    assert "rolled_back_at" in version(settings, "3").tags


def _versions(settings: Settings) -> list[str]:
    return [info.version for info in registry.list_versions(settings.registry)]


def test_an_empty_window_fails_and_promotes_nothing(settings: Settings) -> None:
    before = _versions(settings)
    state = retrain(
        reason="drift",
        window_start=datetime(1990, 1, 1, tzinfo=UTC),
        window_end=datetime(1990, 1, 2, tzinfo=UTC),
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(TrainingDataError, match="no joined records measured between"):
        state.result()
    assert _versions(settings) == before
    assert registry.production_version(settings.registry) == "1"


def test_a_window_of_broken_records_fails_and_promotes_nothing(settings: Settings) -> None:
    start = datetime(2001, 1, 1, tzinfo=UTC)
    store_phase(settings, "salmon", seed=11, start=start, count=60)
    with TrainingStore(settings.store, FISH) as store:
        # Written past the data contract, as a faulty writer could.
        store.collection.insert_many(
            [
                {"_id": "broken-1", "species": "salmon", "length_cm": 70.0, "height_cm": 17.0,
                 "weight_kg": None, "measured_at": start + timedelta(minutes=5)},
                {"_id": "broken-2", "species": "salmon", "length_cm": -3.0, "height_cm": 17.0,
                 "weight_kg": 4.0, "measured_at": start + timedelta(minutes=6)},
            ]
        )  # fmt: skip
    before = _versions(settings)
    with pytest.raises(TrainingDataError, match="bad values"):
        retrain(reason="manual", window_start=start, window_end=start + timedelta(hours=1))
    assert _versions(settings) == before
    assert registry.production_version(settings.registry) == "1"


def test_a_window_short_of_evidence_trains_and_registers_nothing(settings: Settings) -> None:
    # Before every other record of the store, so that no species is remembered from earlier.
    start = datetime(2000, 1, 1, tzinfo=UTC)
    # The first window of the issue: 40 fish, of which 8 would have been held out.
    store_phase(settings, "walleye", seed=12, start=start, count=40)
    before = _versions(settings)
    outcome = retrain(
        reason="error", window_start=start, window_end=start + timedelta(minutes=1),
        metric="mean_relative_error", metric_value=0.48, threshold=0.1,
    )  # fmt: skip
    assert outcome.decision == "insufficient_evidence"
    assert outcome.version is None
    assert outcome.rows_short == {"walleye": 5}
    assert "walleye 40 rows" in outcome.reason
    assert outcome.production_version == "1"
    assert _versions(settings) == before
    assert registry.production_version(settings.registry) == "1"


def test_a_forced_promotion_skips_the_policy(settings: Settings) -> None:
    outcome = promote(version="3", force=True)
    assert (outcome.decision, outcome.production_version) == ("forced", "3")
    assert version(settings, "3").tags["decision"] == "forced"
    assert version(settings, "3").description.startswith("**Later decision: forced.**")
    assert version(settings, "1").stage == "Archived"
    # Promoted without evidence: the version it replaced watches it on live fish.
    watch = registry.challenger_version(settings.registry)
    assert watch is not None
    assert version(settings, watch).tags["shadow_role"] == "rollback-watch"
    registry.clear_challenger(settings.registry)
    # The version now in production cannot be "promoted" again.
    assert promote(version="3").decision == "unchanged"


def _wait_ready(settings: Settings, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while True:
        try:
            deployments_ready(settings.orchestration)
            return
        except Exception as error:  # not registered or not polled yet
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"deployments never became ready: {error}\n"
                                     f"{log.read_text()[-3000:]}") from error  # fmt: skip
            time.sleep(1)


def test_a_retrain_triggered_through_the_prefect_api_completes(
    settings: Settings, tmp_path: Path
) -> None:
    env = os.environ | _env(settings) | {
        "PREFECT_API_URL": settings.orchestration.api_url,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "tidemark", "serve-flows"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(settings, server, log)
        before = _versions(settings)
        run = run_deployment(
            RETRAIN_DEPLOYMENT, parameters={"reason": "drift", "last_n": 300}, timeout=600
        )
        assert run.state is not None
        assert run.state.is_completed(), f"{run.state}\n{log.read_text()[-3000:]}"
        assert len(_versions(settings)) == len(before) + 1
        # The monitor reads what a run it triggered decided from the run's persisted result.
        outcome = run.state.result()
        assert isinstance(outcome, FlowOutcome)
        assert outcome.version == max(_versions(settings), key=int)
        assert outcome.heldout_n >= settings.retrain.min_holdout_rows
    finally:
        server.terminate()
        server.wait(60)


def test_the_store_reads_recent_and_windowed_records_in_time_order(settings: Settings) -> None:
    with TrainingStore(settings.store, FISH) as store:
        recent = store.recent(50)
        window = store.window(SHIFT_START, SHIFT_START + timedelta(seconds=9))
    assert len(recent) == 50
    assert recent["measured_at"].is_monotonic_increasing
    assert (recent["species"] == "walleye").all()
    assert len(window) == 10
    assert isinstance(window["measured_at"].dtype, pd.DatetimeTZDtype)


def _salmon_error(settings: Settings, number: str) -> float:
    salmon = generate_frame(load_scenario(FISH.project), 99, ["salmon"]).head(300)
    model = registry.load_model(settings.registry, number)
    return evaluate(FISH.project, model, salmon).judged


def test_a_retrain_on_a_window_of_walleye_still_knows_salmon(settings: Settings) -> None:
    window = {"window_start": SHIFT_START, "window_end": SHIFT_START + timedelta(seconds=299)}
    remembering = retrain(reason="error", **window).version
    assert remembering is not None
    reference = registry.load_reference(settings.registry, remembering)
    # The 300 walleye of the window and the latest 200 of the 400 salmon stored before it; the
    # most recent fifth of each species was held out to judge the candidate.
    assert reference["species"].value_counts().to_dict() == {"walleye": 240, "salmon": 160}
    run = registry.client(settings.registry).get_run(version(settings, remembering).run_id)
    assert run.inputs is not None
    assert any("remembered" in d.dataset.source for d in run.inputs.dataset_inputs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIDEMARK_RETRAIN_SEGMENT_MEMORY", "0")
        get_settings.cache_clear()
        forgetting = retrain(reason="error", **window).version
    get_settings.cache_clear()
    assert forgetting is not None
    assert set(registry.load_reference(settings.registry, forgetting)["species"]) == {"walleye"}
    assert _salmon_error(settings, remembering) < 0.1 < _salmon_error(settings, forgetting)
