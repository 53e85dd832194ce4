"""Production history on the real registry: the flows move production four ways (bootstrap, a
promotion on held-out evidence, a forced promotion, an automatic rollback on live evidence),
and ``tidemark history``, ``GET /models/{name}/history`` and the model's MLflow description
give the four intervals in order, with how each came, why it left and the figures."""

from __future__ import annotations

import itertools
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from benchmarks.fish import fish_scenario
from flows.promote import promote
from flows.shadow import shadow_verdict
from flows.train import train
from infra.local.components import venv_bin
from infra.local.stack import Stack
from tests.integration.conftest import free_ports
from tests.integration.registered import register_scenario_model
from tidemark.config import Settings, get_settings
from tidemark.orchestration import prefect_api
from tidemark.project.catalog import load_catalog
from tidemark.registry import writer as registry
from tidemark.registry.history import HISTORY_HEADING, production_intervals
from tidemark.schemas import ModelDecision, ModelEvent, ShadowEvidence, ShadowVerdict
from tidemark.simulation.generate import generate_frame
from tidemark.store import TrainingStore

PROJECTS = Path("projects").resolve()
DEFAULT = load_catalog(PROJECTS).default
CONTRACTS = load_catalog(PROJECTS).contracts(DEFAULT.name)
START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _env(settings: Settings) -> dict[str, str]:
    return {
        "TIDEMARK_STORE_URI": settings.store.uri,
        "TIDEMARK_STORE_COLLECTION": settings.store.collection,
        "TIDEMARK_REGISTRY_TRACKING_URI": settings.registry.tracking_uri,
        "TIDEMARK_REGISTRY_MODEL_NAME": settings.registry.model_name,
        "TIDEMARK_REGISTRY_EXPERIMENT": settings.registry.experiment,
        "TIDEMARK_ORCHESTRATION_API_URL": settings.orchestration.api_url,
        "TIDEMARK_RETRAIN_TRANSIENT_RETRY_DELAY_S": "0.5",
        "TIDEMARK_PROJECTS_DIR": str(PROJECTS),
    }


@pytest.fixture(scope="module")
def settings(stack: Stack) -> Iterator[Settings]:
    """The stack's settings with this module's own model and collection, also in the env."""
    tag = uuid.uuid4().hex[:6]
    mine = stack.settings.override(
        registry_model_name=f"history-{tag}",
        registry_experiment=f"history-{tag}",
        store_collection=f"history_{tag}",
        serving_port=free_ports(1)[0],
    )
    with pytest.MonkeyPatch.context() as patch:
        for key, value in _env(mine).items():
            patch.setenv(key, value)
        get_settings.cache_clear()
        with prefect_api(mine.orchestration):
            yield mine
    get_settings.cache_clear()


def store_records(settings: Settings, phases: list[str], count: int) -> None:
    """Joined records of the scenario's phases in the store, as the joiner writes them."""
    frame = generate_frame(fish_scenario(), 5, phases).groupby("species").head(count)
    names = CONTRACTS.names
    documents = []
    for i, row in enumerate(frame.to_dict("records")):
        at = START + timedelta(seconds=i)
        fields = {k: row[k] for k in CONTRACTS.input.model_fields if k in row}
        fields |= {
            DEFAULT.key: f"h-{i}",
            DEFAULT.times.input: at,
            names.predicted: row[DEFAULT.target.name],
            "model_name": settings.registry.model_name,
            "model_version": "1",
            "predicted_at": at,
            DEFAULT.target.name: row[DEFAULT.target.name],
            names.abs_error: 0.0,
            names.rel_error: 0.0,
            "joined_at": at + timedelta(seconds=30),
        }
        if names.known:
            fields[names.known] = True
        documents.append(CONTRACTS.scored_from(fields))
    with TrainingStore(settings.store, CONTRACTS) as store:
        store.upsert_many(documents)


@pytest.fixture(scope="module")
def four_moves(settings: Settings) -> dict[str, str]:
    """Production moved by the flows: bootstrap v1, v2 on held-out evidence, v3 forced, then
    v3 rolled back to v2 by the verdict the monitor sends when the watching version wins."""
    bootstrap = train(seed=42)  # the project's bootstrap CSV
    assert bootstrap.decision == "promoted"
    v2, _ = register_scenario_model(settings, ["salmon", "walleye"], experiment="history")
    v3, _ = register_scenario_model(settings, ["salmon"], experiment="history")
    store_records(settings, ["salmon", "walleye"], 150)
    judged = promote(version=v2, last_n=300)
    assert judged.decision == "promoted", judged.reason
    forced = promote(version=v3, force=True)
    assert forced.decision == "forced"
    assert registry.challenger_version(settings.registry) == v2  # the rollback watch
    evidence = ShadowEvidence(
        n=240, champion_mre=0.31, challenger_mre=0.06, statistic=6.2, p_value=0.002, alpha=0.05
    )
    decision = ModelDecision(
        kind=ModelEvent.ROLLBACK,
        model_name=settings.registry.model_name,
        champion_version=v3,
        challenger_version=v2,
        verdict=ShadowVerdict.PROMOTE,
        n=240,
        statistic=6.2,
        p_value=0.002,
        alpha=0.05,
        champion_mre=0.31,
        challenger_mre=0.06,
        segments={"walleye": evidence},
        reason="the watching version is better on live items",
        decided_by="monitor",
        decided_at=datetime.now(UTC),
    )
    rolled = shadow_verdict(decision.model_dump(mode="json"))
    assert rolled.decision == "rolled back"
    assert registry.production_version(settings.registry) == v2
    return {"v1": str(bootstrap.version), "v2": v2, "v3": v3}


