"""The simulator's schedule and records: what it sends, in which order, with which timestamps,
and that every record is one the project's contracts accept."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streaming.simulator import SimulationOptions, Simulator, encode, scenario_rows
from tidemark.project.contracts import Contracts, Message
from tidemark.project.spec import ProjectError, load_project
from tidemark.simulation.generate import Row
from tidemark.simulation.library import load_scenario
from tidemark.simulation.replay import csv_rows

REPO = Path(__file__).parents[3]
FISH = Contracts(load_project(REPO / "projects" / "fish-weight.toml"))
PENGUINS = Contracts(load_project(REPO / "projects" / "penguin-mass.toml"))
START = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def _fish(count: int) -> list[Row]:
    return [
        Row(
            "p",
            f"fish-{i}",
            {"species": "salmon", "length_cm": 70.0 + i % 5, "height_cm": 17.0},
            4.0 + i % 3,
        )
        for i in range(count)
    ]


class Sent:
    """What a simulator sent, as the bytes on the topics, in order."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes]] = []

    def to(self, role: str) -> object:
        return lambda message: self.records.append((role, encode(message)))

    def of(self, role: str) -> list[bytes]:
        return [raw for kind, raw in self.records if kind == role]


def _run(
    count: int, contracts: Contracts = FISH, rows: list[Row] | None = None, **options: object
) -> tuple[Sent, Simulator]:
    sent = Sent()
    simulator = Simulator(
        contracts,
        _fish(count) if rows is None else rows,
        SimulationOptions.model_validate(options),
        sent.to("input"),  # type: ignore[arg-type]
        sent.to("truth"),  # type: ignore[arg-type]
        sleep=lambda _: None,
    )
    simulator.run()
    return sent, simulator


def test_event_time_truths_follow_their_input_after_the_delay() -> None:
    sent, simulator = _run(10, event_time_start=START, event_interval_s=1.0, label_delay_s=2.5)
    items = [FISH.decode_input(raw) for raw in sent.of("input")]
    truths = [FISH.decode_truth(raw) for raw in sent.of("truth")]
    assert [i.at for i in items] == [START + timedelta(seconds=i) for i in range(10)]
    assert len(truths) == 10
    by_key = {i.key: i for i in items}
    for truth in truths:
        assert truth.at == by_key[truth.key].at + timedelta(seconds=2.5)
    # Every record is sent once its event time has come: the stream is ordered by event time.
    times = [
        FISH.decode_input(raw).at if role == "input" else FISH.decode_truth(raw).at
        for role, raw in sent.records
    ]
    assert times == sorted(times)
    assert simulator.stats.inputs == 10
    assert simulator.stats.truths == 10


def test_the_fish_records_keep_their_bytes() -> None:
    # The bytes the fish line sent before the fish were a project (tidemark.schemas' fish
    # messages, issue 23): consumers of fish.measurements and fish.weights see no change.
    sent, _ = _run(3, event_time_start=START, label_delay_s=5.0)
    assert sent.of("input") == [
        b'{"fish_id":"fish-0","species":"salmon","length_cm":70.0,"height_cm":17.0,'
        b'"measured_at":"2026-11-25T08:00:00Z"}',
        b'{"fish_id":"fish-1","species":"salmon","length_cm":71.0,"height_cm":17.0,'
        b'"measured_at":"2026-11-25T08:00:01Z"}',
        b'{"fish_id":"fish-2","species":"salmon","length_cm":72.0,"height_cm":17.0,'
        b'"measured_at":"2026-11-25T08:00:02Z"}',
    ]
    assert sent.of("truth") == [
        b'{"fish_id":"fish-0","species":"salmon","weight_kg":4.0,"weighed_at":"2026-11-25T08:00:05Z"}',
        b'{"fish_id":"fish-1","species":"salmon","weight_kg":5.0,"weighed_at":"2026-11-25T08:00:06Z"}',
        b'{"fish_id":"fish-2","species":"salmon","weight_kg":6.0,"weighed_at":"2026-11-25T08:00:07Z"}',
    ]


def test_truths_carry_the_target_and_the_truth_fields() -> None:
    sent, _ = _run(3, event_time_start=START)
    truths = {t.key: t for t in map(FISH.decode_truth, sent.of("truth"))}
    for row in _fish(3):
        assert truths[row.key].value == row.target
        assert truths[row.key].fields["species"] == "salmon"


def test_a_penguin_not_sexed_is_sent_without_sex_and_every_record_parses() -> None:
    rows = list(itertools.islice(scenario_rows(load_scenario(PENGUINS.project), 2, False), 300))
    assert any("sex" not in row.features for row in rows)
    sent, simulator = _run(0, PENGUINS, rows, event_time_start=START, label_delay_s=60)
    items = [PENGUINS.decode_input(raw) for raw in sent.of("input")]
    assert [i.key for i in items] == [r.key for r in rows]
    for item, row in zip(items, rows, strict=True):
        assert dict(item.fields) == {
            "penguin_id": row.key,
            **row.features,
            "measured_at": item.at,
        }
    unsexed = next(
        raw for raw, row in zip(sent.of("input"), rows, strict=True) if "sex" not in row.features
    )
    assert b'"sex"' not in unsexed
    truths = [PENGUINS.decode_truth(raw) for raw in sent.of("truth")]
    assert [t.value for t in truths] == [r.target for r in rows]
    assert simulator.stats.truths == 300


