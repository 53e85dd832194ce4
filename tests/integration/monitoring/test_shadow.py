"""Shadow evaluation on the real stack: the monitor judges a challenger on ``fish.scored`` and
the served ``shadow-verdict`` flow carries its verdict out in the MLflow registry.

The scored records are synthetic (scored by the salmon model, the challenger's answer a copy
with its error scaled or shuffled), so each test chooses how much better or worse the
challenger is; the registry, Kafka, Prefect and the monitor are real. Windows are 2 s of event
time with 80 fish each. Every test prints the evidence at the end (windows looked at, n, the
log likelihood ratio and the always-valid p-value), for the issue's closing note.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import mlflow
import pytest
from sklearn.pipeline import Pipeline

from benchmarks.fish import FISH, fish_scenario
from flows.promote import promote
from infra.local.stack import Stack
from tests.integration.monitoring.fish import (
    PER_WINDOW,
    produce,
    scored_fish,
    window_aligned_start,
)
from tests.integration.monitoring.test_monitor import run_monitor
from tests.integration.served import served
from tests.integration.topics import read_topic
from tidemark import kafka_io
from tidemark.config import Settings, get_settings
from tidemark.judging.shadow import SHADOW_ROLE_TAG, SHADOW_STATE_TAG, ShadowEvaluation, ShadowRole
from tidemark.orchestration import SHADOW_VERDICT_DEPLOYMENT, prefect_api
from tidemark.project.contracts import Scored
from tidemark.registry import writer as registry
from tidemark.schemas import ModelDecision, ModelEvent, ShadowVerdict
from tidemark.simulation.generate import generate_frame

pytestmark = pytest.mark.integration

MIN_FISH = 200  # two and a half windows: the first two looks cannot decide


@pytest.fixture(scope="module")
def verdict_deployment(stack: Stack) -> Iterator[None]:
    """``shadow-verdict/shadow-verdict`` served by a process of its own, on this stack."""
    # Each test's model has a name of its own: the flow takes it from the decision.
    env = {"TIDEMARK_REGISTRY_TRACKING_URI": stack.settings.registry.tracking_uri}
    server = Path(__file__).with_name("shadow_verdict_server.py")
    with served(stack, server, SHADOW_VERDICT_DEPLOYMENT, env, timeout_s=300):
        yield


@pytest.fixture
def two_versions(
    monitored: Settings, salmon_model: tuple[str, Pipeline], verdict_deployment: None
) -> Settings:
    """A model of its own with v1 in production and v2 registered, a decisions topic of its
    own and ``MIN_FISH``."""
    settings = monitored.override(
        registry_model_name=f"shadow-{uuid.uuid4().hex[:6]}",
        kafka_topics_model_decisions=f"{uuid.uuid4().hex[:8]}.fish.model-decisions",
        shadow_min_items=MIN_FISH,
    )
    kafka_io.ensure_topics(settings.kafka)
    frame = generate_frame(fish_scenario(), seed=1, phases=["salmon"])
    mlflow.set_tracking_uri(settings.registry.tracking_uri)
    mlflow.set_experiment("shadow-tests")
    for _ in range(2):
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                salmon_model[1],
                name="model",
                registered_model_name=settings.registry.model_name,
                input_example=frame.loc[:5, [f.name for f in FISH.features]],
                pip_requirements=["scikit-learn"],
            )
    registry.promote(settings.registry, "1")
    return settings


@pytest.fixture
def shadowed(two_versions: Settings) -> Settings:
    """v1 in production, v2 in shadow as an ordinary challenger."""
    registry.set_challenger(two_versions.registry, "2", reason="shadow test")
    return two_versions


def with_challenger(
    records: list[Scored], scale: float, version: str = "2", shuffle: bool = False
) -> list[Scored]:
    """The records with ``version``'s answer in shadow: production's error scaled by
    ``scale``, or (``shuffle``) the relative error of another fish of the same window, so that
    both versions' errors have the same distribution without being the same."""
    errors = [r.prediction.value / r.truth - 1 for r in records]
    if shuffle:
        rng = random.Random(3)
        for start in range(0, len(errors), PER_WINDOW):
            window = errors[start : start + PER_WINDOW]
            rng.shuffle(window)
            errors[start : start + PER_WINDOW] = window
    shadowed = []
    for record, error in zip(records, errors, strict=True):
        if shuffle:
            other = record.truth * (1 + error)
        else:
            other = record.truth + (record.prediction.value - record.truth) * scale
        other = max(other, 0.001)
        gap = abs(other - record.truth)
        shadowed.append(
            replace(
                record,
                prediction=replace(
                    record.prediction, challenger_version=version, challenger_value=other
                ),
                challenger_abs_error=gap,
                challenger_rel_error=gap / record.truth,
            )
        )
    return shadowed


