"""What a registered version says about itself: why it was trained, on what evidence it was
judged, and what was decided, as the run's name and the version's Markdown description.

The MLflow UI shows a version's description at the top of its page and cuts tag values short
in its lists, so the description carries the whole story and the run name its headline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tidemark.judging.decisions import Ruling
from tidemark.judging.promotion import HoldoutEvidence
from tidemark.model import Metrics
from tidemark.schemas import RetrainReason

BOOTSTRAP = RetrainReason.BOOTSTRAP.value

MODEL_DESCRIPTION = """\
Predicts a fish's weight (kg) from its species, length and height (cm): a power law per species,
shrunk toward a shared law that also answers for species never seen (flagged
`species_known: false`).

**The loop.** Scorers predict every fish on the line with the version the `production` alias
points at; the joiner pairs each prediction with the scale's weight; the monitor judges windows
of these pairs (error per species, drift) and triggers the Prefect deployment `retrain` when
an incident opens. A retrain trains a candidate on the recent records only when there is
evidence enough (rows to train on and to judge, per species), judges candidate and production
on the same held-out fish (a one-sided Wilcoxon signed-rank test on their per-fish relative
errors, plus a margin on the mean), registers the candidate either way, and promotes it only
when it wins. Each version's description gives its trigger, its evidence and the decision;
its tags and metrics give the same figures for comparison.
"""


@dataclass(frozen=True, slots=True)
class Trigger:
    """Why a model was trained: the reason and, when an alarm fired, what it measured."""

    reason: str
    metric: str | None = None
    metric_value: float | None = None
    threshold: float | None = None
    species: tuple[str, ...] = ()

    def summary(self) -> str:
        """``error 0.21 > 0.10``, ``drift 0.67``, ``manual``."""
        text = self.reason
        if self.metric_value is not None:
            text += f" {self.metric_value:.2f}"
            if self.threshold is not None:
                text += f" > {self.threshold:.2f}"
        if self.species:
            text += f" ({', '.join(self.species)})"
        return text

    def run_name(self, champion_version: str | None) -> str:
        """``bootstrap``, or ``retrain v7 · error 0.21 > 0.10`` (v7: the model retrained)."""
        if self.reason == BOOTSTRAP:
            return BOOTSTRAP
        retrained = f"retrain v{champion_version}" if champion_version else "retrain"
        return f"{retrained} · {self.summary()}"

    def tags(self) -> dict[str, str]:
        """The alarm's figures as tags, those it has."""
        values = {
            "trigger_metric": self.metric,
            "trigger_metric_value": None if self.metric_value is None else repr(self.metric_value),
            "trigger_threshold": None if self.threshold is None else repr(self.threshold),
            "trigger_species": ", ".join(self.species) or None,
        }
        return {name: value for name, value in values.items() if value is not None}


def describe_version(
    *,
    trigger: Trigger,
    verdict: Ruling,
    evidence: HoldoutEvidence,
    candidate: Metrics,
    champion: Metrics | None,
    champion_version: str | None,
    margin: float,
    alpha: float,
    training_rows: Mapping[str, int],
    source: str,
    data_windows: Mapping[str, str] | None = None,
) -> str:
    """The version's description in Markdown: decision, trigger, evidence, per-species errors."""
    champ = f"champion v{champion_version}" if champion_version else "champion"
    if evidence.test is None:
        test = "no paired test (no champion scored these fish)"
    else:
        test = (
            f"one-sided Wilcoxon signed-rank on per-fish relative errors: statistic "
            f"{evidence.test.statistic:g}, p = {evidence.test.p_value:.3g} (alpha {alpha:g})"
        )
    held = ", ".join(f"{s} {n}" for s, n in evidence.n_by_species.items())
    trained = ", ".join(f"{s} {n}" for s, n in training_rows.items())
    lines = [
        f"**Decision: {verdict.decision.value}.** {verdict.reason}.",
        "",
        f"- **Trigger:** {trigger.summary()}",
        f"- **Evidence:** {evidence.n} held-out fish ({held}); {test}; margin {margin:.0%}",
        f"- **Trained on:** {sum(training_rows.values())} records ({trained}) from `{source}`",
    ]
    if data_windows:
        lines.append("- **Records per species (where they begin, and why):**")
        lines += [f"  - {species}: {text}" for species, text in sorted(data_windows.items())]
    if evidence.not_judged:
        short = ", ".join(f"{s} ({n} rows)" for s, n in evidence.not_judged.items())
        lines.append(f"- **Trained on but too few to judge:** {short}")
    lines += [
        "",
        f"| species | held out | candidate MRE | {champ} MRE |",
        "|---|---:|---:|---:|",
        f"| **all** | {evidence.n} | {candidate.mean_relative_error:.4f} | "
        f"{_mre(champion.mean_relative_error if champion else None)} |",
    ]
    for species, n in evidence.n_by_species.items():
        theirs = (evidence.champion_mre_by_species or {}).get(species)
        lines.append(
            f"| {species} | {n} | {evidence.candidate_mre_by_species[species]:.4f} | "
            f"{_mre(theirs)} |"
        )
    lines += ["", "MRE: mean relative error, mean of |predicted - actual| / actual."]
    return "\n".join(lines) + "\n"


def _mre(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
