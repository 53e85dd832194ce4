"""Request examples for the API docs: a typical item of each segment a project sends, and a batch.

They come from the packaged scenario (the items ``make up`` streams and the first model is
trained on), so "Try it out" proposes items the model knows, of a plausible size, instead of
random text. ``/predict`` keeps its examples of the default scenario; each project's
``/models/{name}/predict`` gets its own from its scenarios (or from its features' bounds).
"""

from __future__ import annotations

from typing import Any

from tidemark.project.spec import Feature, FeatureType, Project
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


def project_examples(project: Project) -> dict[str, dict[str, Any]]:
    """OpenAPI ``examples`` of a project's predict body: an item of each segment of the first
    phase of its default scenario, then all of them; one item from its features' bounds when
    it has no scenario."""
    items = _scenario_items(project) or {"item": _from_bounds(project)}
    examples: dict[str, dict[str, Any]] = {
        label: {"summary": f"a typical {label}", "value": item} for label, item in items.items()
    }
    if len(items) > 1:
        examples["batch"] = {
            "summary": f"a batch: one {', one '.join(items)}",
            "value": list(items.values()),
        }
    return examples


def _scenario_items(project: Project) -> dict[str, dict[str, Any]]:
    # Imported here: only the docs of a project with scenarios need the simulation.
    from tidemark.simulation.generate import generate_frame
    from tidemark.simulation.library import load_scenario as load_project_scenario
    from tidemark.simulation.scenario import ScenarioError

    try:
        scenario = load_project_scenario(project)
        frame = generate_frame(scenario, 0, [scenario.phases[0].name])
    except (ScenarioError, OSError, ValueError, IndexError):
        return {}
    names = [project.key, *(f.name for f in project.features)]
    items: dict[str, dict[str, Any]] = {}
    for row in frame.to_dict("records"):
        label = str(row[project.segment]) if project.segment else "item"
        if label in items:
            continue
        item = {name: _plain(row.get(name)) for name in names}
        item[project.key] = f"example-{label}"
        items[label] = {k: v for k, v in item.items() if v is not None}
    return items


def _from_bounds(project: Project) -> dict[str, Any]:
    item: dict[str, Any] = {project.key: "example-1"}
    for feature in project.features:
        item[feature.name] = _typical(feature)
    return item


def _typical(feature: Feature) -> Any:
    if feature.type is FeatureType.CATEGORY:
        return feature.values[0] if feature.values else "a"
    low, high = feature.min, feature.max
    if low is not None and high is not None:
        return round(low + (high - low) / 4, 1) or 1.0
    return round((low or 0.0) + 1.0, 1)


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return None if value != value else round(value, 1)  # NaN: an absent optional value
    return value.item() if hasattr(value, "item") else value
