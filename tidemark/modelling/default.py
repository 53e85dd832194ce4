"""The platform's default model: one ridge regression with per-segment partial pooling.

Each segment of a project has its own law, shrunk toward a shared one. For a positive target
the law is linear in log space (a product of powers of the positive numeric features, the
usual shape of a size, a mass or a duration)::

    log y = b0 + Σ_f b_f·t_f(x_f) + Σ_c o_c[level]                 the shared law
          + d0[segment] + Σ_f d_f[segment]·t_f(x_f)                the segment's deviation

where ``t_f`` is the logarithm of a numeric feature whose bounds make it positive, centred on
the training data, and otherwise the value itself, standardised (its units would otherwise set
its penalty), and ``o_c`` the shared offsets of the levels of each categorical feature other
than the segment (one-hot; a level never seen adds nothing). A target that is not positive
gets the same law without the logarithm, standardised for the same reason. The shared
coefficients are barely penalised, the segments' deviations by ``SEGMENT_PENALTY``, so a
segment with few rows leans on the shared law and one with many rows gets its own; a segment
the model never saw has no deviation and gets the shared law (flagged, never refused).
Centring makes shrinking a segment's slopes leave its typical value where its own rows put it.

The deviations are the segment's one-hot columns times [1, t_f(x_f)]: ``PolynomialFeatures``
of the one-hot columns and one transformed feature, one block per numeric feature. The one-hot
columns are scaled by ``sqrt(RIDGE_ALPHA / SEGMENT_PENALTY)`` (``transformer_weights``) so
that the single ridge ``alpha`` acts on the deviations as a penalty of ``SEGMENT_PENALTY``: a
coefficient on a column scaled by ``s`` costs ``alpha / s²`` per unit of effect. A segment's
offset appears in every block, so its penalty is ``SEGMENT_PENALTY`` divided by the number of
numeric features: a segment's level needs far fewer rows than its slopes. A project without a
numeric feature gets one block of the segment's offsets alone; a project without a segment
is the shared law alone.

An absent optional number is imputed with its training median; an absent optional category is
a level of its own ("missing", NaN in the encoder), which adds nothing when training never saw
one absent. The pipeline holds only stock scikit-learn classes and numpy ufuncs, so MLflow's
skops format stores and loads it without pickle; skops' default trusted types suffice, except
for the imputer of an optional number (``tidemark.modelling.storage.TRUSTED_TYPES``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    PolynomialFeatures,
    StandardScaler,
)

from tidemark.project.spec import Feature, Project

# The penalty on the shared law: next to nothing, only enough to keep the solver away from the
# all-zero columns (products of two one-hot columns) that the interactions create.
RIDGE_ALPHA = 1e-6
# The penalty on a segment's deviation from the shared law, in squared units of the modelled
# target (its log for a positive one, its standardised value otherwise). A segment with n rows
# whose transformed feature spreads by sd keeps the share n·sd² / (n·sd² + SEGMENT_PENALTY) of
# its own slope: for log sizes that spread by 0.11, about half at 8 rows, 80 % at 30 and 90 %
# at 75; for a standardised feature (sd 1), nearly all of it at a few rows. As a ridge prior
# it says that segments' slopes differ by about sqrt(noise variance / 0.1): 0.22 for a log
# noise of 0.07. At 0.5 (slopes differing by 0.1) a segment with its own law that arrives
# with 30 rows kept half of its slope, and its 30-item windows erred up to 2.0 times their
# noise floor, against 1.4 at 0.1 (the example scenario "never-seen", twelve seeds).
SEGMENT_PENALTY = 0.1
# Past five segments the blocks are sparse and the ridge solves them iteratively (conjugate
# gradients); at scikit-learn's default tolerance (1e-4) that solution was up to 25 % off the
# direct one with 20 segments, at this one it agrees to 1e-6 (the direct solver ignores it).
RIDGE_TOLERANCE = 1e-10

_SEGMENT_SCALE = float(np.sqrt(RIDGE_ALPHA / SEGMENT_PENALTY))
_SEGMENT = "segment"


def logged(feature: Feature) -> bool:
    """Whether the default model takes the logarithm of a numeric feature: its bounds make it
    positive."""
    return feature.positive


def build_default(project: Project, seed: int = 0) -> Pipeline:
    """An unfitted default model of ``project``: it reads :func:`frames.model_input`."""
    segment = project.segment
    blocks: list[tuple[str, Any, list[str]]] = []
    for feature in project.numbers:
        if segment is None:
            blocks.append((f"by_{feature.name}", _transformed(feature), [feature.name]))
        else:
            block = _crossed(segment, ("value", _transformed(feature), [feature.name]))
            blocks.append((f"by_{feature.name}", block, [segment, feature.name]))
    if segment is not None and not project.numbers:
        blocks.append((f"by_{segment}", _crossed(segment, None), [segment]))
    for category in project.categories:
        if category.name != segment:
            # Shared offsets; an absent value (NaN) is a level of its own, and a level never
            # seen adds nothing.
            levels = OneHotEncoder(handle_unknown="ignore")
            blocks.append((f"levels_{category.name}", levels, [category.name]))
    ridge = Ridge(alpha=RIDGE_ALPHA, tol=RIDGE_TOLERANCE, random_state=seed)
    if project.target.positive:
        regressor = TransformedTargetRegressor(regressor=ridge, func=np.log, inverse_func=np.exp)
    else:
        regressor = TransformedTargetRegressor(regressor=ridge, transformer=StandardScaler())
    return Pipeline([("features", ColumnTransformer(blocks)), ("regressor", regressor)])


def _transformed(feature: Feature) -> Pipeline:
    """A numeric feature as the law reads it: logged and centred if positive, else
    standardised; then, if optional, an absent value imputed with the training median (of the
    transformed value, which is the transformed median), or 0, no effect, when training never
    saw the feature at all."""
    steps: list[tuple[str, Any]] = []
    if logged(feature):
        steps.append(("log", FunctionTransformer(np.log, feature_names_out="one-to-one")))
        steps.append(("centre", StandardScaler(with_std=False)))
    else:
        steps.append(("standardise", StandardScaler()))
    if not feature.required:
        steps.append(("impute", SimpleImputer(strategy="median", keep_empty_features=True)))
    return Pipeline(steps)


def _crossed(segment: str, value: tuple[str, Any, list[str]] | None) -> Pipeline:
    """[segment one-hot, transformed feature] and their products: offsets and slope deviations."""
    encoder = (_SEGMENT, OneHotEncoder(handle_unknown="ignore"), [segment])
    parts = [encoder] if value is None else [encoder, value]
    columns = ColumnTransformer(parts, transformer_weights={_SEGMENT: _SEGMENT_SCALE})
    if value is None:
        return Pipeline([("columns", columns)])
    crossed = PolynomialFeatures(degree=2, interaction_only=True, include_bias=False)
    return Pipeline([("columns", columns), ("crossed", crossed)])


def known_segments(project: Project, model: Any) -> frozenset[str] | None:
    """The segments a fitted model has its own law for, read from its segment encoder.

    None when the model has no encoder of the segment (a user's model: its segments are those
    of its training data, which training returns). Empty for a project without a segment.
    """
    if project.segment is None:
        return frozenset()
    return encoded_levels(model, project.segment)


def encoded_levels(model: Any, name: str) -> frozenset[str] | None:
    """The levels that a fitted model's one-hot encoder of the column ``name`` learnt (an
    absent value, its NaN level, is not one of them), or None when it has no such encoder."""
    for part in _fitted_parts(model):
        if not isinstance(part, ColumnTransformer) or not hasattr(part, "transformers_"):
            continue
        for _, transformer, columns in part.transformers_:
            encoder = transformer.steps[-1][1] if isinstance(transformer, Pipeline) else transformer
            if isinstance(encoder, OneHotEncoder) and list(columns) == [name]:
                levels = encoder.categories_[0]
                return frozenset(level for level in levels if isinstance(level, str))
    return None


def _fitted_parts(model: Any) -> Iterator[Any]:
    """Every estimator inside a fitted model, the model first (pipelines, column transformers
    and target transformers are opened)."""
    yield model
    if isinstance(model, Pipeline):
        for _, step in model.steps:
            yield from _fitted_parts(step)
    elif isinstance(model, ColumnTransformer) and hasattr(model, "transformers_"):
        for _, transformer, _ in model.transformers_:
            if not isinstance(transformer, str):
                yield from _fitted_parts(transformer)
    elif isinstance(model, TransformedTargetRegressor) and hasattr(model, "regressor_"):
        yield from _fitted_parts(model.regressor_)
