"""A judgement as the registry keeps it: version tags and run metrics, named alike.

Tags are strings (``none`` where a figure is absent); metrics are the same figures as numbers,
so that MLflow's compare view lines versions up. The monitor reads a retrain's decision back
from these tags (``monitoring.outcome``), so their names are a contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tidemark.judging.decisions import Ruling

if TYPE_CHECKING:
    from tidemark.judging.promotion import HoldoutEvidence
    from tidemark.modelling.metrics import Metrics

NO_METRIC = "none"
# Per-segment tags and metrics are named "<name>.<segment>", e.g. heldout_n.north; the errors
# after the error judged, e.g. candidate_mean_relative_error.north.
SEGMENT_SEPARATOR = "."
# The Prefect flow run that registered a version: how the monitor finds what its retrain decided.
FLOW_RUN_TAG = "flow_run_id"


def per_segment(name: str, segment: str) -> str:
    """The name of a per-segment tag or metric, e.g. ``heldout_n.north``."""
    return f"{name}{SEGMENT_SEPARATOR}{segment}"


def evidence_metrics(evidence: HoldoutEvidence) -> dict[str, float]:
    """The decision's figures as MLflow metrics, named like their tags."""
    values: dict[str, float] = {"heldout_n": float(evidence.n)}
    if evidence.test is not None:
        values["p_value"] = evidence.test.p_value
        values["wilcoxon_statistic"] = evidence.test.statistic
    for segment, n in evidence.n_by_segment.items():
        values[per_segment("heldout_n", segment)] = float(n)
        values[per_segment(f"candidate_{evidence.judged_name}", segment)] = (
            evidence.candidate_error_by_segment[segment]
        )
        if evidence.champion_error_by_segment is not None:
            values[per_segment(f"champion_{evidence.judged_name}", segment)] = (
                evidence.champion_error_by_segment[segment]
            )
        if segment in evidence.harm_p_by_segment:
            # The one-sided p-value that the candidate errs more on this segment.
            values[per_segment("harm_p_value", segment)] = evidence.harm_p_by_segment[segment]
    if evidence.focus is not None:
        values["focus_heldout_n"] = float(evidence.focus.n)
    return values


def evidence_tags(evidence: HoldoutEvidence) -> dict[str, str]:
    """The decision's figures as version tags (``none`` where there is no champion)."""
    tags = {name: repr(value) for name, value in evidence_metrics(evidence).items()}
    tags["heldout_n"] = str(evidence.n)
    for segment, n in evidence.n_by_segment.items():
        tags[per_segment("heldout_n", segment)] = str(n)
    if evidence.test is None:
        tags["p_value"] = NO_METRIC
    if evidence.not_judged:
        tags["not_judged"] = ", ".join(f"{s} ({n} rows)" for s, n in evidence.not_judged.items())
    return tags


def metric_tags(prefix: str, metrics: Metrics | None) -> dict[str, str]:
    """``{prefix}_mae``, ``{prefix}_rmse`` and the judged error (``{prefix}_mean_relative_error``
    or ``{prefix}_mean_absolute_error``) as tags, named like the metrics ("none" when
    absent)."""
    if metrics is None:
        return {f"{prefix}_{name}": NO_METRIC for name in ("mae", "rmse", "mean_relative_error")}
    figures = metrics.as_dict()
    figures.pop("n")
    return {f"{prefix}_{name}": repr(value) for name, value in figures.items()}


def decision_tags(ruling: Ruling) -> dict[str, str]:
    """The ``decision`` and ``decision_reason`` tags of a ruling."""
    return {"decision": ruling.decision.value, "decision_reason": ruling.reason}
