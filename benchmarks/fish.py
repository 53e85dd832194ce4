"""The fish project's scenarios, which the benchmarks measure with."""

from __future__ import annotations

from pathlib import Path

from tidemark.project.spec import load_project
from tidemark.simulation.library import load_scenario
from tidemark.simulation.scenario import Scenario

FISH = load_project(Path(__file__).resolve().parents[1] / "projects" / "fish-weight.toml")


def fish_scenario(name: str | None = None) -> Scenario:
    """A scenario of the fish by name; their default (salmon → walleye → salmon) for None."""
    return load_scenario(FISH, name)
