"""``tidemark report`` draws the picture from the topic or the store, and renders reports."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sklearn.pipeline import Pipeline

from monitoring.trigger import RetrainTrigger
from monitoring.windows import TumblingWindows
from tests.integration.monitoring.fish import produce, scored_fish, window_aligned_start
from tests.pictures import assert_error_report, assert_picture
from tidemark import kafka_io
from tidemark.config import SECTIONS, Settings
from tidemark.project.catalog import load_catalog
from tidemark.project.spec import ErrorKind
from tidemark.schemas import RetrainReason, RetrainRequest, utc_now
from tidemark.store import TrainingStore

FISH = load_catalog(Path("projects")).contracts("fish-weight")


def tidemark(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | settings.as_env(*SECTIONS)
    return subprocess.run(
        [sys.executable, "-m", "tidemark", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_report_from_the_topic_and_from_the_store(
    monitored: Settings, salmon_model: tuple[str, Pipeline], tmp_path: Path
) -> None:
    settings = monitored.override(store_database=f"report_{tmp_path.name[-8:]}")
    model = salmon_model[1]
    first = window_aligned_start(settings)
    shift = first + timedelta(seconds=6)
    back = shift + timedelta(seconds=6)
    # Salmon last: the latest window holds fish of a species the model knows, to test for drift.
    fish = (
        scored_fish(model, "1", "salmon", 3, first, settings)
        + scored_fish(model, "1", "walleye", 3, shift, settings)
        + scored_fish(model, "1", "salmon-again", 1, back, settings)
    )
    produce(settings, fish)
    producer = kafka_io.producer(settings.kafka)
    # Every fish was predicted, and 40 walleye more in the shift's window whose truth never came.
    lost = scored_fish(model, "1", "walleye", 1, shift, settings)[:40]
    for item in fish + lost:
        producer.send(
            settings.kafka.topics.predictions,
            key=item.key.encode(),
            value=FISH.encode_prediction(item.prediction),
        )
    RetrainTrigger(settings, producer).publish(
        RetrainRequest(
            reason=RetrainReason.ERROR,
            window_start=shift,
            window_end=shift + timedelta(seconds=2),
            metric="mean_relative_error",
            metric_value=0.2,
            threshold=0.1,
            model_version="1",
            requested_at=utc_now(),
        )
    )
    producer.close()

    picture = tmp_path / "from-topic.png"
    done = tidemark(settings, "report", "--html", "--output", str(picture))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(fish)} scored fish, versions 1, 1 retrain requests" in done.stdout
    assert_picture(picture)
    pages = [
        Path(line.split("report: ")[1]) for line in done.stdout.splitlines() if "report: " in line
    ]
    assert [p.name.rsplit("-", 1)[-1] for p in pages] == ["error.html", "drift.html"]
    # The pages report the latest window's fish: its error, and the drift of its features.
    windows = TumblingWindows(settings.monitor.window_s, 0, judged_by=ErrorKind.RELATIVE)
    latest_start = windows.window_start(max(r.at for r in fish))
    latest = [r for r in fish if r.at >= latest_start]
    assert f"{len(latest)} fish" in done.stdout
    assert_error_report(pages[0], latest)
    drift_page = pages[1].read_text()
    assert all(f'"{column}"' in drift_page for column in ("length_cm", "height_cm"))
    assert "drift share 0.00" in done.stdout  # the latest window: salmon like the training data
    # The truth coverage of each window: the shift's window lost a third of its truths.
    assert "truth coverage of the last 7 windows:" in done.stdout
    coverage = [line for line in done.stdout.splitlines() if "not judged: coverage" in line]
    assert len(coverage) == 1, done.stdout
    assert f"{shift:%Y-%m-%d %H:%M:%S} predicted 120 joined 80 waiting 40" in coverage[0]
    assert coverage[0].endswith("not judged: coverage 66 % (walleye 66 %)")

    with TrainingStore(settings.store, FISH) as store:
        store.upsert_many(fish)
    from_store = tmp_path / "from-store.png"
    done = tidemark(settings, "report", "--source", "mongo", "--output", str(from_store))
    assert done.returncode == 0, done.stdout + done.stderr
    assert_picture(from_store)
