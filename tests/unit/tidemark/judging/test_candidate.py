"""What becomes of a judged candidate: in shadow when not worse, promoted at once when production
fails badly, watched when promoted without proof."""

from __future__ import annotations

import pytest

from tidemark.judging.candidate import (
    ChampionScore,
    Judgement,
    Placement,
    deserves_shadow,
    emergency_ruling,
    forced,
    place,
)
from tidemark.judging.decisions import Decision, Ruling
from tidemark.judging.promotion import Focus, HoldoutEvidence
from tidemark.modelling.metrics import Metrics
from tidemark.registry.notes import Trigger


def judgement(
    decision: Decision,
    ours: float,
    theirs: float | None,
    by_species: dict[str, tuple[float, float]] | None = None,
    harm: dict[str, float] | None = None,
    focus: str | None = None,
) -> Judgement:
    """A judgement with these mean errors, overall and per species, and the one-sided p-values
    that the candidate errs more on a species (none significant unless ``harm`` says)."""
    species = by_species or {"salmon": (ours, theirs if theirs is not None else 0.0)}
    on_focus = (
        Focus((focus,), 100, species[focus][0], species[focus][1]) if focus is not None else None
    )
    return Judgement(
        ruling=Ruling(decision, "why"),
        candidate=Metrics(mae=0.1, rmse=0.1, judged=ours, n=200),
        champion=ChampionScore(
            version="1" if theirs is not None else None,
            metrics=Metrics(mae=0.1, rmse=0.1, judged=theirs, n=200)
            if theirs is not None
            else None,
            errors=None,
            error=None,
        ),
        evidence=HoldoutEvidence(
            n=200,
            n_by_segment=dict.fromkeys(species, 100),
            candidate_error_by_segment={s: c for s, (c, _) in species.items()},
            champion_error_by_segment={s: h for s, (_, h) in species.items()},
            test=None,
            harm_p_by_segment=dict.fromkeys(species, 0.5) | (harm or {}),
            focus=on_focus,
        ),
        alpha=0.05,
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (judgement(Decision.REJECTED, 0.079, 0.080), True),  # a little better, not proven
        (judgement(Decision.REJECTED, 0.080, 0.080), True),  # equal: the live fish decide
        (judgement(Decision.REJECTED, 0.081, 0.080), False),  # worse on the holdout
        (judgement(Decision.PROMOTED, 0.050, 0.080), False),  # promoted outright already
        (judgement(Decision.REJECTED, 0.050, None), False),  # nothing to run beside
        (
            judgement(
                Decision.REJECTED, 0.07, 0.08, {"salmon": (0.05, 0.08), "perch": (0.11, 0.10)}
            ),
            False,  # better overall but worse on one species
        ),
        (
            judgement(
                Decision.REJECTED,
                0.050,
                0.056,
                {"salmon": (0.034, 0.050), "plaice": (0.063, 0.060)},
                focus="salmon",
            ),
            True,  # better on the alarm's species, a little higher on another by chance
        ),
        (
            judgement(
                Decision.REJECTED,
                0.050,
                0.056,
                {"salmon": (0.034, 0.050), "plaice": (0.063, 0.060)},
                {"plaice": 0.01},
                focus="salmon",
            ),
            False,  # significantly worse on another species
        ),
        (
            judgement(
                Decision.REJECTED,
                0.050,
                0.056,
                {"salmon": (0.052, 0.050), "plaice": (0.048, 0.060)},
                focus="salmon",
            ),
            False,  # better overall, but not on the alarm's species
        ),
        (
            judgement(
                Decision.REJECTED,
                0.057,
                0.056,
                {"salmon": (0.034, 0.050), "plaice": (0.080, 0.060)},
                focus="salmon",
            ),
            False,  # better on the alarm's species, higher overall
        ),
    ],
    ids=[
        "better",
        "equal",
        "worse",
        "promoted",
        "no-champion",
        "worse-on-a-species",
        "focus-better-another-higher-by-chance",
        "focus-better-another-significantly-worse",
        "focus-not-better",
        "focus-better-higher-overall",
    ],
)
def test_a_candidate_runs_in_shadow_only_when_rejected_for_want_of_evidence(
    case: Judgement, expected: bool
) -> None:
    assert deserves_shadow(case) is expected


