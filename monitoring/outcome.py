"""What an ended retrain run decided, read from the tags of the version it registered.

The registry, not Prefect, is where the monitor reads it. A flow run's return value reaches
Prefect's API only when the flow persists its result, and then as a pickle (or typed JSON) in
the result storage of the machine that ran it: the monitor would need that storage mounted and
the flows' classes importable, which the layers forbid. The version's tags live on the MLflow
server that every process already reads, are plain strings, survive restarts and are what the
MLflow UI shows.

The contract with the retrain flow (``flows.retrain``): every version it registers carries

- ``flow_run_id``: the id of the Prefect flow run that registered it (the link);
- ``decision``: promoted, rejected, forced or insufficient_evidence;
- ``candidate_mean_relative_error.<segment>`` (``candidate_mean_absolute_error.<segment>`` for
  a project judged by its absolute error): the candidate's mean judged error on its held-out
  items of that segment (what the data allow: the achievable error).

A run that ended and registered no version gave no verdict (too little evidence to train or
judge, or it failed): the monitor then accumulates the incident's evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from monitoring.policy import RunOutcome
from tidemark.config import Settings
from tidemark.judging.decisions import Decision
from tidemark.judging.tags import FLOW_RUN_TAG, per_segment
from tidemark.modelling.metrics import JUDGED_METRIC
from tidemark.registry.reader import RegistryReader

DECISION_TAG = "decision"
# A version carries the per-segment errors of the one error its project judges.
CANDIDATE_ERRORS = tuple(per_segment(f"candidate_{name}", "") for name in JUDGED_METRIC.values())


def outcome_of_tags(tags: Mapping[str, str]) -> RunOutcome | None:
    """The outcome that a version's tags state, or None when they state no known decision.

    Per-segment errors that are not finite non-negative numbers are left out.
    """
    try:
        decision = Decision(tags.get(DECISION_TAG, ""))
    except ValueError:
        return None
    achievable: dict[str, float] = {}
    for name, text in tags.items():
        prefix = next((p for p in CANDIDATE_ERRORS if name.startswith(p)), None)
        segment = name.removeprefix(prefix) if prefix else ""
        if not segment:
            continue
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            achievable[segment] = value
    return RunOutcome(decision, achievable)


def find_outcome(settings: Settings, flow_run_id: str) -> RunOutcome | None:
    """The outcome of the retrain run ``flow_run_id`` from the version it registered, if any.

    Raises ``RegistryUnavailableError`` when the registry cannot be read.
    """
    with RegistryReader(settings.registry) as registry:
        versions = registry.versions_tagged(FLOW_RUN_TAG, flow_run_id)
    return outcome_of_tags(versions[0].tags) if versions else None
