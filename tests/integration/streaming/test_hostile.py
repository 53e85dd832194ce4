"""Hostile records interleaved with good items on every topic the scorer, the joiner and the
monitor read: every good item is predicted and joined once, every bad record is dead-lettered
with its reason, the monitor keeps closing windows after a scored record from the future, and no
service restarts its loop, let alone its process."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from monitoring.windows import Resume
from tests.integration.projects import fish_on
from tests.integration.streaming.streams import (
    Service,
    wait_for,
)
from tests.integration.topics import read_topic, topic_size
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.project.contracts import Contracts
from tidemark.schemas import DeadLetter, utc_now
from tidemark.stream.records import LETTER_OVERHEAD

NOW = utc_now()
DECADES_AHEAD = (NOW + timedelta(days=365 * 30)).isoformat()
# Beyond the stream's horizon (max_event_age_s, a week by default).
MONTH_AGO = (NOW - timedelta(days=30)).isoformat()
OVERFLOWING = "9999-12-31T23:59:59-01:00"

# The monitor's windows here: one second, half a second of lateness. The good items are seen a
# quarter of a second apart from FIRST_SEEN on (a whole second, a minute ago), so they span
# several windows, and each window closes once items a window and a half later come.
WINDOW_S = 1.0
LATENESS_S = 0.5
STEP = timedelta(seconds=0.25)
FIRST_SEEN = datetime.fromtimestamp(int(NOW.timestamp()) - 60, UTC)


def seen(index: int) -> datetime:
    """When the good item ``index`` was seen."""
    return FIRST_SEEN + index * STEP


def fish(fish_id: str, at: datetime = NOW, **changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "fish_id": fish_id,
        "species": "salmon",
        "length_cm": 70.0,
        "height_cm": 17.0,
        "measured_at": at.isoformat(),
    }
    return record | changes


def truth(fish_id: str, at: datetime = NOW, **changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "fish_id": fish_id,
        "species": "salmon",
        "weight_kg": 4.0,
        "weighed_at": (at + timedelta(seconds=2)).isoformat(),
    }
    return record | changes


def raw(record: dict[str, object]) -> bytes:
    return json.dumps(record).encode()


@dataclass(frozen=True)
class Hostile:
    """A bad record, the topic it goes to, and a word its dead letter's reason must hold."""

    name: str
    role: str  # input, truth or predictions
    value: bytes
    reason: str
    key: bytes | None = None


HOSTILE = [
    Hostile("malformed-json", "input", b'{"fish_id": "h1", "species":', "Invalid JSON"),
    Hostile(
        "deep-json",
        "input",
        b'{"fish_id": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        "recursion limit",
    ),
    Hostile("10kB-segment", "input", raw(fish("h3", species="s" * 10_000)), "species"),
    Hostile(
        "control-characters", "input", raw(fish("h4", species="sal\u0000\u0007mon")), "species"
    ),
    Hostile("200kB-key", "input", b'{"fish_id": "h5"', "Invalid JSON", key=b"\x01" * 200_000),
    Hostile("overflowing-time", "input", raw(fish("h6", measured_at=OVERFLOWING)), "range"),
    Hostile(
        "nan",
        "input",
        raw(fish("h7")).replace(b'"length_cm": 70.0', b'"length_cm": NaN'),
        "length_cm",
    ),
    Hostile(
        "infinity",
        "input",
        raw(fish("h8")).replace(b'"height_cm": 17.0', b'"height_cm": Infinity'),
        "height_cm",
    ),
    Hostile("negative-size", "input", raw(fish("h9", length_cm=-3.0)), "length_cm"),
    Hostile("input-decades-ahead", "input", raw(fish("h10", measured_at=DECADES_AHEAD)), "ahead"),
    Hostile(
        "truth-decades-ahead", "truth", raw(truth("good-0", weighed_at=DECADES_AHEAD)), "ahead"
    ),
    Hostile("truth-overflowing-time", "truth", raw(truth("h12", weighed_at=OVERFLOWING)), "range"),
    Hostile(
        "truth-nan",
        "truth",
        raw(truth("h13")).replace(b'"weight_kg": 4.0', b'"weight_kg": NaN'),
        "weight_kg",
    ),
    Hostile("truth-negative", "truth", raw(truth("h14", weight_kg=-1.0)), "weight_kg"),
    Hostile(
        "forged-prediction",
        "predictions",
        raw(
            fish("forged-1")
            | {
                "predicted_weight_kg": 1.0,
                "species_known": True,
                "model_name": "forged-model",
                "model_version": "1",
                "predicted_at": NOW.isoformat(),
            }
        ),
        "forged-model",
    ),
    # The joiner and the monitor both read the predictions: still one dead letter.
    Hostile(
        "malformed-prediction",
        "predictions",
        b'{"fish_id": "h15", "predicted_weight_kg":',
        "Invalid JSON",
    ),
]
GOOD = 40
# Good items sent after the forged scored records, seen two seconds after the first GOOD: their
# windows close only if the forged records left the monitor's clock alone.
LATER = range(GOOD + 8, GOOD + 20)
# A key sent twice with other features: the second is predicted, and refused by the joiner.
TWICE = "good-7"