def decisions(settings: Settings) -> list[ModelDecision]:
    """Every decision on this test's ``fish.model-decisions`` (the monitor waits for each
    one's ack, and has stopped when this is read)."""
    topic = settings.kafka.topics.model_decisions
    return [ModelDecision.from_json(r.value) for r in read_topic(settings, topic)]


def challenge_of(settings: Settings, version: str) -> ShadowEvaluation:
    """The running or final challenge kept on ``version``'s tags by the monitor."""
    return ShadowEvaluation.from_json(
        registry.version_info(settings.registry, version).tags[SHADOW_STATE_TAG]
    )


def report(test: str, state: ShadowEvaluation) -> None:
    """The evidence at the decision (or at the end), for the closing note of the issue."""
    print(
        f"\n[shadow] {test}: verdict={state.verdict.value} windows={state.looks} n={state.n} "
        f"statistic={state.statistic:.3f} p={state.p_value:.3g} ({state.reason})"
    )


def wait_for(condition: str, check: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {condition}"
        time.sleep(1)


def test_a_worse_challenger_is_retired_and_never_promoted(
    shadowed: Settings, salmon_model: tuple[str, Pipeline]
) -> None:
    first = window_aligned_start(shadowed)
    fish = scored_fish(salmon_model[1], "1", "salmon", 8, first, shadowed, bias=1.05)
    produce(shadowed, with_challenger(fish, scale=3.0))
    run_monitor(shadowed, until=lambda verdicts: len(verdicts) >= 7)

    wait_for("v2 leaves shadow", lambda: registry.challenger_version(shadowed.registry) is None)
    assert registry.production_version(shadowed.registry) == "1"
    assert registry.production_history(shadowed.registry) == ["1"]
    tags = registry.version_info(shadowed.registry, "2").tags
    assert tags["shadow_verdict"] == ShadowVerdict.RETIRE.value
    assert int(tags["shadow_n"]) >= MIN_FISH
    [decision] = decisions(shadowed)
    assert (decision.kind, decision.champion_version, decision.challenger_version) == (
        ModelEvent.RETIREMENT,
        "1",
        "2",
    )
    assert decision.p_value is not None
    assert decision.p_value <= shadowed.shadow.alpha
    state = challenge_of(shadowed, "2")
    assert state.verdict is ShadowVerdict.RETIRE
    report("worse challenger", state)


def test_a_better_challenger_is_promoted_after_the_evidence_and_not_before(
    shadowed: Settings, salmon_model: tuple[str, Pipeline]
) -> None:
    first = window_aligned_start(shadowed)
    fish = with_challenger(
        scored_fish(salmon_model[1], "1", "salmon", 8, first, shadowed, bias=1.05), scale=0.2
    )
    # Two windows' fish: the monitor closes the first (the second waits for later fish), whose
    # 80 fish are short of MIN_FISH however clear they are.
    produce(shadowed, fish[: 2 * PER_WINDOW])
    run_monitor(shadowed, until=lambda verdicts: len(verdicts) >= 1)
    early = challenge_of(shadowed, "2")
    assert early.verdict is ShadowVerdict.CONTINUE
    assert 0 < early.n < MIN_FISH
    assert registry.production_version(shadowed.registry) == "1"
    assert registry.challenger_version(shadowed.registry) == "2"
    assert decisions(shadowed) == []

    # A restarted monitor resumes the challenge from the challenger's tags and the group's
    # offsets, and decides once the evidence is in.
    produce(shadowed, fish[2 * PER_WINDOW :])
    run_monitor(shadowed, until=lambda verdicts: len(verdicts) >= 6)
    wait_for("v2 in production", lambda: registry.production_version(shadowed.registry) == "2")
    assert registry.challenger_version(shadowed.registry) is None
    [decision] = decisions(shadowed)
    assert decision.kind is ModelEvent.PROMOTION
    assert decision.n >= MIN_FISH
    state = challenge_of(shadowed, "2")
    assert state.verdict is ShadowVerdict.PROMOTE
    assert state.looks > early.looks
    report("better challenger", state)


def test_a_forced_promotion_of_a_worse_version_is_rolled_back(
    two_versions: Settings, salmon_model: tuple[str, Pipeline]
) -> None:
    settings = two_versions
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIDEMARK_REGISTRY_TRACKING_URI", settings.registry.tracking_uri)
        patch.setenv("TIDEMARK_REGISTRY_MODEL_NAME", settings.registry.model_name)
        get_settings.cache_clear()
        try:
            with prefect_api(settings.orchestration):
                outcome = promote(version="2", force=True)
        finally:
            get_settings.cache_clear()
    assert (outcome.decision, outcome.production_version) == ("forced", "2")
    assert registry.challenger_version(settings.registry) == "1"
    watch = registry.version_info(settings.registry, "1").tags
    assert watch[SHADOW_ROLE_TAG] == ShadowRole.ROLLBACK_WATCH

    # On the live fish v2 (in production) is worse: v1 in shadow errs a third as much.
    first = window_aligned_start(settings)
    fish = scored_fish(salmon_model[1], "2", "salmon", 8, first, settings, bias=1.06)
    produce(settings, with_challenger(fish, scale=0.33, version="1"))
    run_monitor(settings, until=lambda verdicts: len(verdicts) >= 7)

    # The flow's last step takes v1, production again, out of shadow.
    wait_for(
        "v1 back in production and out of shadow",
        lambda: (
            registry.production_version(settings.registry) == "1"
            and registry.challenger_version(settings.registry) is None
        ),
    )
    [decision] = decisions(settings)
    assert decision.kind is ModelEvent.ROLLBACK
    assert (decision.champion_version, decision.challenger_version) == ("2", "1")
    state = challenge_of(settings, "1")
    assert state.verdict is ShadowVerdict.PROMOTE
    # Bounded: decided at the first look with MIN_FISH fish (the third window).
    assert state.looks <= -(-MIN_FISH // PER_WINDOW)
    rolled_back = registry.version_info(settings.registry, "2").tags
    assert "rolled_back_at" in rolled_back
    report("forced worse promotion", state)


@pytest.mark.parametrize("role", ["challenger", ShadowRole.ROLLBACK_WATCH])
def test_an_equal_challenger_on_a_stationary_line_promotes_and_rolls_back_nothing(
    two_versions: Settings, salmon_model: tuple[str, Pipeline], role: str
) -> None:
    settings = two_versions
    registry.set_challenger(
        settings.registry, "2", reason="as good", rollback_watch=role == ShadowRole.ROLLBACK_WATCH
    )
    first = window_aligned_start(settings)
    # Eleven windows' fish, so that ten close.
    fish = scored_fish(salmon_model[1], "1", "salmon", 11, first, settings, bias=1.05)
    produce(settings, with_challenger(fish, scale=1.0, shuffle=True))
    run_monitor(settings, until=lambda verdicts: len(verdicts) >= 10)

    assert registry.production_version(settings.registry) == "1"
    assert registry.production_history(settings.registry) == ["1"]
    kinds = {d.kind for d in decisions(settings)}
    assert not kinds & {ModelEvent.PROMOTION, ModelEvent.ROLLBACK}, kinds
    state = challenge_of(settings, "2")
    assert state.verdict is not ShadowVerdict.PROMOTE
    if role == ShadowRole.ROLLBACK_WATCH:
        # No margin to miss: equal versions leave the watch undecided all ten windows.
        assert state.verdict is ShadowVerdict.CONTINUE
        assert state.looks == 10
    report(f"equal challenger ({role})", state)
