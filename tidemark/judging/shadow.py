"""Shadow evaluation: a challenger judged against the champion on the same live items, per
segment and overall, and what its verdict does.

Every joined item that both versions predicted gives a pair of the errors its project judges (capped
at ``error_cap``). ``ShadowEvaluation.update`` adds a window's pairs and looks at the evidence with
the always-valid tests of ``tidemark.judging.sequential``, so it may be looked at after every
window:

- **overall**, the promotion test, on ``d = (1 - margin) * champion - challenger``: the
  challenger is promoted when it is better than the champion by more than ``margin`` of the
  champion's mean error (the holdout's rule, ``tidemark.judging.promotion``), and
  retired when it is not, each with always-valid confidence;
- **per segment**, a harm test with no margin, on ``champion - challenger``: the challenger
  is retired as soon as it is significantly worse than the champion on one segment with at
  least ``min_items`` items, whatever it gains on the others;
- undecided after ``max_items`` items, the verdict is "no evidence" (the challenger retires).

Levels: the overall test gets ``alpha / 2``; the segments' harm tests share the other half,
``alpha / 4`` for the first segment seen, ``alpha / 8`` for the second, and so on, fixed
when a segment first appears. By the union bound the chance of any wrong verdict for a
challenger whose true errors sit exactly at the bar stays at most ``alpha`` for any number
of segments and looks. A harm verdict wins over a promotion found at the same look.

**The rollback rule.** A version in shadow has a role. An ordinary challenger is judged with
the promotion margin and a win promotes it. A rollback watch is the version that a promotion
without proof replaced (an emergency, or one forced by hand): it is judged with no margin, and
a win rolls production back to it. A watch of a production version that has since moved on is
not judged, and a new challenger does not displace a running watch.

A verdict is final: a decided evaluation ignores further items. The state is a pydantic model
and round-trips through JSON (``to_json`` / ``from_json``), so a restarted monitor resumes
from where it was (an MLflow tag, a Kafka record). It is bound to one champion and one
challenger version: items scored by other versions are not evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tidemark.config import Settings
from tidemark.judging.scored import challenger_error_of, error_of, segment_of
from tidemark.judging.sequential import SequentialTest
from tidemark.project.contracts import Scored
from tidemark.project.spec import ErrorKind
from tidemark.schemas import ModelDecision, ModelEvent, ShadowEvidence, ShadowVerdict

# The challenger's registry tags the monitor reads without MLflow's client: the state, to
# resume; the role, whether a win means a promotion or a rollback; the production version the
# evaluation began against.
SHADOW_STATE_TAG = "shadow_state"
SHADOW_ROLE_TAG = "shadow_role"
SHADOW_CHAMPION_TAG = "shadow_champion"

FINAL = frozenset({ShadowVerdict.PROMOTE, ShadowVerdict.RETIRE, ShadowVerdict.NO_EVIDENCE})


class ShadowRole(StrEnum):
    """Why a version runs in shadow (its ``shadow_role`` tag)."""

    # A candidate: promoted if it proves better by the margin.
    CHALLENGER = "challenger"
    # The version a promotion without proof replaced: production comes back to it if it
    # proves better at all.
    ROLLBACK_WATCH = "rollback-watch"

    @classmethod
    def of(cls, tags: Mapping[str, str]) -> ShadowRole:
        """The role a version's tags state; a challenger unless they say it watches."""
        watching = tags.get(SHADOW_ROLE_TAG) == cls.ROLLBACK_WATCH
        return cls.ROLLBACK_WATCH if watching else cls.CHALLENGER


class Standing(StrEnum):
    """Whether the version in shadow is judged against production now."""

    # No production, no challenger, or the challenger is production itself.
    NOTHING = "nothing"
    # A rollback watch of a promotion that is no longer in production: a win of the watched
    # version would roll back a promotion it never watched.
    STALE_WATCH = "stale_watch"
    JUDGED = "judged"


def standing(production: str | None, challenger: str | None, tags: Mapping[str, str]) -> Standing:
    """Whether ``challenger`` (with its ``tags``) is judged against ``production`` now."""
    if production is None or challenger is None or challenger == production:
        return Standing.NOTHING
    watched = tags.get(SHADOW_CHAMPION_TAG)
    if ShadowRole.of(tags) is ShadowRole.ROLLBACK_WATCH and watched not in (None, production):
        return Standing.STALE_WATCH
    return Standing.JUDGED


def may_be_displaced(current: Mapping[str, str]) -> bool:
    """Whether a new challenger may take the place of the version in shadow with these tags:
    not of a rollback watch, which guards a promotion already made."""
    return ShadowRole.of(current) is not ShadowRole.ROLLBACK_WATCH


