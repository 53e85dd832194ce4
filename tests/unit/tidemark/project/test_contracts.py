"""A project's contracts: built from its file, strict at the border, byte-stable for the fish."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from tidemark.project.contracts import ContractError, Contracts, Prediction
from tidemark.project.spec import describe_errors, load_project, parse_project

REPO = Path(__file__).parents[4]
FISH = Contracts(load_project(REPO / "projects" / "fish-weight.toml"))
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MEASUREMENT = (
    b'{"fish_id":"f-1","species":"Salmon ","length_cm":70.0,"height_cm":17.0,'
    b'"measured_at":"2026-11-25T13:00:00+01:00"}'
)
WEIGHT = b'{"fish_id":"f-1","species":"salmon","weight_kg":4.2,"weighed_at":"2026-11-25T12:00:05Z"}'
# The fish records as they have been on the topics since before projects existed.
PREDICTION_JSON = (
    b'{"fish_id":"f-1","species":"salmon","length_cm":70.0,"height_cm":17.0,'
    b'"measured_at":"2026-11-25T12:00:00Z","predicted_weight_kg":4.0,"species_known":true,'
    b'"model_name":"fish-weight","model_version":"3","predicted_at":"2026-11-25T12:00:00Z",'
    b'"challenger_version":"4","challenger_predicted_weight_kg":4.4}'
)
SCORED_JSON = PREDICTION_JSON[:-1] + (
    b',"weight_kg":4.0,"abs_error_kg":0.0,"rel_error":0.0,"joined_at":"2026-11-25T12:00:00Z",'
    b'"challenger_abs_error_kg":0.40000000000000036,"challenger_rel_error":0.10000000000000009}'
)


def errors_of(call: object, raw: bytes) -> str:
    with pytest.raises(ValidationError) as caught:
        call(raw)  # type: ignore[operator]
    return describe_errors(caught.value)


def test_an_input_becomes_an_item_in_utc_with_one_spelling() -> None:
    item = FISH.decode_input(MEASUREMENT)
    assert item.key == "f-1"
    assert item.segment == "salmon"
    assert item.at == AT
    assert item.feature("length_cm") == 70.0


def test_the_fish_records_keep_their_bytes() -> None:
    item = FISH.decode_input(MEASUREMENT)
    prediction = Prediction(item, 4.0, True, "fish-weight", "3", AT, "4", 4.4)
    assert FISH.encode_prediction(prediction) == PREDICTION_JSON
    truth = FISH.decode_truth(WEIGHT.replace(b"4.2", b"4.0"))
    scored = FISH.join(prediction, truth, AT)
    assert FISH.encode_scored(scored) == SCORED_JSON
    assert FISH.decode_scored(SCORED_JSON) == scored
    assert FISH.decode_prediction(PREDICTION_JSON) == prediction


def test_without_a_challenger_its_fields_are_left_out() -> None:
    item = FISH.decode_input(MEASUREMENT)
    encoded = FISH.encode_prediction(Prediction(item, 4.0, True, "fish-weight", "3", AT))
    assert b"challenger" not in encoded
    assert FISH.decode_prediction(encoded).challenger_version is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (MEASUREMENT.replace(b"70.0", b"-70.0"), "length_cm: Input should be greater than 0"),
        (MEASUREMENT.replace(b"70.0", b'"70"'), "length_cm: Input should be a valid number"),
        (MEASUREMENT.replace(b"70.0", b"NaN"), "length_cm"),
        (MEASUREMENT.replace(b"70.0", b"1e999"), "length_cm"),
        (MEASUREMENT.replace(b"70.0", b"900.0"), "length_cm: Input should be less than"),
        (MEASUREMENT.replace(b'"height_cm":17.0,', b""), "height_cm: Field required"),
        (MEASUREMENT[:-1] + b',"colour":"red"}', "colour: Extra inputs are not permitted"),
        (
            MEASUREMENT.replace(b"2026-11-25T13:00:00+01:00", b"9999-12-31T23:59:59-01:00"),
            "measured_at: time is outside the range of UTC times",
        ),
        (MEASUREMENT.replace(b"+01:00", b""), "measured_at: Input should have timezone info"),
        (MEASUREMENT.replace(b'"f-1"', b'"f 1"'), "fish_id: String should match pattern"),
        (MEASUREMENT.replace(b'"f-1"', b"17"), "fish_id: Input should be a valid string"),
        (MEASUREMENT.replace(b"Salmon ", b"x" * 10_000), "species: String should have at most"),
        (MEASUREMENT.replace(b"Salmon ", b"sal\\u0000mon"), "species: String should match"),
        (b"not json", "Invalid JSON"),
        (b"[" * 10_000, "Invalid JSON"),
    ],
)
def test_a_bad_input_is_refused_naming_the_field(raw: bytes, reason: str) -> None:
    assert reason in errors_of(FISH.decode_input, raw)


def test_a_challenger_is_whole_or_absent() -> None:
    half = PREDICTION_JSON.replace(b',"challenger_predicted_weight_kg":4.4', b"")
    assert "go together" in errors_of(FISH.decode_prediction, half)


def test_a_prediction_too_large_to_square_is_refused() -> None:
    huge = PREDICTION_JSON.replace(b'"predicted_weight_kg":4.0', b'"predicted_weight_kg":1e200')
    assert "predicted_weight_kg: Input should be less than or equal to" in errors_of(
        FISH.decode_prediction, huge
    )


def test_a_truth_whose_relative_error_overflows_cannot_be_joined() -> None:
    item = FISH.decode_input(MEASUREMENT)
    prediction = Prediction(item, 4.0, True, "fish-weight", "3", AT)
    tiny = FISH.decode_truth(WEIGHT.replace(b"4.2", b"1e-320"))
    with pytest.raises(ContractError, match="relative error"):
        FISH.join(prediction, tiny, AT)


def test_a_category_with_allowed_values_refuses_others() -> None:
    project = parse_project(
        {
            "name": "sorter",
            "key": "parcel_id",
            "times": {"input": "scanned_at", "truth": "weighed_at"},
            "features": [
                {"name": "lane", "type": "category", "values": ["A", "B"]},
                {"name": "volume_l", "type": "number", "required": False},
            ],
            "target": {"name": "mass", "min": -5},
            "loop": {"monitor": {"error_threshold": 0.5}, "shadow": {"error_cap": 10}},
        }
    )
    contracts = Contracts(project)
    raw = b'{"parcel_id":"p1","lane":"C","scanned_at":"2026-11-25T12:00:00Z"}'
    assert "lane: should be one of ['A', 'B']" in errors_of(contracts.decode_input, raw)
    item = contracts.decode_input(raw.replace(b'"C"', b'"A"'))
    assert item.segment is None
    assert item.feature("volume_l") is None
    assert contracts.names.abs_error == "abs_error"
    assert contracts.names.known is None
    prediction = Prediction(item, -1.0, True, "sorter", "1", AT)
    truth = contracts.decode_truth(
        b'{"parcel_id":"p1","mass":-2.0,"weighed_at":"2026-11-25T12:00:01Z"}'
    )
    scored = contracts.join(prediction, truth, AT)
    assert (scored.abs_error, scored.rel_error) == (1.0, None)
    assert contracts.error(scored) == 1.0
    assert contracts.decode_scored(contracts.encode_scored(scored)) == scored


def test_every_message_has_a_json_schema() -> None:
    schemas = FISH.json_schemas()
    assert set(schemas) == {"input", "truth", "prediction", "scored"}
    assert "weight_kg" in schemas["scored"]["required"]
    assert "weight_kg" not in schemas["prediction"]["properties"]
