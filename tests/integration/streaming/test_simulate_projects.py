"""``tidemark simulate`` for projects, on the real broker: one process, several projects, each
record valid for its project's contracts, each truth after its input by the label delay."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.local.stack import Stack
from tests.integration.projects import REPO, example
from tests.integration.topics import read_topic
from tidemark import kafka_io
from tidemark.config import Settings
from tidemark.project.catalog import topics_of
from tidemark.project.contracts import Contracts, Item, Truth
from tidemark.project.spec import Project

START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
DELAY_S = 30.0


class Projects:
    """The penguins and the fish under names and topics of this test's own, in a folder."""

    def __init__(self, folder: Path) -> None:
        tag = uuid.uuid4().hex[:8]
        folder.mkdir()
        self.folder = folder
        self.penguins = self._write(example("penguin-mass").variant(f"penguins-{tag}"))
        self.fish = self._write(example("fish-weight").variant(f"fish-{tag}"))

    def _write(self, project: Project) -> Project:
        data = project.model_dump(mode="json", exclude_none=True)
        (self.folder / f"{project.name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        return project

    def simulate(self, settings: Settings, *arguments: str) -> str:
        """Run ``tidemark simulate`` on these projects; its output."""
        done = subprocess.run(
            [sys.executable, "-m", "tidemark", "simulate", "--projects", str(self.folder),
             "--no-progress", "--seed", "5", *arguments],
            env=os.environ | settings.as_env("kafka"),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout


@pytest.fixture
def projects(tmp_path: Path) -> Projects:
    return Projects(tmp_path / "projects")


def _records(
    settings: Settings, project: Project
) -> tuple[list[tuple[Any, Item]], list[tuple[Any, Truth]]]:
    """The records of the project's input and truth topics, each parsed by its contracts."""
    contracts = Contracts(project)
    topics = topics_of(project)
    inputs = [(r, contracts.decode_input(r.value)) for r in read_topic(settings, topics["input"])]
    truths = [(r, contracts.decode_truth(r.value)) for r in read_topic(settings, topics["truth"])]
    assert all(record.key.decode() == item.key for record, item in inputs)
    assert all(record.key.decode() == truth.key for record, truth in truths)
    inputs.sort(key=lambda pair: pair[1].at)
    return inputs, truths


def _delayed(
    inputs: Sequence[tuple[Any, Item]], truths: Sequence[tuple[Any, Truth]], delay_s: float
) -> None:
    """Each truth is its input's, ``delay_s`` later, sent once that time had come."""
    seen = {item.key: item.at for _, item in inputs}
    assert len(seen) == len(inputs)
    assert len({t.key for _, t in truths}) == len(truths)
    for record, truth in truths:
        assert truth.at == seen[truth.key] + timedelta(seconds=delay_s)
        assert record.timestamp >= int(truth.at.timestamp() * 1000)


def test_one_process_simulates_the_penguins_and_the_fish(stack: Stack, projects: Projects) -> None:
    out = projects.simulate(
        stack.settings,
        "--project", projects.penguins.name, "--project", projects.fish.name,
        "--limit", "300", "--label-delay", str(DELAY_S),
        "--event-time-start", START.isoformat(), "--event-interval", "1",
    )  # fmt: skip
    for project in (projects.penguins, projects.fish):
        inputs, truths = _records(stack.settings, project)
        assert [item.at for _, item in inputs] == [START + timedelta(seconds=s) for s in range(300)]
        assert len(truths) == 300
        _delayed(inputs, truths, DELAY_S)
        assert f"{project.name}: sent 300 inputs" in out
    penguins = [item for _, item in _records(stack.settings, projects.penguins)[0]]
    assert {p.segment for p in penguins} == {"Adelie", "Chinstrap"}
    # The data set's penguins that were not sexed arrive without sex, as optional fields do.
    assert any("sex" not in p.fields for p in penguins)
    assert {f.segment for _, f in _records(stack.settings, projects.fish)[0]} == {"salmon"}


def test_gentoo_arrive_on_the_wall_clock_and_some_truths_never_do(
    stack: Stack, projects: Projects
) -> None:
    out = projects.simulate(
        stack.settings,
        "--project", projects.penguins.name, "--scenario", "gentoo-arrives",
        "--limit", "900", "--label-delay", "2", "--missing-truths", "0.1",
    )  # fmt: skip
    inputs, truths = _records(stack.settings, projects.penguins)
    assert len(inputs) == 900
    lost = int(re.search(r"(\d+) truths lost on purpose", out).group(1))  # type: ignore[union-attr]
    assert 45 < lost < 135
    assert len(truths) == 900 - lost
    _delayed(inputs, truths, 2.0)
    species = [item.segment for _, item in inputs]
    assert "Gentoo" not in species[:600]
    assert species[600:].count("Gentoo") > 60


def test_a_csv_replays_in_a_column_s_order(stack: Stack, projects: Projects) -> None:
    out = projects.simulate(
        stack.settings,
        "--project", projects.penguins.name, "--csv", str(REPO / "examples/penguins/bootstrap.csv"),
        "--order-by", "flipper_length_mm", "--label-delay", str(DELAY_S),
        "--event-time-start", START.isoformat(),
    )  # fmt: skip
    inputs, truths = _records(stack.settings, projects.penguins)
    assert len(inputs) == 219, out
    flippers = [item.feature("flipper_length_mm") for _, item in inputs]
    assert flippers == sorted(flippers)  # type: ignore[type-var]
    _delayed(inputs, truths, DELAY_S)
    assert {t.value for _, t in truths} <= {float(m) for m in range(2700, 4801)}


def test_a_csv_in_another_shape_is_refused_before_anything_is_sent(
    stack: Stack, projects: Projects
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tidemark", "simulate", "--projects", str(projects.folder),
         "--project", projects.fish.name, "--no-progress",
         "--csv", str(REPO / "examples/penguins/bootstrap.csv")],
        env=os.environ | stack.settings.as_env("kafka"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "lacks the columns ['height_cm', 'length_cm', 'weight_kg']" in done.stderr
    admin = kafka_io.admin(stack.settings.kafka)
    try:
        # Not even the topics were created.
        assert topics_of(projects.fish)["input"] not in admin.list_topics()
    finally:
        admin.close()