@dataclass(frozen=True)
class Forged:
    """A scored record sent straight onto the scored topic, seen out of the clock's bounds."""

    key: str
    at: str
    reason: str


FORGED = [
    Forged("forged-future", DECADES_AHEAD, "ahead of the clock"),
    Forged("forged-past", MONTH_AGO, "behind the clock"),
]


def forge(scored: bytes, forged: Forged) -> bytes:
    """A real scored record, under another key and seen at the forged time."""
    fields = json.loads(scored) | {"fish_id": forged.key, "measured_at": forged.at}
    return json.dumps(fields).encode()


def answering(service: Service) -> bool:
    """Whether the service's metrics port answers (its process has started its loop)."""
    try:
        service.metrics()
    except httpx.HTTPError:
        return False
    return True


def monitor_read(monitor: Service) -> float:
    """How many scored records the monitor has read, whatever became of them."""
    return sum(
        value
        for sample, value in monitor.metrics().items()
        if sample.startswith("tidemark_monitor_records_total{")
    )


def windows_closed_until(settings: Settings) -> datetime:
    """The end of the last window the monitor's group closed, as committed with its offsets."""
    admin = kafka_io.admin(settings.kafka)
    try:
        group = settings.monitor.group_id
        committed = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    topic = settings.kafka.topics.scored
    resume = Resume.of_metadata(
        {tp.partition: o.metadata for tp, o in committed.items() if tp.topic == topic}
    )
    assert resume is not None, committed
    return resume.closed_until


