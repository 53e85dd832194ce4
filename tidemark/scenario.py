"""Synthetic fish, described as data: scenarios of phases with concept drift, and user CSVs.

A scenario is a YAML file: a name and a list of phases. Each phase says how many fish pass and
which species, and for each species how long and how tall they are and how much they truly
weigh::

    name: my-scenario
    phases:
      - name: spring
        count: 1000
        species:
          salmon:
            share: 1.0                 # relative share of the phase's fish
            length_cm: {mean: 70, sd: 9, min: 50, max: 90}      # normal, clipped to [min, max]
            height_ratio: {mean: 0.24, sd: 0.012, min: 0.20, max: 0.28}  # height / length
            weight: {a: 4.86e-5, b: 3.0, c: 1.0, noise_sd: 0.07}

The true weight follows one of two laws, told apart by their fields. Allometric (``a, b, c,
noise_sd``): ``weight_kg = a * length_cm**b * (height_cm / length_cm)**c`` times a log-normal
noise factor ``exp(noise_sd * z)``. Linear (``per_length_cm, per_height_cm, noise_kg``), as in
the original tutorial: ``weight_kg = per_length_cm * length_cm + per_height_cm * height_cm``
plus Gaussian noise ``noise_kg * z``. Either way ``z`` is clipped to
``[-NOISE_CLIP_SD, NOISE_CLIP_SD]``. Every species' extremes are checked against the data
contract's bounds when the scenario loads, so every generated record is a valid message.

A scenario may also give the line's pace, ``event_interval_s`` (seconds between two fish), which
the simulator uses unless told another rate. The packaged scenarios (``tidemark/scenarios/``)
are loaded by name: ``load_scenario("tutorial")``.

Generation is deterministic for a seed: each phase draws from its own random stream (derived
from the seed and the phase's position), so a subset of phases yields exactly the same fish as
the full run, and fish ids are UUIDs derived from the scenario name, the seed and the record's
index, so a replay produces the same ids and the training store deduplicates it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Self

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from tidemark.schemas import MAX_HEIGHT_CM, MAX_LENGTH_CM, MAX_WEIGHT_KG

if TYPE_CHECKING:
    import pandas as pd

FloatArray = npt.NDArray[np.float64]

RECORD_COLUMNS = ("phase", "fish_id", "species", "length_cm", "height_cm", "weight_kg")
CSV_REQUIRED_COLUMNS = ("species", "length_cm", "height_cm", "weight_kg")
CSV_PHASE = "csv"
NOISE_CLIP_SD = 4.0
# Fixed forever: changing it would change every generated fish id.
FISH_ID_NAMESPACE = uuid.UUID("5f0c6a52-8d3e-4b8e-9a51-7d1f3c0e2b64")
DEFAULT_SCENARIO = "default"
_PACKAGED_DIR = "scenarios"
_SUFFIX = ".yaml"
_CHUNK_SIZE = 65_536
_MAX_REPORTED_ERRORS = 20

SpeciesName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9 _\-]*$", max_length=64)]


class ScenarioError(ValueError):
    """A scenario file that cannot be read or does not describe valid fish."""


class CsvError(ValueError):
    """A CSV of fish that cannot be loaded; the message lists the bad lines."""


@dataclass(frozen=True, slots=True)
class FishRecord:
    """One fish: what the line measures (species, sizes) and what the scale later says."""

    phase: str
    fish_id: str
    species: str
    length_cm: float
    height_cm: float
    weight_kg: float


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ClippedNormal(_Spec):
    """A normal distribution clipped to ``[min, max]``, so that draws always stay in bounds."""

    mean: float
    sd: float = Field(ge=0)
    min: float = Field(gt=0)
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.min <= self.mean <= self.max:
            raise ValueError(f"need min <= mean <= max, got {self.min}, {self.mean}, {self.max}")
        return self

    def apply(self, z: FloatArray) -> FloatArray:
        """Turn standard normal draws into values of this distribution."""
        return np.clip(self.mean + self.sd * z, self.min, self.max)


class WeightLaw(_Spec):
    """The allometric weight: ``a * length_cm**b * (height_cm / length_cm)**c`` kg, with noise."""

    a: float = Field(gt=0)
    b: float = Field(gt=0)
    c: float
    noise_sd: float = Field(ge=0, le=1)

    def median_kg(self, length_cm: FloatArray, height_ratio: FloatArray) -> FloatArray:
        """The noise-free (median) weight of fish of these lengths and height ratios."""
        return np.asarray(self.a * length_cm**self.b * height_ratio**self.c, dtype=np.float64)

    def sample_kg(
        self, length_cm: FloatArray, height_ratio: FloatArray, z: FloatArray
    ) -> FloatArray:
        """Weights with multiplicative noise; ``z`` are standard normal draws (clipped)."""
        noise = np.exp(self.noise_sd * np.clip(z, -NOISE_CLIP_SD, NOISE_CLIP_SD))
        return self.median_kg(length_cm, height_ratio) * noise


class LinearWeightLaw(_Spec):
    """The tutorial's weight: ``per_length_cm * length_cm + per_height_cm * height_cm`` kg, plus
    Gaussian noise of ``noise_kg``."""

    per_length_cm: float = Field(ge=0)
    per_height_cm: float = Field(ge=0)
    noise_kg: float = Field(ge=0)

    @model_validator(mode="after")
    def _grows(self) -> Self:
        if self.per_length_cm == 0 and self.per_height_cm == 0:
            raise ValueError("per_length_cm or per_height_cm must be positive")
        return self

    def median_kg(self, length_cm: FloatArray, height_ratio: FloatArray) -> FloatArray:
        """The noise-free (mean and median) weight of fish of these lengths and height ratios."""
        height_cm = length_cm * height_ratio
        return np.asarray(
            self.per_length_cm * length_cm + self.per_height_cm * height_cm, dtype=np.float64
        )

    def sample_kg(
        self, length_cm: FloatArray, height_ratio: FloatArray, z: FloatArray
    ) -> FloatArray:
        """Weights with additive noise; ``z`` are standard normal draws (clipped)."""
        noise = self.noise_kg * np.clip(z, -NOISE_CLIP_SD, NOISE_CLIP_SD)
        return self.median_kg(length_cm, height_ratio) + noise


class SpeciesSpec(_Spec):
    """How one species looks and weighs during a phase."""

    share: float = Field(gt=0)
    length_cm: ClippedNormal
    height_ratio: ClippedNormal
    weight: WeightLaw | LinearWeightLaw

    @model_validator(mode="after")
    def _within_contract(self) -> Self:
        # Sizes and weights outside the contract would be dead-lettered by every consumer.
        if self.length_cm.max > MAX_LENGTH_CM:
            raise ValueError(f"length_cm.max {self.length_cm.max} exceeds {MAX_LENGTH_CM} cm")
        max_height = self.length_cm.max * self.height_ratio.max
        if max_height > MAX_HEIGHT_CM:
            raise ValueError(f"fish can be {max_height:.1f} cm tall, above {MAX_HEIGHT_CM} cm")
        low, high = self._weight_range()
        if not (low > 0 and high <= MAX_WEIGHT_KG):
            raise ValueError(
                f"weights range over [{low:.3g}, {high:.3g}] kg, outside (0, {MAX_WEIGHT_KG}] kg"
            )
        return self

    def _weight_range(self) -> tuple[float, float]:
        # Either law's weight is monotone in length, ratio and z: its extremes lie at the corners.
        corners = np.array(
            [
                (length, ratio, z)
                for length in (self.length_cm.min, self.length_cm.max)
                for ratio in (self.height_ratio.min, self.height_ratio.max)
                for z in (-NOISE_CLIP_SD, NOISE_CLIP_SD)
            ]
        )
        with np.errstate(over="ignore", under="ignore"):
            weights = self.weight.sample_kg(corners[:, 0], corners[:, 1], corners[:, 2])
        return float(weights.min()), float(weights.max())


class Phase(_Spec):
    """A stretch of the stream with a fixed species mix and fixed fish."""

    name: str = Field(min_length=1)
    count: int = Field(ge=1)
    species: dict[SpeciesName, SpeciesSpec] = Field(min_length=1)


class Scenario(_Spec):
    """A named sequence of phases; the drift is the change from one phase to the next."""

    name: str = Field(min_length=1)
    description: str = ""
    # The line's pace: seconds between two fish, when the scenario describes a real line's.
    event_interval_s: float | None = Field(default=None, gt=0)
    phases: list[Phase] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_phase_names(self) -> Self:
        names = [phase.name for phase in self.phases]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"phase names must be unique, repeated: {duplicates}")
        return self

    @property
    def count(self) -> int:
        """The number of fish in the whole scenario."""
        return sum(phase.count for phase in self.phases)


def packaged_scenarios() -> tuple[str, ...]:
    """The names of the scenarios that ship with Tidemark (``default``, ``tutorial``, ...)."""
    folder = resources.files("tidemark").joinpath(_PACKAGED_DIR)
    return tuple(
        sorted(
            entry.name.removesuffix(_SUFFIX)
            for entry in folder.iterdir()
            if entry.name.endswith(_SUFFIX)
        )
    )


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Read and validate a scenario: a YAML file, or the name of a packaged scenario.

    ``None`` loads the packaged default scenario. A bare name (no such file, no folder, no
    suffix) such as ``tutorial`` names a packaged scenario.
    """
    if path is None:
        return _load_packaged(DEFAULT_SCENARIO, DEFAULT_SCENARIO)
    name = _packaged_name(path)
    if name is not None:
        return _load_packaged(name, path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from exc
    return parse_scenario(text, source=str(path))


def _load_packaged(name: str, asked: str | Path) -> Scenario:
    if name not in packaged_scenarios():
        raise ScenarioError(
            f"no scenario file {asked} and no packaged scenario {name!r}; "
            f"packaged: {', '.join(packaged_scenarios())}"
        )
    folder = resources.files("tidemark").joinpath(_PACKAGED_DIR)
    text = folder.joinpath(f"{name}{_SUFFIX}").read_text("utf-8")
    return parse_scenario(text, source=f"the packaged scenario {name!r}")


def _packaged_name(path: str | Path) -> str | None:
    candidate = Path(path)
    if candidate.exists() or candidate.suffix or len(candidate.parts) != 1:
        return None
    return candidate.name


def parse_scenario(text: str, *, source: str = "<string>") -> Scenario:
    """Validate a scenario given as YAML text; errors name the source and each bad field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"scenario {source} is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ScenarioError(f"scenario {source} must be a mapping with 'name' and 'phases'")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(part) for part in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ScenarioError(
            f"scenario {source} is invalid ({exc.error_count()} problems):\n{problems}"
        ) from exc


def generate(scenario: Scenario, seed: int) -> Iterator[FishRecord]:
    """Yield every fish of the scenario in order; the same seed always yields the same fish."""
    for chunk in _chunks(scenario, seed, range(len(scenario.phases))):
        for row in zip(*chunk.values(), strict=True):
            yield FishRecord(*row)


def generate_frame(
    scenario: Scenario, seed: int, phases: Sequence[str] | None = None
) -> pd.DataFrame:
    """The fish of the chosen phases (all by default) as a DataFrame of ``RECORD_COLUMNS``.

    The rows are exactly those ``generate`` yields for these phases, ids included.
    """
    # Imported here: the simulator generates fish without pandas.
    import pandas as pd

    names = [phase.name for phase in scenario.phases]
    wanted = names if phases is None else list(phases)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ScenarioError(f"scenario {scenario.name!r} has no phases {unknown}; it has {names}")
    indices = [i for i, name in enumerate(names) if name in wanted]
    frames = [pd.DataFrame(chunk) for chunk in _chunks(scenario, seed, indices)]
    if not frames:
        return pd.DataFrame(columns=list(RECORD_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def to_frame(records: Sequence[FishRecord]) -> pd.DataFrame:
    """Records (from a scenario or a CSV) as a DataFrame of ``RECORD_COLUMNS``."""
    import pandas as pd

    return pd.DataFrame.from_records(
        [(r.phase, r.fish_id, r.species, r.length_cm, r.height_cm, r.weight_kg) for r in records],
        columns=list(RECORD_COLUMNS),
    )


def _chunks(
    scenario: Scenario, seed: int, phase_indices: Sequence[int]
) -> Iterator[dict[str, list[Any]]]:
    """The fish of the chosen phases, a chunk at a time, as lists of ``RECORD_COLUMNS``."""
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
                "phase": [phase.name] * size,
                "fish_id": _fish_ids(scenario.name, seed, first, size),
                **_draw(phase, rng, size),
            }


def _draw(phase: Phase, rng: np.random.Generator, size: int) -> dict[str, list[Any]]:
    names = list(phase.species)
    specs = list(phase.species.values())
    shares = np.array([spec.share for spec in specs])
    # Draw every stream for the whole chunk up front, so the draws do not depend on the mix.
    which = rng.choice(len(specs), size=size, p=shares / shares.sum())
    z_length, z_ratio, z_weight = rng.standard_normal((3, size))
    length, ratio, weight = np.empty(size), np.empty(size), np.empty(size)
    for k, spec in enumerate(specs):
        mask = which == k
        length[mask] = spec.length_cm.apply(z_length[mask])
        ratio[mask] = spec.height_ratio.apply(z_ratio[mask])
        weight[mask] = spec.weight.sample_kg(length[mask], ratio[mask], z_weight[mask])
    return {
        "species": [names[k] for k in which.tolist()],
        "length_cm": length.tolist(),
        "height_cm": (length * ratio).tolist(),
        "weight_kg": weight.tolist(),
    }


def fresh_seed() -> int:
    """A seed no earlier run has used: the clock in milliseconds.

    Fish ids derive from the seed, and the joiner keeps the first record of each fish id, so a
    run that reused a seed would send fish the training store silently ignores.
    """
    return time.time_ns() // 1_000_000


def _fish_ids(scenario_name: str, seed: int, first: int, size: int) -> list[str]:
    return [
        str(uuid.uuid5(FISH_ID_NAMESPACE, f"{scenario_name}:{seed}:{index}"))
        for index in range(first, first + size)
    ]


class _CsvRow(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, allow_inf_nan=False)

    fish_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:\-]+$", max_length=128)
    phase: str = Field(default=CSV_PHASE, min_length=1)
    species: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9 _\-]*$", max_length=64)
    length_cm: float = Field(gt=0, le=MAX_LENGTH_CM)
    height_cm: float = Field(gt=0, le=MAX_HEIGHT_CM)
    weight_kg: float = Field(gt=0, le=MAX_WEIGHT_KG)


def load_csv(path: str | Path) -> list[FishRecord]:
    """Load a user's CSV of fish (``CSV_REQUIRED_COLUMNS``; ``fish_id`` and ``phase`` optional).

    Species are lower-cased as the data contract wants. Rows without a fish id get a UUID
    derived from the file's content and the row's position, so reloading the same file yields
    the same ids. Every bad line is reported at once, by line number.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CsvError(f"cannot read CSV {path}: {exc}") from exc
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
    missing = [column for column in CSV_REQUIRED_COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise CsvError(f"CSV {path} lacks the columns {missing} (header: {reader.fieldnames})")
    digest = hashlib.sha256(raw).hexdigest()
    records: list[FishRecord] = []
    errors: list[str] = []
    for index, row in enumerate(reader):
        # Line numbers count the header as line 1, as editors and spreadsheets do.
        line = reader.line_num
        try:
            records.append(_csv_record(row, digest, index))
        except ValidationError as exc:
            errors.extend(f"line {line}: {_describe(error)}" for error in exc.errors())
    errors.extend(_duplicate_id_errors(records))
    if errors:
        shown = "\n  ".join(errors[:_MAX_REPORTED_ERRORS])
        more = len(errors) - _MAX_REPORTED_ERRORS
        suffix = f"\n  ... and {more} more" if more > 0 else ""
        raise CsvError(f"CSV {path} has {len(errors)} bad values:\n  {shown}{suffix}")
    if not records:
        raise CsvError(f"CSV {path} has no records")
    return records


def _csv_record(row: Mapping[str, Any], digest: str, index: int) -> FishRecord:
    # Empty optional cells mean "not given"; a missing cell at the end of a line reads as None.
    cells = {
        key: value for key, value in row.items() if key is not None and value not in ("", None)
    }
    parsed = _CsvRow.model_validate(cells)
    fish_id = parsed.fish_id or str(uuid.uuid5(FISH_ID_NAMESPACE, f"csv:{digest}:{index}"))
    return FishRecord(
        phase=parsed.phase,
        fish_id=fish_id,
        species=parsed.species.lower(),
        length_cm=parsed.length_cm,
        height_cm=parsed.height_cm,
        weight_kg=parsed.weight_kg,
    )


def _describe(error: ErrorDetails) -> str:
    field = ".".join(map(str, error["loc"]))
    if error["type"] == "missing":
        return f"{field}: {error['msg']}"
    return f"{field}: {error['msg']} (got {error['input']!r})"


def _duplicate_id_errors(records: Sequence[FishRecord]) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for record in records:
        if record.fish_id in seen:
            repeated.append(record.fish_id)
        seen.add(record.fish_id)
    return [f"fish_id {fish_id!r} appears more than once" for fish_id in dict.fromkeys(repeated)]
