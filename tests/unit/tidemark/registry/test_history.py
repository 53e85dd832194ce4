"""The production history: moves recorded as tags, read back as intervals and a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from tidemark.registry.history import (
    HISTORY_HEADING,
    HowItCame,
    MoveFigures,
    ProductionMove,
    SegmentFigures,
    history_table,
    live_figures,
    move_tag,
    moves_of,
    production_intervals,
    with_history,
)
from tidemark.schemas import ModelDecision, ModelEvent, ShadowEvidence, ShadowVerdict

T0 = datetime(2026, 12, 2, 14, 5, tzinfo=UTC)


def move(version: str, previous: str | None, minutes: int, how: HowItCame) -> ProductionMove:
    return ProductionMove(
        version=version,
        previous=previous,
        at=T0 + timedelta(minutes=minutes),
        how=how,
        reason=f"{how.value} of v{version}",
        figures=MoveFigures(evidence="holdout", n=120, p_value=0.003, incoming_error=0.05),
    )


def as_tags(*moves: ProductionMove) -> dict[str, str]:
    return {move_tag(m.at): m.model_dump_json() for m in moves}


def test_four_moves_make_four_intervals_in_order_each_ended_by_the_next() -> None:
    moves = [
        move("1", None, 0, HowItCame.BOOTSTRAP),
        move("2", "1", 10, HowItCame.EVIDENCE),
        move("3", "2", 20, HowItCame.FORCED),
        move("2", "3", 30, HowItCame.ROLLBACK),
    ]
    # Tags come back from the registry in any order: the keys sort them.
    tags = dict(reversed(list(as_tags(*moves).items())))
    intervals = production_intervals(moves_of(tags))
    assert [(i.version, i.came.how) for i in intervals] == [
        ("1", HowItCame.BOOTSTRAP),
        ("2", HowItCame.EVIDENCE),
        ("3", HowItCame.FORCED),
        ("2", HowItCame.ROLLBACK),
    ]
    assert [i.end for i in intervals] == [m.at for m in moves[1:]] + [None]
    assert intervals[2].why_left == "rolled back to v2: rollback of v2"
    assert intervals[0].why_left == "replaced by v2 (evidence): evidence of v2"
    assert intervals[-1].serving
    assert intervals[-1].why_left is None


def test_a_move_recorded_twice_in_a_row_is_one_arrival() -> None:
    # A promotion whose alias move failed after its record was written, then retried.
    first, again = move("2", "1", 10, HowItCame.EVIDENCE), move("2", "1", 11, HowItCame.EVIDENCE)
    intervals = production_intervals([move("1", None, 0, HowItCame.BOOTSTRAP), first, again])
    assert [i.version for i in intervals] == ["1", "2"]
    assert intervals[1].start == first.at


def test_unreadable_and_foreign_tags_do_not_hide_the_history() -> None:
    tags = as_tags(move("1", None, 0, HowItCame.BOOTSTRAP))
    tags[move_tag(T0 + timedelta(minutes=1))] = "{not json"
    tags["production_history"] = '["1"]'
    assert [m.version for m in moves_of(tags)] == ["1"]


def test_move_tags_sort_by_time_to_the_microsecond() -> None:
    a, b = T0, T0 + timedelta(microseconds=1)
    assert move_tag(a) < move_tag(b)
    assert move_tag(a.astimezone(timezone(timedelta(hours=2)))) == move_tag(a)


def test_the_table_ends_the_description_and_replaces_an_older_one() -> None:
    intervals = production_intervals(
        [move("1", None, 0, HowItCame.BOOTSTRAP), move("2", "1", 10, HowItCame.SHADOW_WIN)]
    )
    text = with_history("Predicts things.", intervals[:1])
    text = with_history(text, intervals)
    assert text.count(HISTORY_HEADING) == 1
    assert text.startswith("Predicts things.\n\n" + HISTORY_HEADING)
    rows = history_table(intervals).splitlines()
    assert rows[4].startswith("| v2 | 2026-12-02 14:15:00 UTC | serving | shadow_win |")
    assert "holdout n = 120, p = 0.003" in rows[4]
    assert rows[5].startswith("| v1 | 2026-12-02 14:05:00 UTC | 2026-12-02 14:15:00 UTC |")
    assert with_history(text, []) == "Predicts things.\n"


def test_a_rollback_on_live_evidence_brings_the_watching_version_in() -> None:
    decision = ModelDecision(
        kind=ModelEvent.ROLLBACK,
        model_name="m",
        champion_version="3",
        challenger_version="2",
        verdict=ShadowVerdict.PROMOTE,
        n=400,
        statistic=5.1,
        p_value=0.004,
        alpha=0.05,
        champion_mre=0.2,
        challenger_mre=0.05,
        segments={
            "a": ShadowEvidence(
                n=400,
                champion_mre=0.2,
                challenger_mre=0.05,
                statistic=5.1,
                p_value=0.004,
                alpha=0.05,
            )
        },
        reason="v2 better live",
        decided_by="monitor",
        decided_at=T0,
    )
    figures = live_figures(decision, rollback=True)
    assert (figures.incoming_error, figures.outgoing_error) == (0.05, 0.2)
    assert figures.segments == {
        "a": SegmentFigures(n=400, incoming_error=0.05, outgoing_error=0.2, p_value=0.004)
    }
    assert figures.summary() == "live n = 400, p = 0.004, error 0.0500 vs 0.2000"