def test_hostile_records_are_dead_lettered_and_every_good_item_predicted_and_joined_once(
    streams: Settings, start_service_on: Callable[[Settings, str], Service], tmp_path: Path
) -> None:
    settings = streams.override(
        monitor_group_id=f"monitor-{uuid.uuid4().hex[:8]}",
        monitor_window_s=WINDOW_S,
        monitor_allowed_lateness_s=LATENESS_S,
        # Windows are closed and counted, never judged (a window this small holds a few
        # items): no retrain is asked for, the point here is that windows keep closing.
        monitor_min_window_count=10_000,
        # Open windows close by the watermark alone, never because the line paused.
        monitor_idle_flush_s=3_600.0,
        stack_state_dir=tmp_path,
    )
    topics = settings.kafka.topics
    topic_of = {"input": topics.input, "truth": topics.truth, "predictions": topics.predictions}
    services = {
        command: start_service_on(settings, command) for command in ("score", "join", "monitor")
    }
    monitor = services["monitor"]
    # The monitor's series name the project it judges (one monitor process judges them all).
    judged = f'{{project="{fish_on(settings).name}"}}'
    labels = {"score": "", "join": "", "monitor": judged}
    producer = kafka_io.producer(settings.kafka)
    good_ids = [f"good-{i}" for i in range(GOOD)]
    hostile = iter(HOSTILE)
    for index, fish_id in enumerate(good_ids):
        # Each hostile record sits between good ones of the same partition (same key).
        producer.send(topics.input, key=fish_id.encode(), value=raw(fish(fish_id, seen(index))))
        bad = next(hostile, None)
        if bad is not None:
            producer.send(topic_of[bad.role], key=bad.key or fish_id.encode(), value=bad.value)
        if fish_id == TWICE:
            other = raw(fish(fish_id, seen(index), length_cm=90.0))
            producer.send(topics.input, key=fish_id.encode(), value=other)
        producer.send(topics.truth, key=fish_id.encode(), value=raw(truth(fish_id, seen(index))))
    producer.flush()

    letters_expected = len(HOSTILE) + 1  # the second record of the key sent twice
    wait_for(
        lambda: topic_size(settings, topics.dead_letter) >= letters_expected,
        240,
        "every hostile record dead-lettered",
    )
    wait_for(lambda: topic_size(settings, topics.scored) >= GOOD, 240, "every good item joined")
    wait_for(lambda: answering(monitor), 240, "the monitor's metrics")
    started = {name: s.metric("process_start_time_seconds") for name, s in services.items()}
    wait_for(lambda: monitor_read(monitor) >= GOOD, 120, "the monitor reading every good item")
    assert monitor.metric("tidemark_monitor_windows_closed_total" + judged) > 0

    # Scored records from the future and from beyond the horizon, straight onto the scored
    # topic: the monitor dead-letters them (before any later item is scored), and they move
    # none of its windows' clock.
    real = read_topic(settings, topics.scored)[0].value
    forgeries = {forged.key: forge(real, forged) for forged in FORGED}
    for key, value in forgeries.items():
        producer.send(topics.scored, key=key.encode(), value=value)
    producer.flush()
    wait_for(lambda: monitor_read(monitor) >= GOOD + len(FORGED), 60, "the forged records read")
    closed_before = monitor.metric("tidemark_monitor_windows_closed_total" + judged)
    later_ids = [f"good-{i}" for i in LATER]
    for index, fish_id in zip(LATER, later_ids, strict=True):
        producer.send(topics.input, key=fish_id.encode(), value=raw(fish(fish_id, seen(index))))
        producer.send(topics.truth, key=fish_id.encode(), value=raw(truth(fish_id, seen(index))))
    producer.flush()
    producer.close()
    # The later items' windows close by the watermark: the last closed window is one of theirs
    # (and, checked once it stops, not the window of the latest item, which the watermark has not
    # passed: a record from the future, let in, would put the watermark there, and every window
    # would close as it opens, before its late records come).
    later_window_end = seen(LATER[0]).timestamp() + WINDOW_S
    wait_for(
        lambda: (
            monitor.metric("tidemark_monitor_window_end_timestamp_seconds" + judged)
            >= later_window_end
        ),
        120,
        "the later items' windows closed",
    )
    assert monitor.metric("tidemark_monitor_windows_closed_total" + judged) > closed_before
    letters_expected += len(FORGED)
    read_in_all = GOOD + len(FORGED) + len(LATER)
    wait_for(
        lambda: topic_size(settings, topics.scored) >= read_in_all, 120, "every later item joined"
    )
    wait_for(lambda: monitor_read(monitor) >= read_in_all, 60, "the monitor reading them")

    for name, service in services.items():
        assert service.alive(), name
        assert service.metric("process_start_time_seconds") == started[name], name
        assert service.metric("tidemark_stream_loop_restarts_total" + labels[name]) == 0.0, name
        assert service.metric("tidemark_stream_healthy" + labels[name]) == 1.0, name

    # Stopped, the monitor finishes its round and commits where its windows stand: the window of
    # the latest item is still open, the watermark has not passed it.
    monitor.stop()
    assert monitor.process.returncode == 0
    assert windows_closed_until(settings) <= seen(LATER[-1]).replace(microsecond=0)

    letters = [DeadLetter.from_json(r.value) for r in read_topic(settings, topics.dead_letter)]
    assert len(letters) == letters_expected
    for bad in HOSTILE:
        found = [
            letter
            for letter in letters
            if letter.source_topic == topic_of[bad.role]
            and bad.reason in letter.error
            and bad.value.startswith(letter.raw_value())
        ]
        assert len(found) == 1, (bad.name, [letter.error[:200] for letter in letters])
    for forged in FORGED:
        [letter] = [letter for letter in letters if letter.key == forged.key]
        assert (letter.source_topic, letter.raw_value()) == (topics.scored, forgeries[forged.key])
        assert forged.reason in letter.error, letter.error
    oversized_key = next(letter for letter in letters if "key of 200000 bytes" in letter.error)
    assert len(oversized_key.to_json()) <= settings.stream.max_record_bytes + LETTER_OVERHEAD
    conflict = [letter for letter in letters if "other content" in letter.error]
    contracts = Contracts(fish_on(settings))
    conflicting = [
        (c.source_topic, contracts.decode_prediction(c.raw_value()).item.feature("length_cm"))
        for c in conflict
    ]
    assert conflicting == [(topics.predictions, 90.0)]

    # The predictions on the topic, without the malformed one the test sent there.
    sent = {
        bad.value for bad in HOSTILE if bad.role == "predictions" and bad.reason == "Invalid JSON"
    }
    predicted = Counter(
        contracts.decode_prediction(r.value).key
        for r in read_topic(settings, topics.predictions)
        if r.value not in sent
    )
    assert predicted == Counter(good_ids + later_ids) + Counter([TWICE]) + Counter(["forged-1"])
    scored = [contracts.decode_scored(r.value) for r in read_topic(settings, topics.scored)]
    assert sorted(s.key for s in scored) == sorted(good_ids + later_ids + [f.key for f in FORGED])
    assert next(s for s in scored if s.key == TWICE).prediction.item.feature("length_cm") == 70.0
