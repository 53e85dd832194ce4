"""Request examples for the API docs: a typical fish of each species the line sends, and a batch.

They come from the packaged scenario (the fish ``make up`` streams and the first model is trained
on), so "Try it out" proposes fish the model knows, of a plausible size, instead of random text.
"""

from __future__ import annotations

from typing import Any

from tidemark.scenario import Scenario, load_scenario


def typical_fish(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """Per species (first phase that describes it): its mean length and mean height."""
    fish: dict[str, dict[str, Any]] = {}
    for phase in scenario.phases:
        for species, spec in phase.species.items():
            if species in fish:
                continue
            length = spec.length_cm.mean
            fish[species] = {
                "fish_id": f"example-{species}",
                "species": species,
                "length_cm": round(length, 1),
                "height_cm": round(length * spec.height_ratio.mean, 1),
            }
    return fish


def predict_examples(scenario: Scenario | None = None) -> dict[str, dict[str, Any]]:
    """OpenAPI ``examples`` of the predict body: one fish per species, then all of them at once."""
    fish = typical_fish(scenario or load_scenario())
    examples: dict[str, dict[str, Any]] = {
        species: {"summary": f"a typical {species}", "value": one} for species, one in fish.items()
    }
    examples["batch"] = {
        "summary": f"a batch: one {', one '.join(fish)}",
        "value": list(fish.values()),
    }
    return examples
