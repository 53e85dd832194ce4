"""A loaded version predicts any project's items: the penguins through the scorer's adapter."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from streaming.models import Adapted, ProjectModel
from tests.integration.projects import REPO, example
from tidemark.modelling.default import known_segments
from tidemark.modelling.frames import frame_of
from tidemark.modelling.training import predict, train
from tidemark.project.contracts import Contracts
from tidemark.project.spec import FeatureType
from tidemark.registry.watcher import ServedModel
from tidemark.schemas import utc_now

PENGUINS = example("penguin-mass")


@pytest.fixture(scope="module")
def loaded() -> ServedModel:
    rows = pd.read_csv(REPO / "examples" / "penguins" / "bootstrap.csv").dropna()
    model = train(PENGUINS, rows, seed=0).model
    segments = known_segments(PENGUINS, model)
    assert segments is not None
    # A version of another shape than the fish loads: the watcher serves it by its pipeline.
    return ServedModel(
        name="penguin-mass",
        version="1",
        run_id="run",
        model=model,
        project=PENGUINS,
        segments=segments,
        loaded_at=utc_now(),
    )


def test_a_penguin_version_predicts_the_project_s_items_as_its_pipeline_does(
    loaded: ServedModel,
) -> None:
    contracts = Contracts(PENGUINS)
    rows = pd.read_csv(REPO / "examples" / "penguins" / "bootstrap.csv").dropna().head(20)
    items = []
    for index, row in rows.reset_index(drop=True).iterrows():
        record: dict[str, object] = {
            "penguin_id": f"p-{index}",
            "measured_at": "2026-12-01T08:00:00Z",
        }
        for feature in PENGUINS.features:
            value = row[feature.name]
            record[feature.name] = float(value) if feature.type is FeatureType.NUMBER else value
        items.append(contracts.decode_input(json.dumps(record)))
    adapted = ProjectModel.of(PENGUINS, loaded)
    result = adapted.predict(items)
    expected = predict(PENGUINS, loaded.model, frame_of(PENGUINS, items), segments=loaded.segments)
    np.testing.assert_allclose(result.values, expected.values, rtol=1e-9)
    assert result.segment_known.tolist() == expected.segment_known.tolist()
    assert (adapted.name, adapted.version) == ("penguin-mass", "1")


def test_the_adapter_derives_once_per_version(loaded: ServedModel) -> None:
    current: list[ServedModel | None] = [None]
    adapted = Adapted(PENGUINS, lambda: current[0])
    assert adapted() is None
    current[0] = loaded
    first = adapted()
    assert first is not None
    assert adapted() is first
