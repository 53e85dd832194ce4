"""Two neutral projects and their data, made here: a bakery's loaves and a sorter's parcels.

The bakery's target is positive (a loaf's mass, judged by its relative error) and its law a
product of powers per recipe; the sorter's target may be negative (a parcel's delay against
its schedule, judged by its absolute error) and its law linear per lane. Both have a category
besides the segment and an optional feature, so every part of the model is exercised.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tidemark.project.spec import Project, parse_project

TIMES = {"input": "seen_at", "truth": "known_at"}


def bakery(**changes: Any) -> Project:
    """Loaves: mass from recipe (the segment), oven, optional glaze, dough and optional proof."""
    spec: dict[str, Any] = {
        "name": "bakery-loaf",
        "key": "loaf_id",
        "segment": "recipe",
        "times": TIMES,
        "features": [
            {"name": "recipe", "type": "category", "case": "lower"},
            {"name": "dough_g", "type": "number", "min": 0, "exclusive_min": True, "max": 5000},
            {"name": "oven", "type": "category"},
            {
                "name": "proof_min",
                "type": "number",
                "min": 0,
                "exclusive_min": True,
                "max": 600,
                "required": False,
            },
            {"name": "glaze", "type": "category", "required": False},
        ],
        "target": {"name": "loaf_g", "unit": "g", "min": 0, "exclusive_min": True, "max": 5000},
    }
    spec.update(changes)
    return parse_project(spec)


def sorter(**changes: Any) -> Project:
    """Parcels: delay (may be negative) from lane (the segment), carrier, distance, temperature."""
    spec: dict[str, Any] = {
        "name": "parcel-sorter",
        "key": "parcel_id",
        "segment": "lane",
        "times": TIMES,
        "features": [
            {"name": "lane", "type": "category"},
            {"name": "carrier", "type": "category"},
            # A distance of 0 is possible: not positive, so the model takes it as it is.
            {"name": "distance_m", "type": "number", "min": 0, "max": 500},
            {"name": "temperature_c", "type": "number", "min": -40, "max": 60, "required": False},
        ],
        "target": {"name": "delay_s", "unit": "s", "min": -600, "max": 3600},
        # Judged by its absolute error: in seconds.
        "loop": {"monitor": {"error_threshold": 60}, "shadow": {"error_cap": 1800}},
    }
    spec.update(changes)
    return parse_project(spec)


# Each recipe's law: loaf_g = scale * dough_g**b * proof_min**c (before oven and glaze).
RECIPES = {"rye": (0.9, 1.0, 0.05), "spelt": (0.7, 1.05, 0.08), "wheat": (0.8, 0.98, 0.1)}
OVENS = {"deck": 1.0, "convection": 0.96}
GLAZES = {"egg": 1.03, "milk": 1.01}


def loaves(
    count: int,
    *,
    seed: int = 0,
    noise_sd: float = 0.0,
    recipes: dict[str, tuple[float, float, float]] | None = None,
    absent_share: float = 0.0,
) -> pd.DataFrame:
    """Loaves of each recipe in turn; ``absent_share`` of proofs and glazes are not recorded."""
    rng = np.random.default_rng(seed)
    laws = recipes or RECIPES
    names = list(laws)
    recipe = [names[i % len(names)] for i in range(count)]
    dough = rng.uniform(300.0, 1200.0, count)
    proof = rng.uniform(30.0, 120.0, count)
    oven = rng.choice(list(OVENS), count)
    glaze = rng.choice(list(GLAZES), count)
    scale, b, c = (np.array([laws[r][i] for r in recipe]) for i in range(3))
    mass = scale * dough**b * proof**c * np.array([OVENS[o] for o in oven])
    mass *= np.array([GLAZES[g] for g in glaze]) * np.exp(noise_sd * rng.standard_normal(count))
    frame = pd.DataFrame(
        {
            "loaf_id": [f"loaf-{i}" for i in range(count)],
            "recipe": recipe,
            "dough_g": dough,
            "oven": oven,
            "proof_min": proof,
            "glaze": glaze.astype(object),
            "loaf_g": mass,
        }
    )
    if absent_share:
        absent = rng.random(count) < absent_share
        frame.loc[absent, "proof_min"] = np.nan
        frame.loc[rng.random(count) < absent_share, "glaze"] = None
    return frame


# Each lane's law: delay_s = offset + per_m * distance_m (before carrier and temperature).
LANES = {"north": (-30.0, 0.8), "south": (12.0, 1.1), "east": (0.0, 0.5)}
CARRIERS = {"post": 0.0, "courier": -20.0}
PER_DEGREE = -1.5


def parcels(count: int, *, seed: int = 0, noise_s: float = 0.0) -> pd.DataFrame:
    """Parcels of each lane in turn, with delays before and after their schedule."""
    rng = np.random.default_rng(seed)
    names = list(LANES)
    lane = [names[i % len(names)] for i in range(count)]
    distance = rng.uniform(5.0, 400.0, count)
    temperature = rng.uniform(-20.0, 35.0, count)
    carrier = rng.choice(list(CARRIERS), count)
    offset, per_m = (np.array([LANES[name][i] for name in lane]) for i in range(2))
    delay = offset + per_m * distance + PER_DEGREE * temperature
    delay += np.array([CARRIERS[c] for c in carrier]) + noise_s * rng.standard_normal(count)
    return pd.DataFrame(
        {
            "lane": lane,
            "carrier": carrier,
            "distance_m": distance,
            "temperature_c": temperature,
            "delay_s": delay,
        }
    )
