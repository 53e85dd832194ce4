"""A served version answers through its fast form exactly as its pipeline would."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.fish import FISH, fish_scenario
from tidemark.modelling.default import known_segments
from tidemark.modelling.frames import DataError
from tidemark.modelling.training import predict, train
from tidemark.registry.watcher import ServedModel
from tidemark.schemas import utc_now
from tidemark.simulation.generate import generate_frame


@pytest.fixture(scope="module")
def served() -> ServedModel:
    frame = generate_frame(fish_scenario(), seed=3, phases=["salmon", "walleye"])
    model = train(FISH, frame, seed=0).model
    return ServedModel(
        name="fish-weight",
        version="1",
        run_id="run",
        model=model,
        project=FISH,
        segments=known_segments(FISH, model),
        loaded_at=utc_now(),
    )


def test_a_served_version_has_a_fast_form_that_gives_the_pipelines_answers(
    served: ServedModel,
) -> None:
    assert served.fast is not None
    fish = pd.DataFrame(
        {
            "species": ["salmon", "walleye", "pike", "salmon"],
            "length_cm": [70.0, 50.0, 40.0, 55.5],
            "height_cm": [17.0, 11.0, 8.0, 13.1],
        }
    )
    fast = served.fast.predict(fish)
    slow = predict(FISH, served.model, fish)
    np.testing.assert_allclose(fast.values, slow.values, rtol=1e-9, atol=0)
    assert served.predict(fish).segment_known.tolist() == [True, True, False, True]
    assert fast.segment_known.tolist() == slow.segment_known.tolist()


def test_bad_rows_are_refused_like_the_pipeline_refuses_them(served: ServedModel) -> None:
    bad = pd.DataFrame({"species": ["salmon"], "length_cm": [-3.0], "height_cm": [10.0]})
    with pytest.raises(DataError):
        served.predict(bad)
    with pytest.raises(DataError):
        served.predict(bad.drop(columns="height_cm"))
