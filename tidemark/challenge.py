"""A challenger judged against the champion on the same live fish, per species and overall.

Every joined fish that both versions predicted gives a pair of relative errors (capped at
``error_cap``). ``Challenge.update`` adds a window's pairs and looks at the evidence with the
always-valid tests of ``tidemark.sequential``, so it may be looked at after every window:

- **overall**, the promotion test, on ``d = (1 - margin) * champion - challenger``: the
  challenger is promoted when it is better than the champion by more than ``margin`` of the
  champion's mean relative error (the holdout's rule, ``tidemark.promotion``), and retired
  when it is not, each with always-valid confidence;
- **per species**, a harm test with no margin, on ``champion - challenger``: the challenger
  is retired as soon as it is significantly worse than the champion on one species with at
  least ``min_fish`` fish, whatever it gains on the others;
- undecided after ``max_fish`` fish, the verdict is "no evidence" (the challenger retires).

Levels: the overall test gets ``alpha / 2``; the species' harm tests share the other half,
``alpha / 4`` for the first species seen, ``alpha / 8`` for the second, and so on, fixed
when a species first appears. By the union bound the chance of any wrong verdict for a
challenger whose true errors sit exactly at the bar stays at most ``alpha`` for any number
of species and looks. A harm verdict wins over a promotion found at the same look.

A verdict is final: a decided challenge ignores further fish. The state is a pydantic model
and round-trips through JSON (``to_json`` / ``from_json``), so a restarted monitor resumes
from where it was (an MLflow tag, a Kafka record). It is bound to one champion and one
challenger version: fish scored by other versions are not evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tidemark.config import Settings
from tidemark.schemas import ModelDecision, ModelEvent, Scored, ShadowVerdict, SpeciesEvidence
from tidemark.sequential import PairedTest

# The challenger's registry tags the monitor reads without MLflow's client (it keeps the state
# there to resume; the role says whether a win means a promotion or a rollback).
SHADOW_STATE_TAG = "shadow_state"
SHADOW_ROLE_TAG = "shadow_role"
ROLE_CHALLENGER = "challenger"
# The version a promotion replaced, in shadow with no margin: if it proves better, roll back.
ROLE_ROLLBACK_WATCH = "rollback-watch"

FINAL = frozenset({ShadowVerdict.PROMOTE, ShadowVerdict.RETIRE, ShadowVerdict.NO_EVIDENCE})


class ChallengeConfig(BaseModel):
    """The rules of one challenge; kept in its state, so a resumed challenge keeps its rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha: float = Field(default=0.05, gt=0, lt=1)
    margin: float = Field(default=0.05, ge=0, lt=1)
    min_fish: int = Field(default=100, ge=2)
    max_fish: int = Field(default=5_000, ge=2)
    effect_scale: float = Field(default=0.2, gt=0)
    error_cap: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max_fish < self.min_fish:
            raise ValueError("max_fish is below min_fish")
        return self

    @classmethod
    def from_settings(cls, settings: Settings, *, margin: float | None = None) -> ChallengeConfig:
        """The settings' shadow rules; ``margin`` defaults to the promotion margin.

        A rollback watch (the replaced version in shadow against the one promoted over it)
        passes ``margin=0``: any significant advantage of the old version rolls back.
        """
        return cls(
            alpha=settings.shadow.alpha,
            margin=settings.retrain.promotion_margin if margin is None else margin,
            min_fish=settings.shadow.min_fish,
            max_fish=settings.shadow.max_fish,
            effect_scale=settings.shadow.effect_scale,
            error_cap=settings.shadow.error_cap,
        )


