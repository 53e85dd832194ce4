"""The platform's own messages: retrain requests, model decisions, dead letters.

A project's records are its contracts' (tests/unit/tidemark/project); these are the same for
every project.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from tidemark.schemas import (
    DeadLetter,
    ModelDecision,
    ModelEvent,
    RetrainReason,
    RetrainRequest,
    ShadowVerdict,
    describe,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
REQUEST: dict[str, Any] = {
    "reason": "error",
    "window_start": NOW - timedelta(minutes=1),
    "window_end": NOW,
    "metric": "mean_relative_error",
    "metric_value": 0.2,
    "threshold": 0.1,
    "requested_at": NOW,
}


def test_a_bad_field_is_named_with_the_reason() -> None:
    with pytest.raises(ValidationError) as caught:
        RetrainRequest.from_json(json.dumps(REQUEST | {"metric_value": "high"}, default=str))
    assert "metric_value" in describe(caught.value)


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
        source_topic="bakery.loaves", partition=2, offset=41, key=b"f1", value=raw, error="x"
    )
    assert letter.value_encoding == "base64"
    assert DeadLetter.from_json(letter.to_json()).raw_value() == raw
    text = DeadLetter.of(
        source_topic="t", partition=0, offset=0, key=None, value=b'{"a":1}', error="x"
    )
    assert text.value_encoding == "utf-8"
    assert text.raw_value() == b'{"a":1}'


def test_dead_letter_keeps_surrounding_white_space() -> None:
    letter = DeadLetter.of(
        source_topic="t", partition=0, offset=0, key=None, value=b' {"a": 1}\n ', error="x"
    )
    assert DeadLetter.from_json(letter.to_json()).raw_value() == b' {"a": 1}\n '


def test_a_model_decision_names_two_versions() -> None:
    decision = {
        "kind": "rollback",
        "model_name": "bakery-loaf",
        "champion_version": "5",
        "challenger_version": "4",
        "verdict": "promote",
        "n": 412,
        "statistic": 5.1,
        "p_value": 0.006,
        "alpha": 0.025,
        "reason": "v4 beat v5 on live items",
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


def test_aware_timestamps_of_any_zone_are_kept_in_utc() -> None:
    tz = timezone(timedelta(hours=-5))
    parsed = RetrainRequest(**REQUEST | {"requested_at": datetime(2026, 1, 1, 7, tzinfo=tz)})
    assert parsed.requested_at == datetime(2026, 1, 1, 12, tzinfo=UTC)
