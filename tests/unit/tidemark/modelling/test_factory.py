"""The user's model: imported safely from ``model.factory``, trained and served like the
default one, and refused when skops could not load it without running code."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import skops.io
from sklearn.compose import TransformedTargetRegressor
from skops.io.exceptions import UntrustedTypesFoundException

from tests.unit.tidemark.modelling.streams import bakery, loaves
from tidemark.modelling.default import known_segments
from tidemark.modelling.factory import FactoryError, user_estimator
from tidemark.modelling.frames import model_input
from tidemark.modelling.storage import TRUSTED_TYPES, UntrustedModelError
from tidemark.modelling.training import build_estimator, evaluate, predict, train

MODULE = "tests.unit.tidemark.modelling.user_models"


def test_the_users_estimator_is_built_trained_and_judged() -> None:
    project = bakery(model={"factory": f"{MODULE}:quadratic"})
    assert isinstance(build_estimator(project), TransformedTargetRegressor)
    data = loaves(400, noise_sd=0.05)
    result = train(project, data, seed=0)
    assert result.segments == frozenset({"rye", "spelt", "wheat"})
    assert evaluate(project, result.model, loaves(200, seed=9, noise_sd=0.05)).judged < 0.08
    # Its segments are not in the model: the caller passes those its training returned.
    assert known_segments(project, result.model) is None
    frame = loaves(3).assign(recipe=["rye", "brioche", "spelt"])
    with pytest.raises(ValueError, match="pass the segments of its training data"):
        predict(project, result.model, frame)
    flags = predict(project, result.model, frame, segments=result.segments).segment_known
    assert flags.tolist() == [True, False, True]


def test_the_users_estimator_gets_the_features_in_order_with_nan_for_absent_values() -> None:
    project = bakery(model={"factory": f"{MODULE}:quadratic"})
    data = loaves(200, noise_sd=0.05, absent_share=0.3)
    model = train(project, data, seed=0).model
    assert list(model.feature_names_in_) == ["recipe", "dough_g", "oven", "proof_min", "glaze"]
    values = predict(project, model, data.drop(columns="glaze"), segments=["rye"]).values
    assert np.isfinite(values).all()


def test_the_users_model_round_trips_through_skops_with_the_trusted_types() -> None:
    project = bakery(model={"factory": f"{MODULE}:quadratic"})
    data = loaves(200, noise_sd=0.05)
    model = train(project, data, seed=0).model
    loaded = skops.io.loads(skops.io.dumps(model), trusted=list(TRUSTED_TYPES))
    assert np.array_equal(
        predict(project, loaded, data, segments=[]).values,
        predict(project, model, data, segments=[]).values,
    )


def test_a_model_skops_cannot_load_without_code_is_refused_at_training() -> None:
    project = bakery(model={"factory": f"{MODULE}:with_own_function"})
    with pytest.raises(UntrustedModelError, match=rf"\['{MODULE}._double'\]"):
        train(project, loaves(60), seed=0)
    # What a serving process would meet: skops refuses it, naming the same type.
    data = loaves(60)
    model = user_estimator(project).fit(model_input(project, data), data.loaf_g.to_numpy())
    with pytest.raises(UntrustedTypesFoundException, match="_double"):
        skops.io.loads(skops.io.dumps(model), trusted=list(TRUSTED_TYPES))


def test_even_some_of_scikit_learns_own_models_hold_types_skops_does_not_trust() -> None:
    project = bakery(model={"factory": f"{MODULE}:boosted_trees"})
    with pytest.raises(UntrustedModelError, match="TreePredictor"):
        train(project, loaves(60), seed=0)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("no_such_module_here:make", r"no module named 'no_such_module_here' \(is it installed"),
        (f"{MODULE}.deeper:make", rf"no module named '{MODULE}.deeper'"),
        (f"{MODULE}:missing", rf"module {MODULE} has no missing"),
        (f"{MODULE}:NOT_A_FUNCTION", "NOT_A_FUNCTION is a int, not a function"),
        (f"{MODULE}:not_an_estimator", "returned str, not a scikit-learn estimator"),
        (f"{MODULE}:a_class", "returned ABCMeta, not a scikit-learn estimator"),
        (f"{MODULE}:broken", r"calling it with the project failed: RuntimeError\(\"the user's bug"),
    ],
)
def test_a_bad_factory_is_refused_with_a_clear_error(factory: str, message: str) -> None:
    project = bakery(model={"factory": factory})
    with pytest.raises(FactoryError, match=message) as raised:
        train(project, loaves(30), seed=0)
    assert str(raised.value).startswith(f"bakery-loaf: model.factory '{factory}'")


def test_a_module_that_fails_to_import_says_what_it_lacks(tmp_path: Path) -> None:
    (tmp_path / "loaf_models_broken.py").write_text("import a_library_not_installed\n")
    sys.path.insert(0, str(tmp_path))
    try:
        project = bakery(model={"factory": "loaf_models_broken:make"})
        with pytest.raises(FactoryError, match="importing loaf_models_broken failed: No module"):
            user_estimator(project)
    finally:
        sys.path.remove(str(tmp_path))


def test_a_project_without_factory_has_no_users_model() -> None:
    with pytest.raises(FactoryError, match=r"names no model\.factory"):
        user_estimator(bakery())
