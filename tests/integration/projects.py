"""The example projects as a test runs them: on topics of its own."""

from __future__ import annotations

from pathlib import Path

from tidemark.config import Settings
from tidemark.project.spec import Project, load_project, parse_project

REPO = Path(__file__).resolve().parents[2]


def example(name: str) -> Project:
    """A project of the repository (``fish-weight``, ``penguin-mass``)."""
    return load_project(REPO / "projects" / f"{name}.toml")


def fish_on(settings: Settings) -> Project:
    """The fish project, its inputs and truths on the topics ``settings`` name (a test's own),
    where the services that still read their topics from the settings look for them."""
    fish = example("fish-weight")
    prefix, _, inputs = settings.kafka.topics.input.rpartition(".")
    same, _, truths = settings.kafka.topics.truth.rpartition(".")
    assert prefix == same, "the settings' measurement and weight topics share a prefix"
    return parse_project(
        fish.model_dump(mode="json")
        | {"topics": {"prefix": prefix, "input": inputs, "truth": truths}},
        "the fish on a test's topics",
    )
