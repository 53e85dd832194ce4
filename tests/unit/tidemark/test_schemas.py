"""The data contract rejects bad records with a reason naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from tidemark.schemas import (
    DeadLetter,
    Measurement,
    ModelDecision,
    ModelEvent,
    Prediction,
    RetrainReason,
    RetrainRequest,
    Scored,
    ShadowVerdict,
    Weight,
    describe,
    prediction_json,
)

GOOD: dict[str, Any] = {
    "fish_id": "fish-0001",
    "species": "salmon",
    "length_cm": 70.0,
    "height_cm": 17.0,
    "measured_at": "2026-11-25T12:00:00Z",
}


def _reason(raw: str | bytes) -> str:
    with pytest.raises(ValidationError) as caught:
        Measurement.from_json(raw)
    return describe(caught.value)


def test_a_good_measurement_round_trips() -> None:
    parsed = Measurement.from_json(json.dumps(GOOD))
    assert Measurement.from_json(parsed.to_json()) == parsed
    assert parsed.measured_at == datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_timestamps_are_normalised_to_utc() -> None:
    parsed = Measurement.from_json(json.dumps(GOOD | {"measured_at": "2026-11-25T13:00:00+01:00"}))
    assert parsed.measured_at.tzinfo == UTC
    assert parsed.measured_at.hour == 12


def test_species_is_case_and_space_insensitive() -> None:
    assert Measurement.from_json(json.dumps(GOOD | {"species": "  Salmon "})).species == "salmon"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"length_cm": -3.0}, "length_cm", "greater than 0"),
        ({"length_cm": 0}, "length_cm", "greater than 0"),
        ({"height_cm": 5000.0}, "height_cm", "less than or equal to 300"),
        ({"length_cm": "70"}, "length_cm", "valid number"),
        ({"length_cm": True}, "length_cm", "valid number"),
        ({"length_cm": None}, "length_cm", "valid number"),
        ({"species": ""}, "species", "at least 1 character"),
        ({"species": "   "}, "species", "at least 1 character"),
        ({"species": "<script>"}, "species", "match pattern"),
        ({"fish_id": ""}, "fish_id", "at least 1 character"),
        ({"fish_id": "x" * 200}, "fish_id", "at most 128"),
        ({"measured_at": "yesterday"}, "measured_at", "valid datetime"),
        ({"measured_at": "2026-11-25T12:00:00"}, "measured_at", "timezone"),
        ({"colour": "silver"}, "colour", "Extra inputs are not permitted"),
    ],
)
def test_bad_fields_are_named_with_the_reason(
    change: dict[str, Any], field: str, words: str
) -> None:
    reason = _reason(json.dumps(GOOD | change))
    assert reason.startswith(f"{field}:")
    assert words in reason


@pytest.mark.parametrize("missing", sorted(GOOD))
def test_every_field_is_required(missing: str) -> None:
    record = {k: v for k, v in GOOD.items() if k != missing}
    assert _reason(json.dumps(record)) == f"{missing}: Field required"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinities_are_rejected(token: str) -> None:
    raw = json.dumps(GOOD).replace('"length_cm": 70.0', f'"length_cm": {token}')
    assert "length_cm" in _reason(raw)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"[]", b"\xff\xfe\x00garbage", b'"a string"'],
)
def test_malformed_payloads_are_rejected_with_a_reason(raw: bytes) -> None:
    assert _reason(raw)


def test_weight_bounds() -> None:
    good = {
        "fish_id": "f1",
        "species": "walleye",
        "weight_kg": 1.2,
        "weighed_at": GOOD["measured_at"],
    }
    assert Weight.from_json(json.dumps(good)).weight_kg == 1.2
    with pytest.raises(ValidationError, match="weight_kg"):
        Weight.from_json(json.dumps(good | {"weight_kg": -1}))
    with pytest.raises(ValidationError, match="weight_kg"):
        Weight.from_json(json.dumps(good | {"weight_kg": 1e9}))


def test_join_computes_errors_as_the_original() -> None:
    measured = Measurement.from_json(json.dumps(GOOD))
    at = measured.measured_at
    prediction = Prediction(
        **measured.model_dump(),
        predicted_weight_kg=4.4,
        species_known=True,
        model_name="fish-weight",
        model_version="3",
        predicted_at=at,
    )
    weight = Weight(fish_id=measured.fish_id, species="salmon", weight_kg=4.0, weighed_at=at)
    scored = Scored.join(prediction, weight, joined_at=at + timedelta(seconds=5))
    assert scored.abs_error_kg == pytest.approx(0.4)
    assert scored.rel_error == pytest.approx(0.1)
    assert Scored.from_json(scored.to_json()) == scored


def test_retrain_window_must_be_ordered() -> None:
    now = datetime.now(UTC)
    request = {
        "reason": "error",
        "window_start": now,
        "window_end": now - timedelta(minutes=1),
        "metric": "mean_relative_error",
        "metric_value": 0.2,
        "threshold": 0.1,
        "requested_at": now,
    }
    with pytest.raises(ValidationError, match="window_end is before window_start"):
        RetrainRequest(**request)
    ok = RetrainRequest(**request | {"window_end": now + timedelta(minutes=1)})
    assert ok.reason is RetrainReason.ERROR


def test_dead_letter_keeps_non_utf8_bytes_exactly() -> None:
    raw = b"\xff\x00\x81binary"
    letter = DeadLetter.of(
        source_topic="fish.measurements", partition=2, offset=41, key=b"f1", value=raw, error="x"
    )
    assert letter.value_encoding == "base64"
    assert DeadLetter.from_json(letter.to_json()).raw_value() == raw
    text = DeadLetter.of(
        source_topic="t", partition=0, offset=0, key=None, value=b'{"a":1}', error="x"
    )
    assert text.value_encoding == "utf-8"
    assert text.raw_value() == b'{"a":1}'


def test_aware_timestamps_of_any_zone_are_accepted() -> None:
    tz = timezone(timedelta(hours=-5))
    parsed = Measurement(**GOOD | {"measured_at": datetime(2026, 1, 1, 7, tzinfo=tz)})
    assert parsed.measured_at == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_dead_letter_keeps_surrounding_white_space() -> None:
    letter = DeadLetter.of(
        source_topic="t", partition=0, offset=0, key=None, value=b' {"a": 1}\n ', error="x"
    )
    assert DeadLetter.from_json(letter.to_json()).raw_value() == b' {"a": 1}\n '


def test_the_fast_prediction_json_is_byte_for_byte_the_contracts() -> None:
    rng = np.random.default_rng(5)
    for i in range(2_000):
        zone = timezone(timedelta(minutes=int(rng.integers(-720, 720))))
        measured_at = datetime(2026, 11, 25, tzinfo=zone) + timedelta(
            seconds=float(rng.uniform(0, 86_400))
        )
        measurement = Measurement(
            fish_id=f"fish-{i}",
            species=str(rng.choice(["Salmon", "walleye", "Pike perch"])),
            length_cm=float(rng.choice([70.0, rng.uniform(0.1, 800.0), 1e-9])),
            height_cm=float(rng.uniform(0.01, 300.0)),
            measured_at=measured_at,
        )
        weight = float(rng.choice([3.0, rng.lognormal(0, 3), 1e-300, 1e300]))
        known = bool(rng.integers(0, 2))
        version = str(rng.integers(1, 1_000))
        predicted_at = datetime.now(UTC).replace(microsecond=int(rng.choice([0, 7, 999_999])))
        expected = Prediction(
            **measurement.model_dump(),
            predicted_weight_kg=weight,
            species_known=known,
            model_name="fish-weight",
            model_version=version,
            predicted_at=predicted_at,
        ).to_json()
        fast = prediction_json(measurement, weight, known, "fish-weight", version, predicted_at)
        assert fast == expected


def test_the_fast_prediction_json_carries_the_challenger_byte_for_byte() -> None:
    rng = np.random.default_rng(6)
    for i in range(1_000):
        measurement = Measurement(
            fish_id=f"fish-{i}",
            species=str(rng.choice(["Salmon", "walleye"])),
            length_cm=float(rng.uniform(0.1, 800.0)),
            height_cm=float(rng.uniform(0.01, 300.0)),
            measured_at=datetime(2026, 11, 25, tzinfo=UTC)
            + timedelta(seconds=float(rng.uniform(0, 86_400))),
        )
        weight, theirs = (float(rng.choice([3.0, rng.lognormal(0, 3), 1e-300])) for _ in "ab")
        shadow = bool(rng.integers(0, 2))
        challenger = {
            "challenger_version": str(rng.integers(1, 1_000)) if shadow else None,
            "challenger_predicted_weight_kg": theirs if shadow else None,
        }
        predicted_at = datetime.now(UTC)
        expected = Prediction(
            **measurement.model_dump(),
            predicted_weight_kg=weight,
            species_known=True,
            model_name="fish-weight",
            model_version="3",
            predicted_at=predicted_at,
            **challenger,
        ).to_json()
        fast = prediction_json(
            measurement, weight, True, "fish-weight", "3", predicted_at, **challenger
        )
        assert fast == expected
        assert (b"challenger" in fast) is shadow


def _prediction(**shadow: Any) -> Prediction:
    at = datetime(2026, 11, 25, 12, tzinfo=UTC)
    return Prediction(
        **Measurement.from_json(json.dumps(GOOD)).model_dump(),
        predicted_weight_kg=4.4,
        species_known=True,
        model_name="fish-weight",
        model_version="3",
        predicted_at=at,
        **shadow,
    )


def test_records_without_a_challenger_parse_and_serialise_as_before() -> None:
    old = (
        b'{"fish_id":"fish-0001","species":"salmon","length_cm":70.0,"height_cm":17.0,'
        b'"measured_at":"2026-11-25T12:00:00Z","predicted_weight_kg":4.4,"species_known":true,'
        b'"model_name":"fish-weight","model_version":"3","predicted_at":"2026-11-25T12:00:00Z"}'
    )
    parsed = Prediction.from_json(old)
    assert parsed.challenger_version is None
    assert parsed.to_json() == old
    # A table (the training store read back) marks an absent field with NaN.
    row = parsed.model_dump() | {
        "challenger_version": float("nan"),
        "challenger_predicted_weight_kg": float("nan"),
    }
    assert Prediction.model_validate(row) == parsed


def test_the_challenger_is_joined_with_the_truth_beside_production() -> None:
    prediction = _prediction(challenger_version="4", challenger_predicted_weight_kg=3.8)
    at = prediction.measured_at
    weight = Weight(fish_id=prediction.fish_id, species="salmon", weight_kg=4.0, weighed_at=at)
    scored = Scored.join(prediction, weight, joined_at=at)
    assert scored.rel_error == pytest.approx(0.1)
    assert scored.challenger_abs_error_kg == pytest.approx(0.2)
    assert scored.challenger_rel_error == pytest.approx(0.05)
    assert Scored.from_json(scored.to_json()) == scored
    plain = Scored.join(_prediction(), weight, joined_at=at)
    assert plain.challenger_rel_error is None
    assert b"challenger" not in plain.to_json()


@pytest.mark.parametrize(
    "shadow",
    [
        {"challenger_version": "4"},
        {"challenger_predicted_weight_kg": 3.8},
        {"challenger_version": "", "challenger_predicted_weight_kg": 3.8},
        {"challenger_version": "4", "challenger_predicted_weight_kg": -1.0},
    ],
)
def test_a_challenger_prediction_is_whole_or_absent(shadow: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="challenger"):
        _prediction(**shadow)


def test_challenger_errors_need_the_challengers_prediction() -> None:
    prediction = _prediction()
    at = prediction.measured_at
    weight = Weight(fish_id=prediction.fish_id, species="salmon", weight_kg=4.0, weighed_at=at)
    scored = Scored.join(prediction, weight, joined_at=at).model_dump()
    with pytest.raises(ValidationError, match="challenger errors"):
        Scored(**scored | {"challenger_abs_error_kg": 0.1, "challenger_rel_error": 0.02})


def test_a_model_decision_names_two_versions() -> None:
    decision = {
        "kind": "rollback",
        "model_name": "fish-weight",
        "champion_version": "5",
        "challenger_version": "4",
        "verdict": "promote",
        "n": 412,
        "statistic": 5.1,
        "p_value": 0.006,
        "alpha": 0.025,
        "reason": "v4 beat v5 on live fish",
        "decided_by": "monitor",
        "decided_at": "2026-11-26T09:00:00Z",
    }
    parsed = ModelDecision.from_json(json.dumps(decision))
    assert parsed.kind is ModelEvent.ROLLBACK
    assert parsed.verdict is ShadowVerdict.PROMOTE
    assert ModelDecision.from_json(parsed.to_json()) == parsed
    manual = {k: v for k, v in decision.items() if k not in ("verdict", "statistic", "p_value")}
    assert ModelDecision.from_json(json.dumps(manual | {"kind": "challenge"})).n == 412
    with pytest.raises(ValidationError, match="cannot challenge itself"):
        ModelDecision.from_json(json.dumps(decision | {"challenger_version": "5"}))
