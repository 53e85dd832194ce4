"""The promotion policy: when there is evidence enough to judge, and when a candidate wins.

Evidence first. Records are split per species: each species' most recent share is held out to
judge, the rest trains. A species needs ``min_training_rows_per_species`` rows to train on and
``min_holdout_rows_per_species`` to judge, and the holdout needs ``min_holdout_rows`` in all;
a species the retrain is about (the window's) that falls short makes the whole retrain short of
evidence, and nothing is trained. A species that is only remembered from before the window and
falls short is trained on whole, and named as not judged.

Then the judgement, on the same held-out fish for candidate and champion: the candidate wins
when there is no champion (or the champion cannot score the fish), or when both hold:

- its mean relative error is lower than the champion's by at least the margin (a share of the
  champion's error), so that a gain too small to matter does not flip production; and
- fish by fish it errs less: a one-sided Wilcoxon signed-rank test on the paired per-fish
  absolute relative errors gives a p-value below ``alpha``, so that the gain is not the luck of
  a few fish.

A candidate whose own metrics are not finite is never promoted. Pure logic: no registry, no
database.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import wilcoxon

from tidemark.config import RetrainSettings
from tidemark.model import SPECIES, Metrics, TrainingDataError

MEASURED_AT = "measured_at"
NO_METRIC = "none"
# Per-species tags and metrics are named "<name>.<species>", e.g. heldout_n.salmon.
SPECIES_SEPARATOR = "."
# The Prefect flow run that registered a version: how the monitor finds what its retrain decided.
FLOW_RUN_TAG = "flow_run_id"

FloatArray = npt.NDArray[np.float64]


class Decision(StrEnum):
    """What happened to a registered version, or to a retrain (its ``decision``)."""

    PROMOTED = "promoted"
    REJECTED = "rejected"
    FORCED = "forced"
    # Too few rows to train or to judge: nothing trained, nothing registered, nothing promoted.
    INSUFFICIENT_EVIDENCE = "insufficient_evidence"


@dataclass(frozen=True, slots=True)
class EvidenceRules:
    """How many rows it takes to train and to judge (see the module docstring)."""

    holdout_fraction: float
    min_holdout_rows: int
    min_holdout_rows_per_species: int
    min_training_rows_per_species: int

    def __post_init__(self) -> None:
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if min(self.min_holdout_rows, self.min_holdout_rows_per_species) < 1:
            raise ValueError("the holdout minimums must be at least 1")
        if self.min_training_rows_per_species < 1:
            raise ValueError("min_training_rows_per_species must be at least 1")

    def rows_to_judge(self, rows: int) -> int:
        """How many of a species' ``rows`` are held out (before the overall minimum)."""
        return max(self.min_holdout_rows_per_species, math.ceil(rows * self.holdout_fraction))

    @property
    def rows_per_species(self) -> int:
        """The fewest rows of one species that can be split into training and holdout."""
        rows = self.min_training_rows_per_species + self.min_holdout_rows_per_species
        while rows - self.rows_to_judge(rows) < self.min_training_rows_per_species:
            rows += 1
        return rows

    @property
    def rows_alone(self) -> int:
        """The fewest rows of one species that meet every minimum on their own, the overall
        holdout minimum included (no other species' held-out fish to add up with)."""
        rows = self.rows_per_species
        while _held_per_species({"": rows}, self)[""] < self.min_holdout_rows:
            rows += 1
        return rows

    @classmethod
    def of(cls, retrain: RetrainSettings) -> EvidenceRules:
        """The minimums of evidence the retrain settings define."""
        return cls(
            holdout_fraction=retrain.holdout_fraction,
            min_holdout_rows=retrain.min_holdout_rows,
            min_holdout_rows_per_species=retrain.min_holdout_rows_per_species,
            min_training_rows_per_species=retrain.min_training_rows_per_species,
        )


