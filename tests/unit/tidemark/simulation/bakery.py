"""A neutral project for the engine's tests: loaves of three recipes, and a small scenario."""

from __future__ import annotations

from pathlib import Path

from tidemark.project.spec import Project, parse_project
from tidemark.simulation.scenario import Scenario, bind, parse_spec

BAKERY = parse_project(
    {
        "name": "bakery-loaf",
        "key": "loaf_id",
        "segment": "recipe",
        "times": {"input": "baked_at", "truth": "weighed_at"},
        "features": [
            {"name": "recipe", "type": "category", "values": ["rye", "wheat", "spelt"]},
            {"name": "dough_g", "type": "number", "unit": "g", "min": 0, "exclusive_min": True,
             "max": 5000},
            {"name": "crust_g", "type": "number", "unit": "g", "min": 0, "exclusive_min": True,
             "max": 2000},
            {"name": "oven", "type": "category", "values": ["north", "south"]},
            {"name": "humidity_pct", "type": "number", "min": 0, "max": 100, "required": False},
        ],
        "target": {"name": "loaf_g", "unit": "g", "min": 0, "exclusive_min": True, "max": 6000},
    }
)  # fmt: skip

SMALL = """
name: small
project: bakery-loaf
phases:
  - name: mixed
    count: 4000
    segments:
      rye:
        share: 3
        features:
          dough_g: {mean: 800, sd: 60, min: 600, max: 1000}
          crust_g: {ratio_of: dough_g, mean: 0.2, sd: 0.02, min: 0.15, max: 0.25}
          oven: {choice: {north: 3, south: 1}}
        target: {law: power, scale: 0.9, exponents: {dough_g: 1.0}, noise_sd: 0.05}
      wheat:
        share: 1
        features:
          dough_g: {mean: 500, sd: 40, min: 400, max: 600}
          crust_g: {ratio_of: dough_g, mean: 0.1, sd: 0.01, min: 0.08, max: 0.12}
          oven: {choice: {south: 1}}
          humidity_pct: {mean: 60, sd: 5, min: 40, max: 80}
        target:
          law: linear
          intercept: 10
          coefficients: {dough_g: 0.85, crust_g: 0.1}
          noise_sd: 8
  - name: rye-only
    count: 500
    segments:
      rye:
        features:
          dough_g: {mean: 900, sd: 60, min: 700, max: 1100}
          crust_g: {ratio_of: dough_g, mean: 0.2, sd: 0.02, min: 0.15, max: 0.25}
          oven: {choice: {north: 1}}
        target: {law: power, scale: 0.9, exponents: {dough_g: 1.0}, noise_sd: 0.05}
"""

# A data set of real loaves: more columns than the project, and gaps.
LOAVES = """recipe,dough_g,crust_g,oven,humidity_pct,loaf_g,baker
spelt,700,120,north,55,640,ann
spelt,900,130,south,,855,bob
spelt,NA,NA,north,50,NA,ann
rye,800,160,north,60,730,bob
spelt,690,118,south,58,,ann
"""


def scenario(text: str = SMALL, project: Project = BAKERY, folder: Path | None = None) -> Scenario:
    """``text`` parsed and bound to ``project``."""
    return bind(parse_spec(text, "test"), project, folder=folder, source="test")
