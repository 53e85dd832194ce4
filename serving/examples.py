"""Request examples for the API docs: a typical item of each segment a project sends, and a batch.

They come from the project's default scenario (the items ``make up`` streams, which the first
model is trained on), so "Try it out" proposes items the model knows, of a plausible size,
instead of random text: for each segment, in the order the scenario brings them, the median of
each number and the most common value of each category over its items of the first phase that
has it. A project without scenarios gets one item from its features' bounds.
"""

from __future__ import annotations

from typing import Any

from tidemark.project.spec import Feature, FeatureType, Project

# Items drawn per phase to find typical values: medians settle well before that.
_SAMPLE_PER_PHASE = 400
# Significant digits of an example's numbers: typical, not a measurement's precision.
_DIGITS = 3


def project_examples(project: Project) -> dict[str, dict[str, Any]]:
    """OpenAPI ``examples`` of a project's predict body: a typical item of each segment of its
    default scenario, then all of them; one item from its features' bounds when it has no
    scenario."""
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
    from tidemark.simulation.library import load_scenario
    from tidemark.simulation.scenario import PHASE_COLUMN, ScenarioError

    try:
        scenario = load_scenario(project)
        sample = scenario.with_phases(
            [
                p.model_copy(update={"count": min(p.count, _SAMPLE_PER_PHASE)})
                for p in scenario.phases
            ]
        )
        frame = generate_frame(sample, 0)
    except (ScenarioError, OSError, ValueError, IndexError):
        return {}
    items: dict[str, dict[str, Any]] = {}
    for phase in dict.fromkeys(frame[PHASE_COLUMN]):
        rows = frame[frame[PHASE_COLUMN] == phase]
        groups = rows.groupby(project.segment, sort=False) if project.segment else [("item", rows)]
        for label, group in groups:
            if str(label) in items:
                continue
            item: dict[str, Any] = {project.key: f"example-{label}"}
            for feature in project.features:
                value = _typical_of(feature, group[feature.name])
                if value is not None:
                    item[feature.name] = value
            items[str(label)] = item
    return items


def _typical_of(feature: Feature, column: Any) -> Any:
    present = column.dropna()
    if present.empty:
        return None  # an optional feature the scenario never gives
    if feature.type is FeatureType.CATEGORY:
        return str(present.mode().iloc[0])
    return float(f"{float(present.median()):.{_DIGITS}g}")


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
