"""A served version answers through its fast form exactly as its pipeline would."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tidemark.model import DataError, known_species, predict, train
from tidemark.registry.watcher import ServedModel
from tidemark.scenario import generate_frame, load_scenario
from tidemark.schemas import utc_now


@pytest.fixture(scope="module")
def served() -> ServedModel:
    frame = generate_frame(load_scenario(), seed=3, phases=["salmon", "walleye"])
    model = train(frame, seed=0).model
    return ServedModel(
        name="fish-weight",
        version="1",
        run_id="run",
        model=model,
        known_species=known_species(model),
        loaded_at=utc_now(),
    )


def test_a_served_version_uses_its_fast_form_and_gives_the_pipelines_answers(
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
    fast = served.predict(fish)
    slow = predict(served.model, fish)
    np.testing.assert_allclose(fast.weight_kg, slow.weight_kg, rtol=1e-9, atol=0)
    assert fast.species_known.tolist() == slow.species_known.tolist() == [True, True, False, True]


def test_bad_rows_are_refused_like_the_pipeline_refuses_them(served: ServedModel) -> None:
    bad = pd.DataFrame({"species": ["salmon"], "length_cm": [-3.0], "height_cm": [10.0]})
    with pytest.raises(DataError, match="bad values"):
        served.predict(bad)
    huge = pd.DataFrame({"species": ["salmon"], "length_cm": [1e300], "height_cm": [1e300]})
    with pytest.raises(DataError, match="no usable weight"):
        served.predict(huge)
    with pytest.raises(DataError, match="lacks the columns"):
        served.predict(bad.drop(columns="height_cm"))