class InsufficientEvidenceError(TrainingDataError):
    """Too few rows to train on or to judge; ``rows_short`` says how many more each needs."""

    def __init__(self, message: str, rows_short: Mapping[str, int]) -> None:
        super().__init__(message)
        self.rows_short = dict(rows_short)


@dataclass(frozen=True, slots=True)
class Split:
    """Records split into training and held-out ones, and the species too few to judge."""

    training: pd.DataFrame
    holdout: pd.DataFrame
    not_judged: dict[str, int] = field(default_factory=dict)


def split_holdout(
    df: pd.DataFrame, rules: EvidenceRules, *, required: Collection[str] | None = None
) -> Split:
    """Hold out each species' most recent rows; ``required`` species (all when None) must have
    evidence enough, the others are judged when they have it and trained on whole otherwise.

    Records are ordered by ``measured_at`` when the column exists, else kept in their order
    (generated scenarios are in time order). Raises ``InsufficientEvidenceError`` when a required
    species or the holdout as a whole falls short.
    """
    if df.empty:
        raise InsufficientEvidenceError("there are no records to train on", {})
    ordered = df.sort_values(MEASURED_AT, kind="stable") if MEASURED_AT in df.columns else df
    ordered = ordered.reset_index(drop=True)
    counts = ordered[SPECIES].value_counts().sort_index()
    needed = rules.rows_per_species
    judged = {str(s): int(n) for s, n in counts.items() if n >= needed}
    short = {str(s): int(n) for s, n in counts.items() if n < needed}
    must = set(short) if required is None else set(short) & set(required)
    if must:
        listed = ", ".join(f"{s} {short[s]} rows" for s in sorted(must))
        raise InsufficientEvidenceError(
            f"too few rows to train on and judge ({listed}): each species needs {needed} "
            f"({rules.min_training_rows_per_species} to train on, at least "
            f"{rules.min_holdout_rows_per_species} to hold out)",
            {s: needed - short[s] for s in must},
        )
    held = _held_per_species(judged, rules)
    total = sum(held.values())
    if total < rules.min_holdout_rows:
        rows = sum(judged.values())
        raise InsufficientEvidenceError(
            f"{rows} rows of species with evidence enough hold out {total}, fewer than the "
            f"minimum of {rules.min_holdout_rows} held-out rows",
            {"all": _rows_short_overall(judged, rules)},
        )
    # Within a species, the most recent rows are held out: position from the end of its rows.
    from_end = ordered.groupby(SPECIES, sort=False).cumcount(ascending=False)
    limit = ordered[SPECIES].map(held).fillna(0).astype(int)
    in_holdout = (from_end < limit).to_numpy()
    return Split(
        training=ordered.loc[~in_holdout].reset_index(drop=True),
        holdout=ordered.loc[in_holdout].reset_index(drop=True),
        not_judged=short,
    )


def check_holdout(species: pd.Series, rules: EvidenceRules) -> None:
    """Raise ``InsufficientEvidenceError`` unless held-out fish of these ``species`` are enough to
    judge on: the per-species minimum for each species, the overall minimum for all."""
    counts = species.astype(str).value_counts().sort_index()
    least = rules.min_holdout_rows_per_species
    short = {str(s): least - int(n) for s, n in counts.items() if n < least}
    if short:
        listed = ", ".join(f"{s} {counts[s]} rows" for s in short)
        raise InsufficientEvidenceError(
            f"too few fish to judge on ({listed}): each species needs {least}", short
        )
    if len(species) < rules.min_holdout_rows:
        raise InsufficientEvidenceError(
            f"{len(species)} fish are fewer than the minimum of {rules.min_holdout_rows} "
            "to judge on",
            {"all": rules.min_holdout_rows - len(species)},
        )


def _held_per_species(judged: Mapping[str, int], rules: EvidenceRules) -> dict[str, int]:
    """Rows held out per species: its share, raised in proportion to meet the overall minimum
    as far as each species' training minimum allows."""
    held = {s: rules.rows_to_judge(n) for s, n in judged.items()}
    rows = sum(judged.values())
    if rows and sum(held.values()) < rules.min_holdout_rows:
        for species, n in judged.items():
            wanted = math.ceil(rules.min_holdout_rows * n / rows)
            spare = n - rules.min_training_rows_per_species
            held[species] = max(held[species], min(wanted, spare))
    return held


