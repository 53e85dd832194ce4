"""Shadow evaluation on live items: the monitor's wiring of it.

After every closed window the monitor asks the registry (over REST, as the scorers do) which
version is in production and which in shadow, adds the window's paired errors to the running
:class:`tidemark.judging.shadow.ShadowEvaluation` and keeps its state on the challenger's tags,
so that a restarted monitor resumes it. Every rule is the kernel's (``tidemark.judging.shadow``):
whether the version in shadow is judged now, which saved state resumes, the rules of its role,
the verdict and what it does.

A final verdict is published on the project's ``model-decisions`` topic, counted, and carried
out by the ``shadow-verdict`` deployment (``flows.shadow.shadow_verdict``): the MLflow client
does the registry's writes there, not in the monitor. A decided evaluation takes no more items,
so its verdict is carried out once. A state saved by an earlier release that this one cannot
read is not resumed: the evaluation starts afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from kafka import KafkaProducer
from pydantic import ValidationError

from monitoring import metrics
from tidemark.config import Settings
from tidemark.judging.shadow import (
    SHADOW_CHAMPION_TAG,
    SHADOW_STATE_TAG,
    ShadowEvaluation,
    ShadowRole,
    ShadowRules,
    Standing,
    standing,
)
from tidemark.logs import get_logger
from tidemark.orchestration import SHADOW_VERDICT_DEPLOYMENT, prefect_api
from tidemark.project.contracts import Scored
from tidemark.project.spec import ErrorKind
from tidemark.registry.reader import RegistryUnavailableError, VersionRef
from tidemark.registry.tagger import RegistryTagger
from tidemark.schemas import ModelDecision, utc_now

log = get_logger("monitor.shadow")


class ShadowRegistry(Protocol):
    """The registry as the shadow judge reads and writes it."""

    def challenger(self) -> VersionRef | None:
        """The version in shadow, with its tags; None when there is none."""

    def save(self, evaluation: ShadowEvaluation) -> None:
        """Keep the running state on the challenger."""


class RestShadowRegistry:
    """:class:`ShadowRegistry` over MLflow's REST API (``RegistryTagger``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._registry = RegistryTagger(settings.registry)

    def challenger(self) -> VersionRef | None:
        """The version the challenger alias points at, with its tags."""
        return self._registry.alias(self.settings.registry.challenger_alias)

    def save(self, evaluation: ShadowEvaluation) -> None:
        """The state as the challenger's ``shadow_state`` tag."""
        self._registry.set_version_tag(
            evaluation.challenger_version, SHADOW_STATE_TAG, evaluation.to_json()
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._registry.close()


def verdict_key(decision: ModelDecision) -> str:
    """The idempotency key of a verdict's run: the model, the two versions and the verdict, so
    that a verdict reached again (a monitor restarted before its state was saved) starts no
    second run, while the same verdict on another model's versions of the same numbers (another
    project on the stack) starts its own."""
    return (
        f"shadow:{decision.model_name}:{decision.champion_version}:"
        f"{decision.challenger_version}:{decision.kind.value}:{decision.decided_by}"
    )


def run_verdict(settings: Settings, decision: ModelDecision) -> str:
    """Start the ``shadow-verdict`` deployment on ``decision``; its flow run id.

    The idempotency key is :func:`verdict_key`'s.
    """
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    key = verdict_key(decision)
    with prefect_api(settings.orchestration):
        run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync in a sync caller
            SHADOW_VERDICT_DEPLOYMENT,
            parameters={"verdict": decision.model_dump(mode="json")},
            timeout=0,
            idempotency_key=key,
            tags=["tidemark-monitor", f"shadow:{decision.kind.value}"],
        )
    return str(run.id)


def publisher(settings: Settings, producer: KafkaProducer) -> Callable[[ModelDecision], None]:
    """Puts a decision on the model-decisions topic (key: the model name) and waits for the
    ack."""

    def publish(decision: ModelDecision) -> None:
        producer.send(
            settings.kafka.topics.model_decisions,
            key=decision.model_name.encode(),
            value=decision.to_json(),
        ).get(timeout=settings.kafka.client_timeout_ms / 1000)

    return publish


