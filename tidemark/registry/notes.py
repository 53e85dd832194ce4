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
from tidemark.modelling.metrics import JUDGED_METRIC, Metrics
from tidemark.project.spec import Project
from tidemark.schemas import RetrainReason

BOOTSTRAP = RetrainReason.BOOTSTRAP.value


def model_description(project: Project) -> str:
    """The registered model's description: what it predicts, from what, and the loop around it."""
    target = project.target
    unit = f" ({target.unit})" if target.unit else ""
    features = ", ".join(f.name for f in project.features)
    segment = (
        f" A law per {project.segment}, shrunk toward a shared law that also answers for a "
        f"{project.segment} never seen (flagged `{project.segment}_known: false`)."
        if project.segment is not None and project.model.factory is None
        else ""
    )
    model = f"`{project.model.factory}`" if project.model.factory else "the platform's default"
    per = f"per {project.segment}" if project.segment is not None else "overall"
    return f"""\
Predicts {target.name}{unit} from {features}, with {model} model of the project
`{project.name}`.{segment}

**The loop.** Scorers predict every item with the version the `production` alias points at;
the joiner pairs each prediction with its truth; the monitor judges windows of these pairs
(error {per}, drift) and triggers the Prefect deployment `retrain` when an incident opens. A
retrain trains a candidate on the recent records only when there is evidence enough (rows to
train on and to judge, {per}), judges candidate and production on the same held-out items (a
one-sided Wilcoxon signed-rank test on their per-item errors, plus a margin on the mean),
registers the candidate either way, and promotes it only when it wins. Each version's
description gives its trigger, its evidence and the decision; its tags and metrics give the
same figures for comparison.
"""


@dataclass(frozen=True, slots=True)
class Trigger:
    """Why a model was trained: the reason and, when an alarm fired, what it measured."""

    reason: str
    metric: str | None = None
    metric_value: float | None = None
    threshold: float | None = None
    segments: tuple[str, ...] = ()

    def summary(self) -> str:
        """``error 0.21 > 0.10``, ``drift 0.67``, ``manual``."""
        text = self.reason
        if self.metric_value is not None:
            text += f" {self.metric_value:.2f}"
            if self.threshold is not None:
                text += f" > {self.threshold:.2f}"
        if self.segments:
            text += f" ({', '.join(self.segments)})"
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
            "trigger_segments": ", ".join(self.segments) or None,
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
    """The version's description in Markdown: decision, trigger, evidence, per-segment errors."""
    champ = f"champion v{champion_version}" if champion_version else "champion"
    if evidence.test is None:
        test = "no paired test (no champion scored these items)"
    else:
        test = (
            f"one-sided Wilcoxon signed-rank on per-item errors: statistic "
            f"{evidence.test.statistic:g}, p = {evidence.test.p_value:.3g} (alpha {alpha:g})"
        )
    held = ", ".join(f"{s} {n}" for s, n in evidence.n_by_segment.items())
    trained = ", ".join(f"{s} {n}" for s, n in training_rows.items())
    lines = [
        f"**Decision: {verdict.decision.value}.** {verdict.reason}.",
        "",
        f"- **Trigger:** {trigger.summary()}",
        f"- **Evidence:** {evidence.n} held-out items ({held}); {test}; margin {margin:.0%}",
        f"- **Trained on:** {sum(training_rows.values())} records ({trained}) from `{source}`",
    ]
    if data_windows:
        lines.append("- **Records per segment (where they begin, and why):**")
        lines += [f"  - {segment}: {text}" for segment, text in sorted(data_windows.items())]
    if evidence.not_judged:
        short = ", ".join(f"{s} ({n} rows)" for s, n in evidence.not_judged.items())
        lines.append(f"- **Trained on but too few to judge:** {short}")
    lines += [
        "",
        f"| segment | held out | candidate error | {champ} error |",
        "|---|---:|---:|---:|",
        f"| **all** | {evidence.n} | {candidate.judged:.4f} | "
        f"{_mre(champion.judged if champion else None)} |",
    ]
    for segment, n in evidence.n_by_segment.items():
        theirs = (evidence.champion_error_by_segment or {}).get(segment)
        lines.append(
            f"| {segment} | {n} | {evidence.candidate_error_by_segment[segment]:.4f} | "
            f"{_mre(theirs)} |"
        )
    lines += ["", f"Error: {JUDGED_METRIC[candidate.kind].replace('_', ' ')}."]
    return "\n".join(lines) + "\n"


def _mre(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
