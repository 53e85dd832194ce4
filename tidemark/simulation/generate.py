"""A scenario's items, deterministic for a seed: as rows for the simulator, or as a table.

Each phase draws from its own random stream (derived from the seed and the phase's position),
so a subset of phases yields exactly the items of the full run; keys are UUIDs derived from the
scenario's name, the seed and the item's index, so a replay produces the same keys and the
store, which keeps the first record of a key, deduplicates it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tidemark.simulation.draw import draw_phase
from tidemark.simulation.scenario import PHASE_COLUMN, Scenario, ScenarioError

if TYPE_CHECKING:
    import pandas as pd

# Fixed forever: changing it would change every generated key.
KEY_NAMESPACE = uuid.UUID("5f0c6a52-8d3e-4b8e-9a51-7d1f3c0e2b64")
_CHUNK_SIZE = 65_536


@dataclass(frozen=True, slots=True)
class Row:
    """One item: its phase, key, features (an absent optional one left out) and target.

    The target is None for an item whose truth never comes (a replayed row without one).
    """

    phase: str
    key: str
    features: Mapping[str, float | str]
    target: float | None


def generate(scenario: Scenario, seed: int) -> Iterator[Row]:
    """Every item of the scenario in order; the same seed always yields the same items."""
    project = scenario.project
    names = [f.name for f in project.features]
    for chunk in _chunks(scenario, seed, range(len(scenario.phases))):
        for index in range(len(chunk[project.key])):
            features = {name: chunk[name][index] for name in names}
            yield Row(
                phase=chunk[PHASE_COLUMN][index],
                key=chunk[project.key][index],
                features={k: v for k, v in features.items() if _present(v)},
                target=chunk[project.target.name][index],
            )


def generate_frame(
    scenario: Scenario, seed: int, phases: Sequence[str] | None = None
) -> pd.DataFrame:
    """The items of the chosen phases (all by default) as a table.

    Its columns are ``phase``, the project's key, its features in order and its target; the
    rows are exactly those ``generate`` yields for these phases, keys included.
    """
    # Imported here: the simulator generates items without pandas.
    import pandas as pd

    names = [phase.name for phase in scenario.phases]
    wanted = names if phases is None else list(phases)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ScenarioError(f"scenario {scenario.name!r} has no phases {unknown}; it has {names}")
    indices = [i for i, name in enumerate(names) if name in wanted]
    frames = [pd.DataFrame(chunk) for chunk in _chunks(scenario, seed, indices)]
    if not frames:
        return pd.DataFrame(columns=columns(scenario))
    return pd.concat(frames, ignore_index=True)


def columns(scenario: Scenario) -> list[str]:
    """The columns of :func:`generate_frame`'s table."""
    project = scenario.project
    return [PHASE_COLUMN, project.key, *(f.name for f in project.features), project.target.name]


def fresh_seed() -> int:
    """A seed no earlier run has used: the clock in milliseconds.

    Keys derive from the seed, and the joiner keeps the first record of each key, so a run
    that reused a seed would send items the store silently ignores.
    """
    return time.time_ns() // 1_000_000


def item_keys(name: str, seed: int, first: int, size: int) -> list[str]:
    """The keys of items ``first`` to ``first + size`` of a run named ``name`` with ``seed``."""
    return [
        str(uuid.uuid5(KEY_NAMESPACE, f"{name}:{seed}:{index}"))
        for index in range(first, first + size)
    ]


def _chunks(
    scenario: Scenario, seed: int, phase_indices: Sequence[int]
) -> Iterator[dict[str, list[Any]]]:
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    starts = np.cumsum([0] + [phase.count for phase in scenario.phases])
    for index in phase_indices:
        phase = scenario.phases[index]
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        for offset in range(0, phase.count, _CHUNK_SIZE):
            size = min(_CHUNK_SIZE, phase.count - offset)
            first = int(starts[index]) + offset
            yield {
                PHASE_COLUMN: [phase.name] * size,
                scenario.project.key: item_keys(scenario.name, seed, first, size),
                **draw_phase(scenario.project, phase, scenario.data, rng, size),
            }


def _present(value: float | str | None) -> bool:
    return value is not None and value == value  # NaN is the only value unequal to itself