class ShadowJudge:
    """Keeps the running shadow evaluation of the challenger against production, window by
    window, and hands its final verdict on; errors are those the project judges
    (``judged_by``)."""

    def __init__(
        self,
        settings: Settings,
        registry: ShadowRegistry,
        publish: Callable[[ModelDecision], None],
        carry_out: Callable[[ModelDecision], str],
        judged_by: ErrorKind,
    ) -> None:
        self.settings = settings
        self.judged_by = judged_by
        self.registry = registry
        self._publish = publish
        self._carry_out = carry_out
        self.state: ShadowEvaluation | None = None
        self.role = ShadowRole.CHALLENGER
        self._warned_stale = False

    def observe(self, records: Iterable[Scored], production: str | None) -> ModelDecision | None:
        """Add one closed window's items; the decision when the evaluation was decided now."""
        try:
            challenger = self.registry.challenger()
        except RegistryUnavailableError as error:
            log.warning("cannot read the challenger; the window is not evidence", error=str(error))
            return None
        tags = {} if challenger is None else challenger.tags
        now = standing(production, None if challenger is None else challenger.version, tags)
        if now is Standing.NOTHING:
            self._forget()
            return None
        if now is Standing.STALE_WATCH:
            if self.state is not None or not self._warned_stale:
                log.warning(
                    "rollback watch of another production version; not judged",
                    challenger=None if challenger is None else challenger.version,
                    watched=tags.get(SHADOW_CHAMPION_TAG),
                    production=production,
                )
            self._forget()
            self._warned_stale = True
            return None
        # Judged: there are both.
        assert production is not None
        assert challenger is not None
        self._warned_stale = False
        if self.state is None or not self.state.resumes(production, challenger.version):
            self._begin(production, challenger)
        state = self.state
        assert state is not None
        if state.decided:
            return None
        state = self.state = state.update_scored(records, self.judged_by)
        metrics.SHADOW_ITEMS.set(state.n)
        metrics.SHADOW_P_VALUE.set(state.p_value)
        try:
            self.registry.save(state)
        except RegistryUnavailableError as error:  # the next window saves it again
            log.warning("cannot save the shadow evaluation's state", error=str(error))
        if not state.decided:
            log.info(
                "shadow evaluation",
                champion=state.champion_version,
                challenger=state.challenger_version,
                n=state.n,
                p_value=state.p_value,
                reason=state.reason,
            )
            return None
        return self._decide(state)

    def _begin(self, production: str, challenger: VersionRef) -> None:
        self.role = ShadowRole.of(challenger.tags)
        saved = challenger.tags.get(SHADOW_STATE_TAG)
        resumed = None
        if saved:
            try:
                resumed = ShadowEvaluation.from_json(saved)
            except ValidationError as error:
                log.warning(
                    "the saved shadow state cannot be read; the evaluation starts afresh",
                    error=str(error)[:300],
                )
        if resumed is not None and resumed.resumes(production, challenger.version):
            self.state = resumed
            log.info("shadow evaluation resumed", n=resumed.n, verdict=resumed.verdict.value)
            if resumed.decided:
                # Decided before a restart, and the challenger still there: the verdict may not
                # have been carried out (the flow's idempotency key makes a repeat harmless).
                self._decide(resumed)
            return
        self.state = ShadowEvaluation.start(
            production, challenger.version, ShadowRules.from_settings(self.settings, self.role)
        )
        log.info(
            "shadow evaluation started",
            champion=production,
            challenger=challenger.version,
            role=self.role.value,
        )

    def _forget(self) -> None:
        if self.state is not None:
            log.info("no challenger any more", challenger=self.state.challenger_version)
        self.state = None
        metrics.SHADOW_ITEMS.set(0)
        metrics.SHADOW_P_VALUE.set(1)

    def _decide(self, state: ShadowEvaluation) -> ModelDecision:
        decision = state.decision(
            model_name=self.settings.registry.model_name,
            decided_by="monitor",
            decided_at=utc_now(),
            role=self.role,
        )
        metrics.MODEL_DECISIONS.labels(decision.kind.value).inc()
        log.warning(
            "shadow evaluation decided",
            kind=decision.kind.value,
            verdict=state.verdict.value,
            champion=state.champion_version,
            challenger=state.challenger_version,
            role=self.role.value,
            n=state.n,
            p_value=state.p_value,
            reason=state.reason,
        )
        try:
            self._publish(decision)
        except Exception:  # the registry's verdict matters more than the announcement
            log.exception("publishing the model decision failed")
        try:
            flow_run_id = self._carry_out(decision)
            log.info("verdict handed to the shadow-verdict flow", flow_run_id=flow_run_id)
        except Exception:
            # Prefect down: the decided state is saved on the challenger; a restarted monitor
            # (or a person, with `tidemark shadow --retire`) carries the verdict out.
            log.exception("starting the shadow-verdict flow failed")
        return decision