def alarm(value: float) -> Trigger:
    return Trigger("error", "mean_relative_error", value, 0.10, ("salmon",))


@pytest.mark.parametrize(
    ("trigger", "case", "promoted"),
    [
        (alarm(0.25), judgement(Decision.REJECTED, 0.07, 0.08), True),
        (alarm(0.19), judgement(Decision.REJECTED, 0.07, 0.08), False),  # not twice the bar
        (alarm(0.25), judgement(Decision.REJECTED, 0.08, 0.08), False),  # no better
        (
            alarm(0.25),
            judgement(
                Decision.REJECTED,
                0.07,
                0.08,
                {"salmon": (0.05, 0.08), "perch": (0.11, 0.10)},
                {"perch": 0.004},
            ),
            False,  # significantly worse on a species
        ),
        (
            alarm(2.4),
            judgement(
                Decision.REJECTED,
                0.30,
                0.90,
                {"plaice": (0.05, 2.4), "walleye": (0.055, 0.050)},
                {"walleye": 0.2},
            ),
            True,  # cures a failing species, 10 % higher on one both know, but not significantly
        ),
        (Trigger("manual"), judgement(Decision.REJECTED, 0.07, 0.08), False),
        (alarm(0.25), judgement(Decision.PROMOTED, 0.05, 0.08), False),  # promoted anyway
    ],
    ids=[
        "emergency",
        "below-twice",
        "no-better",
        "worse-on-a-species",
        "not-significantly-higher-on-a-species",
        "manual",
        "promoted",
    ],
)
def test_an_emergency_promotes_a_candidate_that_wins_without_significance(
    trigger: Trigger, case: Judgement, promoted: bool
) -> None:
    ruling = emergency_ruling(trigger, case)
    assert (ruling is not None) is promoted
    if ruling is not None:
        assert ruling.promote
        assert ruling.reason.startswith("emergency")


@pytest.mark.parametrize(
    ("trigger", "case", "placement"),
    [
        (alarm(0.25), judgement(Decision.PROMOTED, 0.05, 0.08), Placement.PRODUCTION),
        (alarm(0.25), judgement(Decision.PROMOTED, 0.05, None), Placement.PRODUCTION),
        (alarm(0.25), judgement(Decision.REJECTED, 0.07, 0.08), Placement.WATCHED),
        (alarm(0.19), judgement(Decision.REJECTED, 0.07, 0.08), Placement.SHADOW),
        (Trigger("manual"), judgement(Decision.REJECTED, 0.08, 0.08), Placement.SHADOW),
        (alarm(0.25), judgement(Decision.REJECTED, 0.081, 0.080), Placement.REGISTRY),
        (Trigger("manual"), judgement(Decision.REJECTED, 0.05, None), Placement.REGISTRY),
    ],
    ids=["won", "no-champion", "emergency", "not-proven", "equal", "worse", "nothing-to-shadow"],
)
def test_a_judged_candidate_is_placed_by_its_ruling(
    trigger: Trigger, case: Judgement, placement: Placement
) -> None:
    placed, where = place(case, trigger)
    assert where is placement
    assert placed.ruling.promote is where.serves
    # Only the emergency path overrules the paired test's ruling.
    assert (placed.ruling == case.ruling) is (where is not Placement.WATCHED)


def test_a_forced_promotion_is_watched_when_it_replaces_a_version() -> None:
    ruling, where = forced("3")
    assert (ruling.decision, where) == (Decision.FORCED, Placement.WATCHED)
    assert ruling.reason == "forced over the policy (production was v3)"
    assert forced(None)[1] is Placement.PRODUCTION