def test_lost_truths_are_a_seeded_fraction() -> None:
    first, simulator = _run(2_000, event_time_start=START, missing_truth_fraction=0.25, seed=3)
    again, _ = _run(2_000, event_time_start=START, missing_truth_fraction=0.25, seed=3)
    assert first.of("truth") == again.of("truth")
    assert 0.2 < simulator.stats.truths_dropped / 2_000 < 0.3
    assert simulator.stats.truths + simulator.stats.truths_dropped == 2_000


def test_a_row_without_a_target_sends_no_truth() -> None:
    rows = [Row("csv", "a", _fish(1)[0].features, None), *_fish(2)]
    sent, simulator = _run(0, rows=rows, event_time_start=START)
    assert len(sent.of("input")) == 3
    assert [FISH.decode_truth(raw).key for raw in sent.of("truth")] == ["fish-0", "fish-1"]
    assert simulator.stats.truths_unknown == 1


def test_limit_stops_early() -> None:
    sent, simulator = _run(100, event_time_start=START, limit=7)
    assert simulator.stats.inputs == 7
    assert len(sent.of("input")) == 7


def test_real_time_stamps_come_from_the_clock_and_truths_wait_for_it() -> None:
    now = [START]

    def sleep(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)

    sent = Sent()
    options = SimulationOptions(label_delay_s=3.0)
    Simulator(
        FISH,
        _fish(2),
        options,
        sent.to("input"),  # type: ignore[arg-type]
        sent.to("truth"),  # type: ignore[arg-type]
        clock=lambda: now[0],
        sleep=sleep,
    ).run()
    assert {FISH.decode_input(raw).at for raw in sent.of("input")} == {START}
    assert {FISH.decode_truth(raw).at for raw in sent.of("truth")} == {START + timedelta(seconds=3)}
    assert now[0] >= START + timedelta(seconds=3)


def test_looping_a_scenario_never_repeats_a_key() -> None:
    scenario = load_scenario(FISH.project)
    rows = itertools.islice(scenario_rows(scenario, 0, True), scenario.count + 10)
    keys = [r.key for r in rows]
    assert len(set(keys)) == len(keys)


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fish.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_replays_with_keys_from_the_file_and_the_seed(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "species,length_cm,height_cm,weight_kg\nSalmon,70.5,17,4.1\n walleye ,50,11.2,\n",
    )
    rows = csv_rows(FISH, path, seed=1)
    assert [(r.features, r.target) for r in rows] == [
        ({"species": "salmon", "length_cm": 70.5, "height_cm": 17.0}, 4.1),
        ({"species": "walleye", "length_cm": 50.0, "height_cm": 11.2}, None),
    ]
    assert [r.key for r in csv_rows(FISH, path, seed=1)] == [r.key for r in rows]
    assert {r.key for r in csv_rows(FISH, path, seed=2)}.isdisjoint(r.key for r in rows)
    other = _csv(tmp_path, path.read_text().replace("70.5", "70.6"))
    assert {r.key for r in csv_rows(FISH, other, seed=1)}.isdisjoint(r.key for r in rows)
    keyed = _csv(tmp_path, "fish_id,species,length_cm,height_cm,weight_kg\nf-1,pike,60,9,1.5\n")
    assert [r.key for r in csv_rows(FISH, keyed, seed=1)] == ["f-1"]


def test_a_csv_replays_in_a_column_s_order(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "species,length_cm,height_cm,weight_kg,measured_at\n"
        "a,70,17,4.0,2026-01-01T12:00:00+01:00\n"
        "b,60,15,3.0,2026-01-01T10:30:00Z\n"
        "c,50,12,2.0,\n"
        "d,55,13,2.5,2026-01-01T10:45:00Z\n",
    )
    by_time = csv_rows(FISH, path, 1, order_by="measured_at")
    # 12:00+01:00 is 11:00 UTC: compared as times, not as text; a row without one comes last.
    assert [r.features["species"] for r in by_time] == ["b", "d", "a", "c"]
    by_length = csv_rows(FISH, path, 1, order_by="length_cm")
    assert [r.features["species"] for r in by_length] == ["c", "d", "b", "a"]
    with pytest.raises(ProjectError, match=r"--order-by year: .* has no such column"):
        csv_rows(FISH, path, 1, order_by="year")


def test_a_csv_in_another_shape_is_refused_naming_the_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path, "species,length_cm,weight_kg,colour\nsalmon,70,4,red\n")
    with pytest.raises(ProjectError, match=r"lacks the columns \['height_cm'\] and has columns "
                       r"the project fish-weight does not declare \['colour'\]"):  # fmt: skip
        csv_rows(FISH, path, 1)
    bad = _csv(tmp_path, "species,length_cm,height_cm,weight_kg\nsalmon,-3,17,4\n")
    with pytest.raises(ProjectError, match="line 2: length_cm: Input should be greater than 0"):
        csv_rows(FISH, bad, 1)


def test_a_message_is_encoded_without_its_absent_fields() -> None:
    message: Message = PENGUINS.input.model_validate(
        {
            "penguin_id": "p-1",
            "species": "Adelie",
            "island": "Dream",
            "bill_length_mm": 39.1,
            "bill_depth_mm": 18.7,
            "flipper_length_mm": 181.0,
            "measured_at": START,
        }
    )
    assert encode(message) == (
        b'{"penguin_id":"p-1","species":"Adelie","island":"Dream","bill_length_mm":39.1,'
        b'"bill_depth_mm":18.7,"flipper_length_mm":181.0,"measured_at":"2026-11-25T08:00:00Z"}'
    )
