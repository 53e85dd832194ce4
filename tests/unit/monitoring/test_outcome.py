"""What a retrain run decided, from the tags of the version it registered."""

from __future__ import annotations

from monitoring.outcome import outcome_of_tags
from tidemark.judging.decisions import Decision


def test_a_rejected_version_states_the_achievable_error_per_species() -> None:
    outcome = outcome_of_tags(
        {
            "decision": "rejected",
            "candidate_mean_relative_error.walleye": "0.095",
            "candidate_mean_relative_error.salmon": "0.031",
            "candidate_mean_relative_error": "0.05",
            "flow_run_id": "abc",
        }
    )
    assert outcome is not None
    assert outcome.decision is Decision.REJECTED
    assert outcome.achievable == {"walleye": 0.095, "salmon": 0.031}


def test_every_decision_of_the_flow_is_read() -> None:
    for decision in ("promoted", "rejected", "forced", "insufficient_evidence"):
        outcome = outcome_of_tags({"decision": decision})
        assert outcome is not None
        assert outcome.decision.value == decision
        assert outcome.achievable == {}


def test_an_unknown_decision_is_no_outcome() -> None:
    assert outcome_of_tags({}) is None
    assert outcome_of_tags({"decision": "maybe"}) is None


def test_unreadable_per_species_errors_are_left_out() -> None:
    outcome = outcome_of_tags(
        {
            "decision": "rejected",
            "candidate_mean_relative_error.walleye": "none",
            "candidate_mean_relative_error.pike": "-1",
            "candidate_mean_relative_error.perch": "nan",
            "candidate_mean_relative_error.salmon": "0.04",
        }
    )
    assert outcome is not None
    assert outcome.achievable == {"salmon": 0.04}


def test_an_absolute_errors_project_states_its_achievable_error_too() -> None:
    outcome = outcome_of_tags(
        {
            "decision": "rejected",
            "candidate_mean_absolute_error.north": "1.25",
            "candidate_mean_absolute_error": "1.5",
        }
    )
    assert outcome is not None
    assert outcome.achievable == {"north": 1.25}