def _rows_short_overall(judged: Mapping[str, int], rules: EvidenceRules) -> int:
    rows = sum(judged.values())
    target = rules.min_holdout_rows + rules.min_training_rows_per_species * max(len(judged), 1)
    return max(target - rows, 1)


@dataclass(frozen=True, slots=True)
class PairedTest:
    """A one-sided Wilcoxon signed-rank test that the candidate errs less, fish by fish."""

    statistic: float
    p_value: float
    n: int


def paired_test(candidate: FloatArray, champion: FloatArray) -> PairedTest:
    """Test per-fish errors of the candidate against the champion's on the same fish.

    Fish on which both err exactly alike carry no evidence either way and are dropped (the
    Wilcoxon convention); when no fish is left there is no evidence of a gain (p = 1).
    """
    if candidate.shape != champion.shape:
        raise ValueError(f"need paired errors, got {candidate.shape} and {champion.shape}")
    differs = candidate != champion
    if not differs.any():
        return PairedTest(statistic=0.0, p_value=1.0, n=int(candidate.size))
    result = wilcoxon(candidate[differs], champion[differs], alternative="less")
    return PairedTest(
        statistic=float(result.statistic), p_value=float(result.pvalue), n=int(candidate.size)
    )


@dataclass(frozen=True, slots=True)
class Evidence:
    """Candidate and champion measured on the same held-out fish, overall and per species."""

    n: int
    n_by_species: dict[str, int]
    candidate_mre_by_species: dict[str, float]
    champion_mre_by_species: dict[str, float] | None
    test: PairedTest | None
    not_judged: dict[str, int] = field(default_factory=dict)