class Challenge(BaseModel):
    """The state of one challenge: both versions, the rules, the evidence, the verdict."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    champion_version: str = Field(min_length=1)
    challenger_version: str = Field(min_length=1)
    config: ChallengeConfig
    overall: PairedTest
    species: dict[str, PairedTest] = Field(default_factory=dict)
    looks: int = Field(default=0, ge=0, description="updates that brought fish")
    verdict: ShadowVerdict = ShadowVerdict.CONTINUE
    reason: str = "no fish yet"

    @classmethod
    def start(
        cls, champion_version: str, challenger_version: str, config: ChallengeConfig
    ) -> Challenge:
        """A new challenge with no evidence yet."""
        if champion_version == challenger_version:
            raise ValueError(f"v{champion_version} cannot challenge itself")
        return cls(
            champion_version=champion_version,
            challenger_version=challenger_version,
            config=config,
            overall=PairedTest(
                alpha=config.alpha / 2,
                margin=config.margin,
                effect_scale=config.effect_scale,
                min_n=config.min_fish,
            ),
        )

    @property
    def decided(self) -> bool:
        """Whether the verdict is final."""
        return self.verdict in FINAL

    @property
    def n(self) -> int:
        """Joined fish that both versions predicted, counted so far."""
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
        species: Sequence[str] | NDArray[Any],
        champion_rel_error: ArrayLike,
        challenger_rel_error: ArrayLike,
    ) -> Challenge:
        """Add one window's fish (species and both relative errors, fish by fish) and look."""
        if self.decided:
            return self
        champion = np.minimum(
            np.asarray(champion_rel_error, dtype=np.float64), self.config.error_cap
        )
        challenger = np.minimum(
            np.asarray(challenger_rel_error, dtype=np.float64), self.config.error_cap
        )
        labels = np.asarray(species, dtype=object)
        if not labels.shape == champion.shape == challenger.shape:
            raise ValueError("species and both errors must have one value per fish")
        if labels.size == 0:
            return self
        overall = self.overall.update(champion, challenger)
        tests = dict(self.species)
        for name in dict.fromkeys(labels.tolist()):
            test = tests.get(name) or PairedTest(
                alpha=self.config.alpha / 2 ** (len(tests) + 2),
                margin=0.0,
                effect_scale=self.config.effect_scale,
                min_n=self.config.min_fish,
            )
            mine = labels == name
            tests[name] = test.update(champion[mine], challenger[mine])
        looked = self.model_copy(
            update={"overall": overall, "species": tests, "looks": self.looks + 1}
        )
        verdict, reason = looked._judge()
        return looked.model_copy(update={"verdict": verdict, "reason": reason})

    def update_scored(self, records: Iterable[Scored]) -> Challenge:
        """Add the joined records that this champion and this challenger both predicted."""
        species, champion, challenger = [], [], []
        for record in records:
            if (
                record.model_version == self.champion_version
                and record.challenger_version == self.challenger_version
                and record.challenger_rel_error is not None
            ):
                species.append(record.species)
                champion.append(record.rel_error)
                challenger.append(record.challenger_rel_error)
        return self.update(species, champion, challenger)

    def _judge(self) -> tuple[ShadowVerdict, str]:
        config, overall = self.config, self.overall
        if overall.n < config.min_fish:
            return ShadowVerdict.CONTINUE, f"{overall.n} of at least {config.min_fish} fish"
        harmed = [name for name, test in self.species.items() if test.challenger_worse]
        if harmed:
            worst = ", ".join(_species_figures(name, self.species[name]) for name in harmed)
            return ShadowVerdict.RETIRE, f"challenger worse than the champion on {worst}"
        figures = _overall_figures(overall, config.margin)
        if overall.challenger_better:
            return ShadowVerdict.PROMOTE, f"challenger better by more than the margin: {figures}"
        if overall.challenger_worse:
            return ShadowVerdict.RETIRE, f"challenger not better by the margin: {figures}"
        if overall.n >= config.max_fish:
            return ShadowVerdict.NO_EVIDENCE, f"no decision after {overall.n} fish: {figures}"
        return ShadowVerdict.CONTINUE, f"no decision yet: {figures}"

    def decision(
        self,
        *,
        model_name: str,
        decided_by: str,
        decided_at: datetime,
        kind: ModelEvent | None = None,
    ) -> ModelDecision:
        """The ``fish.model-decisions`` record of this challenge's verdict.

        ``kind`` defaults to promotion for PROMOTE and retirement otherwise; a rollback watch
        whose challenger (the replaced version) won passes ``ModelEvent.ROLLBACK``.
        """
        if kind is None:
            kind = (
                ModelEvent.PROMOTION
                if self.verdict is ShadowVerdict.PROMOTE
                else ModelEvent.RETIREMENT
            )
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
            species={
                name: SpeciesEvidence(
                    n=test.n,
                    champion_mre=test.champion_mean,
                    challenger_mre=test.challenger_mean,
                    statistic=test.log_lr,
                    p_value=test.p_value,
                    alpha=test.alpha,
                )
                for name, test in self.species.items()
            },
            reason=self.reason,
            decided_by=decided_by,
            decided_at=decided_at,
        )

    def to_json(self) -> str:
        """The state as JSON, to resume from."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> Challenge:
        """A state saved by ``to_json``."""
        return cls.model_validate_json(raw)


def _overall_figures(test: PairedTest, margin: float) -> str:
    return (
        f"mean relative error {test.challenger_mean:.4f} against the champion's "
        f"{test.champion_mean:.4f} ({test.improvement:+.1%}, margin {margin:.0%}) on {test.n} "
        f"fish, log LR {test.log_lr:.2f}, p {test.p_value:.3g} (alpha {test.alpha:.3g})"
    )


def _species_figures(name: str, test: PairedTest) -> str:
    return (
        f"{name} ({test.challenger_mean:.4f} against {test.champion_mean:.4f} on {test.n} fish, "
        f"log LR {test.log_lr:.2f}, p {test.p_value:.3g} (alpha {test.alpha:.3g}))"
    )