def event_of(verdict: ShadowVerdict, role: ShadowRole) -> ModelEvent:
    """What a final verdict does: a challenger that won is promoted, a rollback watch that won
    is restored (a rollback), and any other verdict takes the version out of shadow."""
    if verdict is not ShadowVerdict.PROMOTE:
        return ModelEvent.RETIREMENT
    return ModelEvent.ROLLBACK if role is ShadowRole.ROLLBACK_WATCH else ModelEvent.PROMOTION


def verdict_is_current(
    decision: ModelDecision, production: str | None, challenger: str | None
) -> bool:
    """Whether a verdict is about the versions that are production and challenger now (one
    about others changes nothing)."""
    return (production, challenger) == (decision.champion_version, decision.challenger_version)


class ShadowRules(BaseModel):
    """The rules of one evaluation; kept in its state, so a resumed one keeps its rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(default=0.05, gt=0, lt=1)
    margin: float = Field(default=0.05, ge=0, lt=1)
    min_items: int = Field(default=100, ge=2)
    max_items: int = Field(default=5_000, ge=2)
    effect_scale: float = Field(default=0.2, gt=0)
    error_cap: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max_items < self.min_items:
            raise ValueError("max_items is below min_items")
        return self

    @classmethod
    def from_settings(
        cls, settings: Settings, role: ShadowRole = ShadowRole.CHALLENGER
    ) -> ShadowRules:
        """The settings' shadow rules for a version in ``role``: a challenger must beat the
        promotion margin; a rollback watch has none, so that any significant advantage of the
        replaced version rolls back."""
        return cls(
            alpha=settings.shadow.alpha,
            margin=0.0 if role is ShadowRole.ROLLBACK_WATCH else settings.retrain.promotion_margin,
            min_items=settings.shadow.min_items,
            max_items=settings.shadow.max_items,
            effect_scale=settings.shadow.effect_scale,
            error_cap=settings.shadow.error_cap,
        )


class ShadowEvaluation(BaseModel):
    """The state of one shadow evaluation: both versions, the rules, the evidence, the verdict."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    champion_version: str = Field(min_length=1)
    challenger_version: str = Field(min_length=1)
    config: ShadowRules
    overall: SequentialTest
    segments: dict[str, SequentialTest] = Field(default_factory=dict)
    looks: int = Field(default=0, ge=0, description="updates that brought items")
    verdict: ShadowVerdict = ShadowVerdict.CONTINUE
    reason: str = "no items yet"

    @classmethod
    def start(
        cls, champion_version: str, challenger_version: str, config: ShadowRules
    ) -> ShadowEvaluation:
        """A new evaluation with no evidence yet."""
        if champion_version == challenger_version:
            raise ValueError(f"v{champion_version} cannot challenge itself")
        return cls(
            champion_version=champion_version,
            challenger_version=challenger_version,
            config=config,
            overall=SequentialTest(
                alpha=config.alpha / 2,
                margin=config.margin,
                effect_scale=config.effect_scale,
                min_n=config.min_items,
            ),
        )

    @property
    def decided(self) -> bool:
        """Whether the verdict is final."""
        return self.verdict in FINAL

    @property
    def n(self) -> int:
        """Joined items that both versions predicted, counted so far."""
        return self.overall.n

    @property
    def statistic(self) -> float:
        """The overall test's log likelihood ratio at the last look."""
        return self.overall.log_lr

    @property
    def p_value(self) -> float:
        """The overall test's always-valid p-value (compare with ``config.alpha / 2``)."""
        return self.overall.p_value

    def update(
        self,
        segments: Sequence[str] | NDArray[Any],
        champion_error: ArrayLike,
        challenger_error: ArrayLike,
    ) -> ShadowEvaluation:
        """Add one window's items (segment and both judged errors, item by item) and look."""
        if self.decided:
            return self
        champion = np.minimum(np.asarray(champion_error, dtype=np.float64), self.config.error_cap)
        challenger = np.minimum(
            np.asarray(challenger_error, dtype=np.float64), self.config.error_cap
        )
        labels = np.asarray(segments, dtype=object)
        if not labels.shape == champion.shape == challenger.shape:
            raise ValueError("segments and both errors must have one value per item")
        if labels.size == 0:
            return self
        overall = self.overall.update(champion, challenger)
        tests = dict(self.segments)
        for name in dict.fromkeys(labels.tolist()):
            test = tests.get(name) or SequentialTest(
                alpha=self.config.alpha / 2 ** (len(tests) + 2),
                margin=0.0,
                effect_scale=self.config.effect_scale,
                min_n=self.config.min_items,
            )
            mine = labels == name
            tests[name] = test.update(champion[mine], challenger[mine])
        looked = self.model_copy(
            update={"overall": overall, "segments": tests, "looks": self.looks + 1}
        )
        verdict, reason = looked._judge()
        return looked.model_copy(update={"verdict": verdict, "reason": reason})

    def update_scored(self, records: Iterable[Scored], judged_by: ErrorKind) -> ShadowEvaluation:
        """Add the joined records that this champion and this challenger both predicted, by
        the error their project judges."""
        segments, champion, challenger = [], [], []
        for record in records:
            prediction = record.prediction
            theirs = challenger_error_of(record, judged_by)
            if (
                prediction.model_version == self.champion_version
                and prediction.challenger_version == self.challenger_version
                and theirs is not None
            ):
                segments.append(segment_of(record))
                champion.append(error_of(record, judged_by))
                challenger.append(theirs)
        return self.update(segments, champion, challenger)

    def _judge(self) -> tuple[ShadowVerdict, str]:
        config, overall = self.config, self.overall
        if overall.n < config.min_items:
            return ShadowVerdict.CONTINUE, f"{overall.n} of at least {config.min_items} items"
        harmed = [name for name, test in self.segments.items() if test.challenger_worse]
        if harmed:
            worst = ", ".join(_segment_figures(name, self.segments[name]) for name in harmed)
            return ShadowVerdict.RETIRE, f"challenger worse than the champion on {worst}"
        figures = _overall_figures(overall, config.margin)
        if overall.challenger_better:
            return ShadowVerdict.PROMOTE, f"challenger better by more than the margin: {figures}"
        if overall.challenger_worse:
            return ShadowVerdict.RETIRE, f"challenger not better by the margin: {figures}"
        if overall.n >= config.max_items:
            return ShadowVerdict.NO_EVIDENCE, f"no decision after {overall.n} items: {figures}"
        return ShadowVerdict.CONTINUE, f"no decision yet: {figures}"

    def decision(
        self,
        *,
        model_name: str,
        decided_by: str,
        decided_at: datetime,
        role: ShadowRole = ShadowRole.CHALLENGER,
    ) -> ModelDecision:
        """The ``<project>.model-decisions`` record of this evaluation's verdict, of the version in
        shadow in ``role`` (what the verdict does: ``event_of``)."""
        kind = event_of(self.verdict, role)
        return ModelDecision(
            kind=kind,
            model_name=model_name,
            champion_version=self.champion_version,
            challenger_version=self.challenger_version,
            verdict=self.verdict,
            n=self.n,
            statistic=self.statistic,
            p_value=self.p_value,
            alpha=self.overall.alpha,
            champion_mre=self.overall.champion_mean,
            challenger_mre=self.overall.challenger_mean,
            segments={
                name: ShadowEvidence(
                    n=test.n,
                    champion_mre=test.champion_mean,
                    challenger_mre=test.challenger_mean,
                    statistic=test.log_lr,
                    p_value=test.p_value,
                    alpha=test.alpha,
                )
                for name, test in self.segments.items()
            },
            reason=self.reason,
            decided_by=decided_by,
            decided_at=decided_at,
        )

    def retirement(self, *, model_name: str, reason: str, decided_at: datetime) -> ModelDecision:
        """The record of a retirement by hand, with the live evidence gathered so far."""
        return self.decision(
            model_name=model_name, decided_by="manual", decided_at=decided_at
        ).model_copy(
            update={
                "kind": ModelEvent.RETIREMENT,
                "verdict": ShadowVerdict.RETIRE,
                "reason": reason,
            }
        )

    def resumes(self, champion_version: str, challenger_version: str) -> bool:
        """Whether this saved state is about these two versions (items scored by others are no
        evidence about them)."""
        return (self.champion_version, self.challenger_version) == (
            champion_version,
            challenger_version,
        )

    def to_json(self) -> str:
        """The state as JSON, to resume from."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> ShadowEvaluation:
        """A state saved by ``to_json``."""
        return cls.model_validate_json(raw)


def _overall_figures(test: SequentialTest, margin: float) -> str:
    return (
        f"mean error {test.challenger_mean:.4f} against the champion's "
        f"{test.champion_mean:.4f} ({test.improvement:+.1%}, margin {margin:.0%}) on {test.n} "
        f"items, log LR {test.log_lr:.2f}, p {test.p_value:.3g} (alpha {test.alpha:.3g})"
    )


def _segment_figures(name: str, test: SequentialTest) -> str:
    return (
        f"{name} ({test.challenger_mean:.4f} against {test.champion_mean:.4f} on {test.n} items, "
        f"log LR {test.log_lr:.2f}, p {test.p_value:.3g} (alpha {test.alpha:.3g}))"
    )