def gather_evidence(
    species: pd.Series,
    candidate_errors: FloatArray,
    champion_errors: FloatArray | None,
    not_judged: Mapping[str, int] | None = None,
) -> Evidence:
    """Per-species counts and mean relative errors, and the paired test when there is a
    champion; ``species`` and the error arrays are aligned fish by fish."""
    names = species.astype(str).to_numpy()
    groups = sorted(set(names))

    def by_species(errors: FloatArray) -> dict[str, float]:
        return {s: float(np.mean(errors[names == s])) for s in groups}

    return Evidence(
        n=len(names),
        n_by_species={s: int(np.sum(names == s)) for s in groups},
        candidate_mre_by_species=by_species(candidate_errors),
        champion_mre_by_species=None if champion_errors is None else by_species(champion_errors),
        test=None if champion_errors is None else paired_test(candidate_errors, champion_errors),
        not_judged=dict(not_judged or {}),
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    """The policy's answer, with a reason a person can read in the registry."""

    decision: Decision
    reason: str

    @property
    def promote(self) -> bool:
        """Whether the candidate goes to production."""
        return self.decision in (Decision.PROMOTED, Decision.FORCED)


def decide(
    candidate: Metrics,
    champion: Metrics | None,
    *,
    margin: float,
    alpha: float,
    test: PairedTest | None = None,
    champion_version: str | None = None,
    champion_error: str | None = None,
) -> Verdict:
    """Judge a candidate against the champion, both measured on the same held-out fish.

    ``champion`` is None when nothing is in production, or when the champion could not score
    the holdout at all (``champion_error`` then says why). With a champion, ``test`` is the
    paired test of their per-fish errors; without one the candidate cannot win.
    """
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    values = (candidate.mae, candidate.rmse, candidate.mean_relative_error)
    if candidate.n < 1 or not all(math.isfinite(v) for v in values):
        return Verdict(Decision.REJECTED, f"candidate metrics are unusable: {candidate}")
    ours = candidate.mean_relative_error
    if champion is None:
        if champion_error is not None:
            return Verdict(
                Decision.PROMOTED,
                f"champion {_name(champion_version)} could not score the holdout "
                f"({champion_error}); candidate mean relative error {ours:.4f} on "
                f"{candidate.n} held-out fish",
            )
        return Verdict(
            Decision.PROMOTED,
            f"no model in production; candidate mean relative error {ours:.4f} on "
            f"{candidate.n} held-out fish",
        )
    theirs = champion.mean_relative_error
    champ = _name(champion_version)
    beats_margin = ours < theirs * (1 - margin)
    significant = test is not None and test.p_value < alpha
    paired = (
        f"Wilcoxon signed-rank p = {test.p_value:.3g}" if test is not None else "no paired test"
    )
    if beats_margin and significant:
        gain = (theirs - ours) / theirs if theirs > 0 else 0.0
        return Verdict(
            Decision.PROMOTED,
            f"candidate mean relative error {ours:.4f} is {gain:.1%} below champion {champ}'s "
            f"{theirs:.4f} (margin {margin:.0%}) and lower fish by fish ({paired} < {alpha:g}) "
            f"on {candidate.n} held-out fish",
        )
    failures = []
    if not beats_margin:
        failures.append(
            f"candidate mean relative error {ours:.4f} is not at least {margin:.0%} below "
            f"champion {champ}'s {theirs:.4f}"
        )
    if not significant:
        failures.append(f"the fish-by-fish gain is not significant ({paired}, alpha {alpha:g})")
    return Verdict(Decision.REJECTED, f"{'; '.join(failures)}, on {candidate.n} held-out fish")


def _name(version: str | None) -> str:
    return f"v{version}" if version else "(unknown version)"


def per_species(name: str, species: str) -> str:
    """The name of a per-species tag or metric, e.g. ``heldout_n.salmon``."""
    return f"{name}{SPECIES_SEPARATOR}{species}"


def evidence_metrics(evidence: Evidence) -> dict[str, float]:
    """The decision's figures as MLflow metrics, named like their tags."""
    values: dict[str, float] = {"heldout_n": float(evidence.n)}
    if evidence.test is not None:
        values["p_value"] = evidence.test.p_value
        values["wilcoxon_statistic"] = evidence.test.statistic
    for species, n in evidence.n_by_species.items():
        values[per_species("heldout_n", species)] = float(n)
        values[per_species("candidate_mean_relative_error", species)] = (
            evidence.candidate_mre_by_species[species]
        )
        if evidence.champion_mre_by_species is not None:
            values[per_species("champion_mean_relative_error", species)] = (
                evidence.champion_mre_by_species[species]
            )
    return values


def evidence_tags(evidence: Evidence) -> dict[str, str]:
    """The decision's figures as version tags (``none`` where there is no champion)."""
    tags = {name: repr(value) for name, value in evidence_metrics(evidence).items()}
    tags["heldout_n"] = str(evidence.n)
    for species, n in evidence.n_by_species.items():
        tags[per_species("heldout_n", species)] = str(n)
    if evidence.test is None:
        tags["p_value"] = NO_METRIC
    if evidence.not_judged:
        tags["not_judged"] = ", ".join(f"{s} ({n} rows)" for s, n in evidence.not_judged.items())
    return tags


def metric_tags(prefix: str, metrics: Metrics | None) -> dict[str, str]:
    """``{prefix}_mae``, ``{prefix}_rmse`` and ``{prefix}_mean_relative_error`` as tags, named
    like the metrics ("none" when absent)."""
    names = ("mae", "rmse", "mean_relative_error")
    if metrics is None:
        return {f"{prefix}_{name}": NO_METRIC for name in names}
    return {f"{prefix}_{name}": repr(float(getattr(metrics, name))) for name in names}


def decision_tags(verdict: Verdict) -> dict[str, str]:
    """The ``decision`` and ``decision_reason`` tags of a verdict."""
    return {"decision": verdict.decision.value, "decision_reason": verdict.reason}
