"""Models a user might ship, named by ``model.factory`` in the tests' projects."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
)

from tidemark.project.spec import Project

NOT_A_FUNCTION = 42


def quadratic(project: Project) -> TransformedTargetRegressor:
    """A quadratic in the log numbers and one-hot categories (all at once: no segment encoder
    to read), a ridge on the log target: trusted types only."""
    numbers = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("log", FunctionTransformer(np.log)),
            ("quadratic", PolynomialFeatures(degree=2, include_bias=False)),
        ]
    )
    columns = ColumnTransformer(
        [
            (
                "categories",
                OneHotEncoder(handle_unknown="ignore"),
                [c.name for c in project.categories],
            ),
            ("numbers", numbers, [f.name for f in project.numbers]),
        ]
    )
    model = Pipeline([("columns", columns), ("ridge", Ridge(alpha=1e-3))])
    return TransformedTargetRegressor(regressor=model, func=np.log, inverse_func=np.exp)


def boosted_trees(project: Project) -> Pipeline:
    """Gradient-boosted trees: their trees are a scikit-learn type that skops does not trust."""
    categories = [f.name for f in project.categories]
    numbers = [f.name for f in project.numbers]
    columns = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                categories,
            ),
            ("numbers", "passthrough", numbers),
        ]
    )
    trees = HistGradientBoostingRegressor(max_iter=50, random_state=0)
    return Pipeline([("columns", columns), ("trees", trees)])


def _double(values: Any) -> Any:
    return np.asarray(values) * 2


def with_own_function(project: Project) -> TransformedTargetRegressor:
    """A step that calls a function of this module: skops cannot load it without code."""
    model = quadratic(project)
    model.regressor.steps.insert(1, ("double", FunctionTransformer(_double)))
    return model


def not_an_estimator(project: Project) -> str:
    return "a string"


def a_class(project: Project) -> Any:
    return HistGradientBoostingRegressor


def broken(project: Project) -> Pipeline:
    raise RuntimeError("the user's bug")
