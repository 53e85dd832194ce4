"""One chunk of a phase's items, drawn column by column from the phase's random stream.

The order of the draws is fixed, whatever the mix of segments: first which segment each item
belongs to, then one row of standard normal draws per numeric feature of the project (in the
project's order) and one for the target's noise, then, only when the phase needs them, one row
of uniform draws per categorical feature besides the segment and one to pick resampled rows.
So the same seed gives the same items whichever segment is added or removed elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from tidemark.project.spec import Project
from tidemark.simulation.datasets import DataSet
from tidemark.simulation.spec import Choice, FloatArray, Normal, Phase, Ratio, Segment, clipped

ObjectArray = npt.NDArray[np.object_]


def draw_phase(
    project: Project,
    phase: Phase,
    data: Mapping[str, DataSet],
    rng: np.random.Generator,
    size: int,
) -> dict[str, list[Any]]:
    """``size`` items of ``phase``: each feature (the segment first among them, in the
    project's order) and the target, as lists; an absent optional feature is NaN or None."""
    labels = list(phase.segments)
    shares = np.array([segment.share for segment in phase.segments.values()])
    which = rng.choice(len(labels), size=size, p=shares / shares.sum())
    numbers = [f.name for f in project.numbers]
    z = rng.standard_normal((len(numbers) + 1, size))
    z_of = dict(zip(numbers, z, strict=False))
    choices = [f.name for f in project.categories if f.name != project.segment]
    resampling = any(s.resample is not None for s in phase.segments.values())
    uniforms = len(choices) + int(resampling)
    u = rng.random((uniforms, size)) if uniforms else np.empty((0, size))
    u_of = dict(zip(choices, u, strict=False))
    values = {name: np.full(size, np.nan) for name in numbers}
    categories: dict[str, ObjectArray] = {
        name: np.full(size, None, dtype=object) for name in choices
    }
    target = np.empty(size)
    for index, (label, segment) in enumerate(phase.segments.items()):
        mask = which == index
        if segment.resample is not None:
            table = data[segment.resample.data]
            rows = table.rows(label if project.segment else None)
            picked = rows[np.minimum((u[-1][mask] * len(rows)).astype(np.int64), len(rows) - 1)]
            noise_sd = segment.resample.noise_sd
            for name in numbers:
                values[name][mask] = table.numbers[name][picked] * _factor(
                    noise_sd, z_of[name][mask]
                )
            for name in choices:
                categories[name][mask] = table.categories[name][picked]
            target[mask] = table.target[picked] * _factor(noise_sd, z[-1][mask])
        else:
            _draw_segment(segment, mask, z_of, u_of, values, categories)
            assert segment.target is not None  # a segment draws or resamples
            law_values = {name: values[name][mask] for name in segment.target.features}
            target[mask] = segment.target.sample(law_values, z[-1][mask])
    columns: dict[str, list[Any]] = {}
    for feature in project.features:
        if feature.name == project.segment:
            columns[feature.name] = [labels[k] for k in which.tolist()]
        elif feature.name in values:
            columns[feature.name] = values[feature.name].tolist()
        else:
            columns[feature.name] = categories[feature.name].tolist()
    columns[project.target.name] = target.tolist()
    return columns


def _draw_segment(
    segment: Segment,
    mask: npt.NDArray[np.bool_],
    z_of: Mapping[str, FloatArray],
    u_of: Mapping[str, FloatArray],
    values: dict[str, FloatArray],
    categories: dict[str, ObjectArray],
) -> None:
    # Ratios last: each is a share of a number drawn before it.
    ordered = sorted(segment.features.items(), key=lambda item: isinstance(item[1], Ratio))
    for name, draw in ordered:
        if isinstance(draw, Choice):
            categories[name][mask] = draw.pick(u_of[name][mask])
        elif isinstance(draw, Ratio):
            values[name][mask] = values[draw.ratio_of][mask] * draw.apply(z_of[name][mask])
        else:
            assert isinstance(draw, Normal)
            values[name][mask] = draw.apply(z_of[name][mask])


def _factor(noise_sd: float, z: FloatArray) -> FloatArray:
    return np.exp(noise_sd * clipped(z))