def check_four_intervals(intervals: list[dict[str, object]], versions: dict[str, str]) -> None:
    v1, v2, v3 = versions["v1"], versions["v2"], versions["v3"]
    came = [(i["version"], i["came"]["how"]) for i in intervals]  # type: ignore[index]
    assert came == [(v1, "bootstrap"), (v2, "evidence"), (v3, "forced"), (v2, "rollback")]
    for earlier, later in itertools.pairwise(intervals):
        assert earlier["end"] == later["start"]
        assert earlier["left"] == later["came"]
    assert intervals[-1]["end"] is None
    evidence = intervals[1]["came"]["figures"]  # type: ignore[index]
    assert evidence["evidence"] == "holdout"
    assert evidence["n"] > 0
    assert 0.0 <= evidence["p_value"] <= 1.0
    assert evidence["incoming_error"] < evidence["outgoing_error"]
    assert set(evidence["segments"]) == {"salmon", "walleye"}
    rollback = intervals[3]["came"]
    assert rollback["decided_by"] == "monitor"  # type: ignore[index]
    assert rollback["figures"]["p_value"] == 0.002  # type: ignore[index]
    assert rollback["figures"]["segments"]["walleye"]["incoming_error"] == 0.06  # type: ignore[index]
    assert "watching version is better" in rollback["reason"]  # type: ignore[index]


def test_the_registry_records_four_moves_in_order(
    settings: Settings, four_moves: dict[str, str]
) -> None:
    moves = registry.production_moves(settings.registry)
    intervals = [i.model_dump(mode="json") for i in production_intervals(moves)]
    check_four_intervals(intervals, four_moves)
    # The move of the first promotion was written by the train flow's run.
    assert moves[0].decided_by == "train"
    assert moves[0].flow_run_id
    model = registry.client(settings.registry).get_registered_model(settings.registry.model_name)
    table = model.description.split(HISTORY_HEADING, 1)[1]
    rows = [line for line in table.splitlines() if line[:4] in {f"| v{n}" for n in "0123456789"}]
    assert [row.split(" | ")[3] for row in rows] == ["rollback", "forced", "evidence", "bootstrap"]


def test_the_cli_prints_the_history(settings: Settings, four_moves: dict[str, str]) -> None:
    env = os.environ | _env(settings)
    shown = subprocess.run(
        [venv_bin("tidemark"), "history"], env=env, capture_output=True, text=True, check=True
    )
    lines = [line for line in shown.stdout.splitlines() if " v" in line and "│" in line]
    assert [line.split("│")[4].strip() for line in lines] == [
        "bootstrap", "evidence", "forced", "rollback",
    ]  # fmt: skip
    assert "serving" in lines[-1]
    assert f"rolled back to v{four_moves['v2']}" in lines[2]
    other = subprocess.run(
        [venv_bin("tidemark"), "history", "--project", "no-such-project"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert other.returncode == 2
    assert "no project named 'no-such-project'" in other.stdout


def test_the_server_answers_the_history(
    settings: Settings, four_moves: dict[str, str], tmp_path: Path
) -> None:
    env = os.environ | _env(settings) | {
        "TIDEMARK_SERVING_PORT": str(settings.serving.port),
        "TIDEMARK_SERVING_ADMIN_TOKEN": "history-test-token",
    }  # fmt: skip
    with (tmp_path / "serving.log").open("w") as log:
        server = subprocess.Popen(
            [venv_bin("tidemark"), "serve"], env=env, cwd=tmp_path, stdout=log, stderr=log
        )
        try:
            url = settings.serving.url
            answer = _get_when_up(url, f"/models/{settings.registry.model_name}/history")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["production_version"] == four_moves["v2"]
            check_four_intervals(body["intervals"], four_moves)
            missing = httpx.get(f"{url}/models/loaves/history", timeout=10)
            assert missing.status_code == 404
            assert DEFAULT.name in missing.json()["detail"]
        finally:
            server.terminate()
            server.wait(timeout=30)


def _get_when_up(url: str, path: str) -> httpx.Response:
    deadline = time.monotonic() + 90
    while True:
        try:
            return httpx.get(f"{url}{path}", timeout=10)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
